"""The engine's settings, checked when they are given (before any request a session makes)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aiortc import RTCRtpSender
from aiortc.codecs import is_rtx

from ..errors import ConfigurationError
from .impairment import Impairment, ImpairmentClock, NetworkImpairment
from .turn import tls_context


def positive_seconds(name: str, value: object) -> float:
    """``value`` as seconds, which must be a finite number > 0; ``ConfigurationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def count(name: str, value: object, minimum: int = 0) -> int:
    """``value`` as an integer >= ``minimum``; ``ConfigurationError`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def known_codecs() -> list[str]:
    """The codec names aiortc can send (``opus``, ``PCMU``…, ``VP8``, ``H264``), audio first."""
    names = [c.mimeType.split("/", 1)[1] for kind in ("audio", "video")
             for c in RTCRtpSender.getCapabilities(kind).codecs if not is_rtx(c)]
    return list(dict.fromkeys(names))


def codec_names(value: object) -> tuple[str, ...] | None:
    """``codecs=`` checked: None keeps aiortc's order; otherwise a non-empty list of known codec
    names (any case), lower-cased; ``ConfigurationError`` naming the known ones otherwise."""
    if value is None:
        return None
    known = known_codecs()
    choose = f"choose from {', '.join(known)}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError(f"codecs must be a list of codec names ({choose}), got {value!r}")
    names = list(value)
    if not names:
        raise ConfigurationError(f"codecs is empty: give at least one ({choose}), or None for all of them")
    lower = {name.lower() for name in known}
    unknown = [name for name in names if not isinstance(name, str) or name.lower() not in lower]
    if unknown:
        raise ConfigurationError(f"unknown codec {unknown[0]!r}: {choose}")
    return tuple(name.lower() for name in names)


@dataclass(frozen=True)
class PeerOptions:
    """How a ``Peer`` gathers, watches and receives; see ``Peer`` for each setting."""

    relay_only: bool = False
    gather_timeout: float = 5.0
    liveness_timeout: float = 5.0
    stats_interval: float = 1.0
    codecs: Iterable[str] | None = None  # a tuple of lower-case names once checked
    audio_jitter_frames: int = 1
    turn_tls_ca: str | os.PathLike[str] | None = None
    impair: Impairment | NetworkImpairment | None = None
    # The call's timeline for outage windows: one per options object, so every Peer a session
    # builds from its options (reconnections) continues it; None: a fresh one.
    impair_clock: ImpairmentClock | None = field(default=None, compare=False, repr=False)
    receive: Literal["decode", "count"] = "decode"
    rtp: Literal["lean", "aiortc"] = "lean"

    def __post_init__(self) -> None:
        for name in ("gather_timeout", "liveness_timeout", "stats_interval"):
            positive_seconds(name, getattr(self, name))
        count("audio_jitter_frames", self.audio_jitter_frames, minimum=1)
        object.__setattr__(self, "codecs", codec_names(self.codecs))  # frozen: normalised once
        if self.turn_tls_ca is not None:
            tls_context(self.turn_tls_ca)  # unreadable or not PEM: ConfigurationError now, not at gathering
        object.__setattr__(self, "impair", NetworkImpairment.of(self.impair))
        if self.impair_clock is None:
            object.__setattr__(self, "impair_clock", ImpairmentClock())
        elif not isinstance(self.impair_clock, ImpairmentClock):
            raise ConfigurationError(f"impair_clock must be an ImpairmentClock, got {type(self.impair_clock).__name__}")
        if self.receive not in ("decode", "count"):
            raise ConfigurationError(f"receive must be 'decode' (frames) or 'count' (RTP counted, not decoded),"
                                     f" got {self.receive!r}")
        if self.rtp not in ("lean", "aiortc"):
            raise ConfigurationError(f"rtp must be 'lean' or 'aiortc', got {self.rtp!r}")
