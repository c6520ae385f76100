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
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..errors import ConfigurationError
from ..quality.metrics import ALIASES, METRICS
from ..quality.thresholds import _CONVERSIONS, _SYNTAX, Threshold  # one language: the same grammar and units
from .decoded import DECODED_FIGURES
from .summary import LOAD_STATISTICS

__all__ = ["LOAD_NAMES", "LoadThreshold", "load_threshold"]

_PER_PARTICIPANT: dict[str, str] = {"setup_ms": "ms", "first_audio_ms": "ms",
                                    **{name: metric.unit for name, metric in METRICS.items()}, **DECODED_FIGURES}
_COUNTS: dict[str, str] = {"participants": "", "connected": "", "failed": "", "connected_percent": "%",
                           "failed_percent": "%", "decoded": "", "decoder_threads_max": "", "generator_limited": "",
                           "server_limited": ""}
_LOAD_ALIASES: dict[str, str] = {**ALIASES, "setup": "setup_ms", "first_audio": "first_audio_ms",
                                 "ttfa": "first_audio_ms", "tone": "decoded_tone_percent"}
LOAD_NAMES = (*_PER_PARTICIPANT, *_COUNTS, *_LOAD_ALIASES)
"""Every name a load threshold may start with."""


@dataclass(frozen=True)
class LoadThreshold(Threshold):
    """A ``Threshold`` on a load-summary key; ``unit_of`` is the key's unit."""

    unit_of: str = field(default="", compare=False)

    @property
    def unit(self) -> str:
        return self.unit_of

    @classmethod
    def parse(cls, text: str) -> LoadThreshold:
        match = _SYNTAX.fullmatch(text)
        if match is None:
            raise ConfigurationError(f"threshold {text!r} is not NAME OP VALUE[UNIT], e.g. 'setup_p95<=500ms'"
                                     " (ops <= < >= > ==, units % ms s kbps fps)")
        name, op, number, unit = match.group(1).lower(), match.group(2), float(match.group(3)), match.group(4)
        key, metric_unit = _resolve(name, text)
        scale = _CONVERSIONS[metric_unit].get((unit or "").lower())
        if scale is None:
            fits = " or ".join(u for u in _CONVERSIONS[metric_unit] if u) or "no unit"
            raise ConfigurationError(f"threshold {text!r}: {unit} does not fit {key}"
                                     f" (in {metric_unit or 'no unit'}; write {fits})")
        value = number if scale == 1 else round(number * scale, 9)
        return cls(name, key, op, value, text.strip(), unit_of=metric_unit)


def _resolve(name: str, text: str) -> tuple[str, str]:
    if name in _COUNTS:
        return name, _COUNTS[name]
    base, suffix = name, ""
    for statistic in LOAD_STATISTICS:
        if name.endswith(f"_{statistic}"):
            base, suffix = name[: -len(statistic) - 1], f"_{statistic}"
            break
    canonical = _LOAD_ALIASES.get(base, base)
    if canonical not in _PER_PARTICIPANT:
        raise ConfigurationError(f"threshold {text!r}: unknown load figure {name!r}; known: {', '.join(LOAD_NAMES)}"
                                 f" (per-participant ones may end in {', '.join('_' + s for s in LOAD_STATISTICS)})")
    return canonical + suffix, _PER_PARTICIPANT[canonical]


def load_threshold(text: str) -> LoadThreshold:
    """argparse type of ``peerbot load --assert``: a bad expression is a usage error (exit 2)."""
    try:
        return LoadThreshold.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None

