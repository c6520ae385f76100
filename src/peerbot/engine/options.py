"""The engine's settings, checked when they are given (before any request a session makes)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from .impairment import Impairment, NetworkImpairment
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


@dataclass(frozen=True)
class PeerOptions:
    """How a ``Peer`` gathers, watches and receives; see ``Peer`` for each setting."""

    relay_only: bool = False
    gather_timeout: float = 5.0
    liveness_timeout: float = 5.0
    stats_interval: float = 1.0
    codecs: tuple[str, ...] = field(default=())
    audio_jitter_frames: int = 1
    turn_tls_ca: str | os.PathLike[str] | None = None
    impair: Impairment | NetworkImpairment | None = None

    def __post_init__(self) -> None:
        for name in ("gather_timeout", "liveness_timeout", "stats_interval"):
            positive_seconds(name, getattr(self, name))
        count("audio_jitter_frames", self.audio_jitter_frames, minimum=1)
        codecs: Iterable[object] = self.codecs or ()
        names = [c for c in codecs if isinstance(c, str) and c]
        if isinstance(self.codecs, str) or len(names) != len(list(self.codecs or ())):
            raise ConfigurationError(f"codecs must be a list of codec names, got {self.codecs!r}")
        object.__setattr__(self, "codecs", tuple(name.lower() for name in names))  # frozen: normalised once
        if self.turn_tls_ca is not None:
            tls_context(self.turn_tls_ca)  # unreadable or not PEM: ConfigurationError now, not at gathering
        object.__setattr__(self, "impair", NetworkImpairment.of(self.impair))
