"""``--assert`` on a load summary, in the quality threshold language (``NAME OP VALUE[UNIT]``,
the same operators, units and conversions, :mod:`peerbot.quality.thresholds`), over the load
summary's names (:mod:`peerbot.load.summary`):

- every metric of the contract or its alias (``coverage``, ``loss``, ``mos``, ``rtt``, ``jitter`` …),
  ``setup`` (``setup_ms``), ``first_audio`` (``first_audio_ms``, also ``ttfa``), each with a statistic
  over the participants, ``_p5 _p50 _p95 _p99 _min _max _mean`` (none: the mean), e.g.
  ``setup_p95<=500ms``, ``coverage_p5>=99%``, ``mos_p5>=4``, ``loss_p95<=0.5%``;
- the decoded figures of a ``--decode-sample`` (``decoded_tone_percent``, alias ``tone``,
  ``decoded_frequency_hz``, ``decoded_level_dbfs``, ``decoded_frames``), the same way: ``tone_min>=90%``;
- ``participants``, ``connected``, ``failed`` (counts), ``connected_percent``, ``failed_percent``
  (``failed==0``, ``connected_percent>=100%``), ``decoded``, ``decoder_threads_max``, ``generator_limited``,
  ``server_limited`` (``generator_limited==0``).

Results are ``quality.CheckResult``s, checked by ``quality.check``: a figure not measured fails.
"""

from __future__ import annotations

import argparse

from ..errors import ConfigurationError
from ..quality.metrics import ALIASES, METRICS, Metric
from ..quality.thresholds import Threshold, Vocabulary  # one language: the same grammar, units and ranges
from .decoded import DECODED_FIGURES
from .summary import LOAD_STATISTICS

__all__ = ["LOAD", "LOAD_NAMES", "LoadThreshold", "load_threshold"]

_PER_PARTICIPANT: dict[str, Metric] = {
    "setup_ms": Metric("setup_ms", "ms", "gauge", "set-up time"),
    "first_audio_ms": Metric("first_audio_ms", "ms", "gauge", "time to first audio"),
    **METRICS,
    **{name: Metric(name, unit, "gauge", name.replace("_", " ")) for name, unit in DECODED_FIGURES.items()},  # type: ignore[arg-type]
}
_COUNTS: dict[str, Metric] = {name: Metric(name, unit, "cumulative", name.replace("_", " ")) for name, unit in (  # type: ignore[arg-type]
    ("participants", ""), ("connected", ""), ("failed", ""), ("connected_percent", "%"), ("failed_percent", "%"),
    ("decoded", ""), ("decoder_threads_max", ""), ("generator_limited", ""), ("server_limited", ""))}
_LOAD_ALIASES: dict[str, str] = {**ALIASES, "setup": "setup_ms", "first_audio": "first_audio_ms",
                                 "ttfa": "first_audio_ms", "tone": "decoded_tone_percent"}
LOAD = Vocabulary({**_PER_PARTICIPANT, **_COUNTS}, _LOAD_ALIASES, LOAD_STATISTICS, example="setup_p95<=500ms")
"""The names a load threshold may use: per-participant figures (with a statistic) and counts."""
LOAD_NAMES = tuple(LOAD.names())
"""Every name a load threshold may start with."""


class LoadThreshold(Threshold):
    """A ``Threshold`` on a load-summary key (:data:`LOAD`'s names)."""

    @classmethod
    def parse(cls, text: str) -> Threshold:
        threshold = cls._parse(text, LOAD)
        if threshold.key not in _COUNTS and LOAD.base(threshold.key) in _COUNTS:
            raise ConfigurationError(f"threshold {text!r}: {LOAD.base(threshold.key)} is a count;"
                                     " it takes no statistic suffix")
        return threshold


def load_threshold(text: str) -> Threshold:
    """argparse type of ``peerbot load --assert``: a bad expression is a usage error (exit 2)."""
    try:
        return LoadThreshold.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

