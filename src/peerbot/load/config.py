"""What a load test runs: ``LoadConfig``, checked when it is made (a bad setting is a
``ConfigurationError`` before any process starts)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

__all__ = ["LoadConfig"]


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


@dataclass(frozen=True)
class LoadConfig:
    """A load test: ``participants`` sessions, started at ``spawn_rate`` per second overall, the
    whole run lasting ``duration`` seconds from the first spawn (spawning included, as Locust's
    ``--run-time``), spread over ``workers`` processes (default: one per core).

    Target: Orga when ``orbit`` is false, Orbit pairs (``participants`` even) when true. With
    ``local`` true, or ``None`` and no credentials (``ORGA_API_KEY`` / ``ORBIT_SECRET_KEY``, or the
    fields here), a local server runs in a process of its own, never in the load process. ``media``
    names the participants' media mode (:data:`peerbot.load.media.MEDIA_MODES`, or
    ``"module:attribute"``); ``reflect`` makes the local Orga server reflect RTP back without
transcoding (``peerbot serve --reflect``), so the far side is not the bottleneck; ``source``/``video``
    are the ``--source``/``--video`` words of ``peerbot call``.

    ``decode_sample_percent`` (``--decode-sample``, 0-100): with ``media="encoded"``, that share of
    the participants (evenly spread, at least one when above 0) decodes what it receives and
    measures it (:mod:`peerbot.load.decoded`) while the others only count RTP. With
    ``media="plain"`` everyone decodes already: 0, or 100 to also measure everyone's decoded audio.
    """

    participants: int
    duration: float
    spawn_rate: float = 10.0
    workers: int = field(default_factory=_default_workers)
    source: str = "tone"
    video: str = "none"
    media: str = "plain"
    decode_sample_percent: float = 0.0
    orbit: bool = False
    local: bool | None = None
    reflect: bool = False
    api_key: str | None = None
    base_url: str | None = None
    user_email: str | None = None
    secret_key: str | None = None
    client_id: str | None = None
    impair: str | None = None
    prometheus_port: int | None = None
    hang_up_timeout: float = 10.0
    session_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.participants, bool) or not isinstance(self.participants, int) or self.participants < 1:
            raise ConfigurationError(f"participants must be a whole number of at least 1, got {self.participants!r}")
        if self.orbit and self.participants % 2:
            raise ConfigurationError(f"an Orbit load test makes pairs: participants must be even,"
                                     f" got {self.participants}")
        for name in ("duration", "spawn_rate", "hang_up_timeout"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and value > 0 and math.isfinite(value)):
                raise ConfigurationError(f"{name} must be a positive number, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ConfigurationError(f"workers must be a whole number of at least 1, got {self.workers!r}")
        if self.spawn_time >= self.duration:
            raise ConfigurationError(
                f"spawning {self.participants} participants at {self.spawn_rate:g}/s takes {self.spawn_time:g} s,"
                f" not less than the duration ({self.duration:g} s): raise the spawn rate or the duration")
        self._check_decode_sample()
        if self.reflect and self.orbit:
            raise ConfigurationError("reflect is a mode of the local Orga server: not with orbit")
        port = self.prometheus_port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            raise ConfigurationError(f"prometheus_port must be 0 (any free port) to 65535, got {port!r}")

    def _check_decode_sample(self) -> None:
        value = self.decode_sample_percent
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and 0 <= value <= 100):
            raise ConfigurationError(f"decode_sample_percent must be a percentage from 0 to 100, got {value!r}")
        if self.media == "plain" and value not in (0, 100):
            raise ConfigurationError(f"with media plain every participant decodes: a decode sample of {value:g} %"
                                     " is for media encoded (plain takes 100 %, to measure everyone's decoded audio)")

    @property
    def spawn_time(self) -> float:
        """Seconds from the first spawn to the last (the last participant starts then)."""
        return (self.participants - 1) / self.spawn_rate

    @property
    def worker_count(self) -> int:
        """Workers actually started: never more than there are participants (or Orbit pairs)."""
        units = self.participants // 2 if self.orbit else self.participants
        return min(self.workers, units)

    def is_local(self) -> bool:
        """Whether a local server is started for this run."""
        if self.local is not None:
            return self.local
        if self.orbit:
            return not (self.secret_key or os.environ.get("ORBIT_SECRET_KEY"))
        return not (self.api_key or os.environ.get("ORGA_API_KEY"))

    def spawn_offset(self, index: int) -> float:
        """Seconds after the first spawn at which participant ``index`` starts."""
        return index / self.spawn_rate
