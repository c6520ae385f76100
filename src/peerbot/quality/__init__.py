"""Call quality for every command: one metrics contract, one threshold language, one report.

``peerbot call --report out --assert "rtt_p95<=300ms"``, ``peerbot load`` and a pytest failure
message all read the same names and units (:mod:`peerbot.quality.metrics`)::

    async with peerbot.orga.connect(...) as session:
        ...                                        # the call
    history = session.stats_history()              # one sample a second, also after the end
    summary = summarize(history)
    failed = [r.message for r in check(summary, [Threshold.parse("loss<=1%")]) if not r.passed]
    write_report("out", summary=summary, history=history, meta=report_meta("call", "…", started_at=t0,
                                                                           duration_s=…))
"""

from __future__ import annotations

from .continuity import ContinuityResult, TimedTestPattern, VideoContinuity
from .latency import LatencyProbe, LatencyResult
from .metrics import ALIASES, METRICS, Metric, Sample, summarize
from .report import report_meta, write_report
from .thresholds import CheckResult, Threshold, check

__all__ = [
    "ALIASES",
    "METRICS",
    "CheckResult",
    "ContinuityResult",
    "LatencyProbe",
    "LatencyResult",
    "Metric",
    "Sample",
    "Threshold",
    "TimedTestPattern",
    "VideoContinuity",
    "check",
    "report_meta",
    "summarize",
    "write_report",
]
