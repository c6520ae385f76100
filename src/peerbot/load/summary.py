"""What the runner knows of a load test while it runs and at the end: per participant, per
worker, and the load summary over participants.

The **load summary** is a flat dict, threshold-checkable (:mod:`peerbot.load.thresholds`):

- ``participants``, ``connected`` (ever connected), ``failed`` (any failure, in set-up or during
  the call), ``connected_percent``, ``failed_percent``;
- ``setup_ms`` (connect() until media can flow) and ``first_audio_ms`` (connect() until the first
  decoded audio frame), each with ``_p5 _p50 _p95 _p99 _min _max _mean`` over the participants
  that got that far; the bare name is the mean;
- for every metric of the contract (:mod:`peerbot.quality.metrics`): each participant's own
  call figure (as ``quality.summarize`` gives it: the last value of a cumulative one such as
  ``audio_coverage_percent``, the mean of a gauge such as ``mos``), then the same statistics over
  the participants that connected (``mos_p5``: the MOS that 95 % of the participants beat);
- ``decoded``: participants that connected and decoded what they received (every one with
  ``media="plain"``, the ``--decode-sample`` with ``media="encoded"``); the decoded figures of
  :mod:`peerbot.load.decoded` (``decoded_tone_percent``, ``decoded_frequency_hz``,
  ``decoded_level_dbfs``, ``decoded_frames``) with the same statistics, over the participants that
  measured them; ``decoder_threads_max``: aiortc decoder threads, each worker's most at once,
  summed (0 when no participant decodes: the cheap receive starts none);
- ``generator_limited`` (1 or 0), ``worker_cpu_max_percent``, ``worker_lag_max_ms``;
- with a local server, ``server_cpu_max_percent`` and ``server_limited`` (1 when its process used
  90 % of a core or more for 2 seconds: the far side, not the system you meant to test, set the
  figures); None against a remote server.

``errors`` (typed error class → count) and ``workers`` are kept next to it, not in it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..quality.metrics import METRICS, measured
from .decoded import DECODED_FIGURES
from .messages import Figures

__all__ = ["LAG_LIMIT_MS", "CPU_LIMIT_PERCENT", "LOAD_STATISTICS", "LoadState", "ParticipantRecord",
           "WorkerRecord", "statistics"]

LAG_LIMIT_MS = 50.0  # a worker whose loop is later than this…
CPU_LIMIT_PERCENT = 90.0  # …or busier than this, in a second, limited the figures of that second
LIMITED_SECONDS = 2  # the run is flagged once a worker was limited for this many seconds
LOAD_STATISTICS = ("p5", "p50", "p95", "p99", "min", "max", "mean")

State = Literal["waiting", "connecting", "connected", "failed", "ended"]


@dataclass
class ParticipantRecord:
    index: int
    worker: int
    state: State = "waiting"
    setup_ms: float | None = None
    first_audio_ms: float | None = None
    error: str | None = None  # typed error class name
    message: str | None = None
    phase: str | None = None
    latest: Figures = field(default_factory=dict)  # the last second's stats().to_metrics()
    summary: Figures = field(default_factory=dict)  # its own call summary, once ended
    duration_s: float | None = None
    call_id: str | None = None
    decodes: bool = False  # its received audio went through aiortc's decoder

    @property
    def connected(self) -> bool:
        return self.setup_ms is not None

    def figure(self, name: str) -> float | None:
        """Its call figure ``name``: from its summary once it ended, else from its latest second."""
        return measured(self.summary.get(name) if self.summary else self.latest.get(name))

    def row(self) -> dict[str, Any]:
        """One CSV row."""
        row: dict[str, Any] = {"participant": self.index, "worker": self.worker, "state": self.state,
                               "setup_ms": _round(self.setup_ms), "first_audio_ms": _round(self.first_audio_ms),
                               "duration_s": _round(self.duration_s), "decoded": self.decodes}
        for name in (*METRICS, *DECODED_FIGURES):
            row[name] = _round(self.figure(name))
        row.update(error=self.error or "", phase=self.phase or "", message=self.message or "",
                   call_id=self.call_id or "")
        return row


@dataclass
class WorkerRecord:
    worker: int
    pid: int | None = None
    cpu_percent: float | None = None  # the last second
    lag_ms: float | None = None
    cpu_max_percent: float = 0.0
    lag_max_ms: float = 0.0
    seconds: int = 0
    limited_seconds: int = 0
    limited_now: bool = False
    died: str | None = None  # why, when it ended without Done
    done: bool = False
    decoder_threads: int = 0  # aiortc decoder threads alive at its last second
    decoder_threads_max: int = 0

    def tick(self, lag_ms: float, cpu_percent: float, decoder_threads: int = 0) -> None:
        self.lag_ms, self.cpu_percent = lag_ms, cpu_percent
        self.decoder_threads = decoder_threads
        self.decoder_threads_max = max(self.decoder_threads_max, decoder_threads)
        self.lag_max_ms, self.cpu_max_percent = max(self.lag_max_ms, lag_ms), max(self.cpu_max_percent, cpu_percent)
        self.seconds += 1
        self.limited_now = lag_ms > LAG_LIMIT_MS or cpu_percent >= CPU_LIMIT_PERCENT
        self.limited_seconds += self.limited_now

    @property
    def limited(self) -> bool:
        return self.limited_seconds >= LIMITED_SECONDS

    def to_dict(self) -> dict[str, Any]:
        return {"worker": self.worker, "pid": self.pid, "cpu_max_percent": self.cpu_max_percent,
                "lag_max_ms": self.lag_max_ms, "seconds": self.seconds, "limited_seconds": self.limited_seconds,
                "limited": self.limited, "decoder_threads_max": self.decoder_threads_max, "died": self.died}


class LoadState:
    """Everything the runner has heard, and the figures drawn from it."""

    def __init__(self, participants: int, workers: int) -> None:
        self.participants = [ParticipantRecord(i, -1) for i in range(participants)]
        self.workers = [WorkerRecord(w) for w in range(workers)]
        self.errors: Counter[str] = Counter()
        self.started = time.monotonic()
        # One aggregated sample a second with someone connected: the mean of each metric over them.
        self.history: list[dict[str, float | None]] = []
        self._second: dict[int, Figures] = {}
        self._second_t: float | None = None
        self.server = WorkerRecord(-1)  # the local server's CPU (no loop lag: it is not ours to time)
        self.server_measured = False

    def server_tick(self, cpu_percent: float) -> None:
        """A second of the local server process's CPU, % of one core."""
        self.server_measured = True
        self.server.tick(0.0, cpu_percent)

    # --- what the workers said ------------------------------------------------------------

    def fail(self, index: int, error: str, message: str, phase: str) -> None:
        p = self.participants[index]
        if p.error is None:  # the first failure is the one that counts
            p.error, p.message, p.phase = error, message, phase
            self.errors[error] += 1
        p.state = "failed"

    def tick(self, worker: int, lag_ms: float, cpu_percent: float, figures: Mapping[int, Figures],
             decoder_threads: int = 0) -> None:
        self.workers[worker].tick(lag_ms, cpu_percent, decoder_threads)
        for index, sample in figures.items():
            self.participants[index].latest = dict(sample)
        self._add_to_history(figures)

    def _add_to_history(self, figures: Mapping[int, Figures]) -> None:
        # Workers tick at their own phase: a second's sample is what arrived within that second.
        t = round(time.monotonic() - self.started)
        if self._second_t is not None and t != self._second_t:
            self._flush_second()
        self._second_t = t
        self._second.update(figures)

    def _flush_second(self) -> None:
        if self._second_t is None or not self._second:  # a second with no one connected is not sampled
            self._second = {}
            return
        sample: dict[str, float | None] = {"t": float(self._second_t), "participants": float(len(self._second))}
        for name in METRICS:
            values = [v for v in (measured(f.get(name)) for f in self._second.values()) if v is not None]
            sample[name] = math.fsum(values) / len(values) if values else None
        self.history.append(sample)
        self._second = {}

    def finish(self) -> None:
        self._flush_second()
        self._second_t = None

    # --- what is shown -------------------------------------------------------------------

    def counts(self) -> Counter[str]:
        """Participants by state now: waiting, connecting, connected, failed, ended."""
        return Counter(p.state for p in self.participants)

    @property
    def generator_limited(self) -> bool:
        return any(w.limited for w in self.workers)

    @property
    def limited_now(self) -> bool:
        return any(w.limited_now for w in self.workers)

    def summary(self) -> dict[str, float | None]:
        """The load summary (module docstring): every key always present."""
        ps = self.participants
        n = len(ps)
        connected = [p for p in ps if p.connected]
        failed = sum(p.error is not None for p in ps)
        out: dict[str, float | None] = {
            "participants": float(n), "connected": float(len(connected)), "failed": float(failed),
            "connected_percent": 100.0 * len(connected) / n if n else None,
            "failed_percent": 100.0 * failed / n if n else None,
        }
        out.update(_over("setup_ms", [p.setup_ms for p in ps]))
        out.update(_over("first_audio_ms", [p.first_audio_ms for p in ps]))
        for name in METRICS:
            out.update(_over(name, [p.figure(name) for p in connected]))
        out["decoded"] = float(sum(p.decodes for p in connected))
        for name in DECODED_FIGURES:
            out.update(_over(name, [p.figure(name) for p in connected]))
        out["decoder_threads_max"] = float(sum(w.decoder_threads_max for w in self.workers))
        out["generator_limited"] = 1.0 if self.generator_limited else 0.0
        out["worker_cpu_max_percent"] = max((w.cpu_max_percent for w in self.workers), default=None)
        out["worker_lag_max_ms"] = max((w.lag_max_ms for w in self.workers), default=None)
        out["server_cpu_max_percent"] = self.server.cpu_max_percent if self.server_measured else None
        out["server_limited"] = (1.0 if self.server.limited else 0.0) if self.server_measured else None
        return out


def _over(name: str, values: Sequence[float | None]) -> dict[str, float | None]:
    stats = statistics([v for v in values if v is not None])
    return {name: stats["mean"], **{f"{name}_{k}": v for k, v in stats.items()}}


def statistics(values: Sequence[float]) -> dict[str, float | None]:
    """``LOAD_STATISTICS`` of ``values`` (linear-interpolated percentiles, as ``quality.summarize``)."""
    if not values:
        return dict.fromkeys(LOAD_STATISTICS)
    ordered = sorted(values)

    def percentile(percent: float) -> float:
        rank = (len(ordered) - 1) * percent / 100
        low = math.floor(rank)
        high = min(low + 1, len(ordered) - 1)
        return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)

    mean = min(max(math.fsum(ordered) / len(ordered), ordered[0]), ordered[-1])
    return {"p5": percentile(5), "p50": percentile(50), "p95": percentile(95), "p99": percentile(99),
            "min": ordered[0], "max": ordered[-1], "mean": mean}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
