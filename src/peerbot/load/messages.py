"""What a worker process tells the load runner, over its pipe: small picklable records.

Per participant: ``Connecting`` → ``Connected`` → ``FirstAudio`` → ``Ended``, or ``Failed`` at
any point (then ``Ended`` if it had connected). Per worker: ``Hello`` once, a ``Tick`` a second
(its event-loop lag, CPU and the figures of every connected participant), ``Done`` at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Figures = dict[str, float | None]


@dataclass(frozen=True)
class Hello:
    worker: int
    pid: int


@dataclass(frozen=True)
class Connecting:
    index: int
    at: float  # time.time()
    decodes: bool = False  # its received audio goes through aiortc's decoder (plain, or --decode-sample)


@dataclass(frozen=True)
class Connected:
    index: int
    setup_s: float  # connect() → media can flow


@dataclass(frozen=True)
class FirstAudio:
    index: int
    after_s: float  # connect() → the first decoded audio frame


@dataclass(frozen=True)
class Failed:
    index: int
    error: str  # the typed error's class name, e.g. OrgaAIServerError
    message: str
    phase: str  # "setup" or "call"


@dataclass(frozen=True)
class Ended:
    index: int
    summary: Figures  # quality.summarize() of the participant's own history
    duration_s: float
    call_id: str | None = None


@dataclass(frozen=True)
class Tick:
    worker: int
    lag_ms: float  # the worst lateness of the worker's 100 ms timer over the last second
    cpu_percent: float  # of one core, over the last second (all the worker's threads)
    figures: dict[int, Figures] = field(default_factory=dict)  # index → stats().to_metrics(), decoded figures
    decoder_threads: int = 0  # aiortc decoder threads alive in the worker now


@dataclass(frozen=True)
class Done:
    worker: int


@dataclass(frozen=True)
class Start:
    """Runner → worker: spawn from ``epoch`` (``time.time()``), reaching the far side with ``target``
    (Orga ``connect`` keyword arguments, or the Orbit keys and URL)."""

    epoch: float
    target: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stop:
    """Runner → worker: hang everything up now."""
