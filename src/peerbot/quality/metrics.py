"""The metrics contract: the one vocabulary of call-quality figures every command speaks.

A call's figures are flat JSON-able dicts with canonical names and fixed units, whatever
produced them (``peerbot call``, ``peerbot load``, a pytest assertion):

========================== ====== ========== ==============================================================
name                       unit   kind       meaning
========================== ====== ========== ==============================================================
``mos``                           gauge      mean opinion score, 1–4.5 (E-model estimate)
``loss_percent``           %      cumulative packets lost of the received streams, since the start
``remote_loss_percent``    %      cumulative what the far side reports losing of our streams
``jitter_ms``              ms     gauge      interarrival jitter of the received streams (RFC 3550)
``rtt_ms``                 ms     gauge      round-trip time to the far side (RTCP)
``audio_coverage_percent`` %      cumulative received audio seconds / wall seconds × 100, since the start
``concealed_percent``      %      cumulative received audio the receiver had to conceal, since the start
``freeze_count``                  cumulative video freezes (W3C definition), since the start
``freezes_duration_s``     s      cumulative total duration of those freezes
``frames_per_second``      fps    gauge      received video frame rate
``bitrate_in_kbps``        kbps   gauge      received bitrate over the last interval
``bitrate_out_kbps``       kbps   gauge      sent bitrate over the last interval
``latency_ms``             ms     gauge      audio round trip, mouth to ear, through an echoing far side
``reconnects``                    cumulative connections rebuilt after an outage
``outage_seconds``         s      cumulative seconds without media those outages cost
========================== ====== ========== ==============================================================

A **history** is a list of samples, one per second: ``{"t": seconds since the call started,
<name>: number or None, ...}``. ``None`` (JSON ``null``) means *not measured*: it is never
counted as 0, never averaged, never plotted as a value.

The **summary** of a call (:func:`summarize`) holds, for every name:

- ``<name>``: for a cumulative figure, its last measured value (the whole call's figure); for a
  gauge, its mean over the call, so ``mos`` is the call's MOS, not its last second's;
- ``<name>_p50``, ``<name>_p95``, ``<name>_min``, ``<name>_max``, ``<name>_mean`` over the measured
  samples of the history (linear-interpolated percentiles);

each ``None`` when the history never measured it. Thresholds (``rtt_p95<=300ms``) name these keys,
directly or by an alias (:data:`ALIASES`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["ALIASES", "METRICS", "STATISTICS", "Metric", "Sample", "measured", "summarize"]

Sample = dict[str, float | None]
"""One second of a call: ``t`` and a value (or ``None``) per metric name."""


@dataclass(frozen=True)
class Metric:
    """One figure of the contract: its canonical name, unit (``""`` for a pure number) and meaning."""

    name: str
    unit: Literal["", "%", "ms", "s", "kbps", "fps"]
    kind: Literal["gauge", "cumulative"]
    title: str


METRICS: Mapping[str, Metric] = {m.name: m for m in (
    Metric("mos", "", "gauge", "MOS"),
    Metric("loss_percent", "%", "cumulative", "loss (received)"),
    Metric("remote_loss_percent", "%", "cumulative", "loss (far side)"),
    Metric("jitter_ms", "ms", "gauge", "jitter"),
    Metric("rtt_ms", "ms", "gauge", "round-trip time"),
    Metric("audio_coverage_percent", "%", "cumulative", "audio coverage"),
    Metric("concealed_percent", "%", "cumulative", "concealed audio"),
    Metric("freeze_count", "", "cumulative", "video freezes"),
    Metric("freezes_duration_s", "s", "cumulative", "video freezes duration"),
    Metric("frames_per_second", "fps", "gauge", "video frame rate"),
    Metric("bitrate_in_kbps", "kbps", "gauge", "bitrate in"),
    Metric("bitrate_out_kbps", "kbps", "gauge", "bitrate out"),
    Metric("latency_ms", "ms", "gauge", "latency (mouth to ear)"),
    Metric("reconnects", "", "cumulative", "reconnects"),
    Metric("outage_seconds", "s", "cumulative", "outage"),
)}

ALIASES: Mapping[str, str] = {
    "loss": "loss_percent",
    "remote_loss": "remote_loss_percent",
    "rtt": "rtt_ms",
    "coverage": "audio_coverage_percent",
    "concealed": "concealed_percent",
    "jitter": "jitter_ms",
    "fps": "frames_per_second",
    "freezes": "freeze_count",
    "freezes_duration": "freezes_duration_s",
    "latency": "latency_ms",
    "bitrate_in": "bitrate_in_kbps",
    "bitrate_out": "bitrate_out_kbps",
    "outage": "outage_seconds",
}
"""Short names a user may write in a threshold, each for one canonical name."""

STATISTICS = ("p50", "p95", "min", "max", "mean")
"""The suffixes of the summary's statistics over the history."""


def summarize(history: Iterable[Mapping[str, Any]]) -> dict[str, float | None]:
    """The summary of a call from its history (see the module docstring): every key always present."""
    samples = list(history)
    summary: dict[str, float | None] = {}
    for metric in METRICS.values():
        values = [v for v in (measured(s.get(metric.name)) for s in samples) if v is not None]
        stats = _statistics(values)
        if metric.kind == "cumulative":
            summary[metric.name] = values[-1] if values else None
        else:
            summary[metric.name] = stats["mean"]
        summary.update({f"{metric.name}_{name}": value for name, value in stats.items()})
    return summary


def _statistics(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return dict.fromkeys(STATISTICS)
    ordered = sorted(values)
    mean = min(max(math.fsum(ordered) / len(ordered), ordered[0]), ordered[-1])  # no ulp outside the range
    return {"p50": _percentile(ordered, 50), "p95": _percentile(ordered, 95),
            "min": ordered[0], "max": ordered[-1], "mean": mean}


def _percentile(ordered: Sequence[float], percent: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so p50 of [1, 2] is 1.5."""
    rank = (len(ordered) - 1) * percent / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def measured(value: Any) -> float | None:
    """A sample's value as a float, or None: null, NaN, infinities and non-numbers are not measurements."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)
