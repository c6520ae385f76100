"""The threshold language: ``mos>=4.0``, ``loss<=1%``, ``rtt_p95<=300ms``, checked against a summary.

``NAME OP VALUE[UNIT]``: NAME is a metric of the contract (:mod:`peerbot.quality.metrics`) or an
alias, optionally with a statistic suffix (``_p50 _p95 _min _max _mean``); OP one of
``<= < >= > ==``; UNIT one of ``% ms s kbps fps``, converted to the metric's unit (``rtt<=0.3s``
is ``rtt<=300ms``). Without a unit the value is in the metric's unit. The value must be finite and
within what the metric can measure (:func:`value_range`): percentages 0–100, MOS 1–5, times, rates
and counts ≥ 0; ``loss<=150%`` is a typo, refused like a bad name.

The names are the call-quality contract's by default; another set of figures (a conversation's
``v2v_ms``…) speaks the same language with its own :class:`Vocabulary`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError
from .metrics import ALIASES, METRICS, STATISTICS, Metric, measured

__all__ = ["CALL_QUALITY", "CheckResult", "Threshold", "Vocabulary", "check", "format_value", "value_range"]

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9),
}
# How a written unit converts to each metric unit it fits; a bare number is in the metric's unit.
_CONVERSIONS: Mapping[str, Mapping[str, float]] = {
    "": {"": 1.0}, "%": {"": 1.0, "%": 1.0}, "ms": {"": 1.0, "ms": 1.0, "s": 1000.0},
    "s": {"": 1.0, "s": 1.0, "ms": 0.001}, "kbps": {"": 1.0, "kbps": 1.0}, "fps": {"": 1.0, "fps": 1.0},
}
_SYNTAX = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|<|>)\s*"
                     r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(%|ms|s|kbps|fps)?\s*",
                     re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Vocabulary:
    """What thresholds may name: ``metrics`` by canonical name, ``aliases`` (short name → canonical),
    the ``statistics`` suffixes, and an ``example`` for error messages."""

    metrics: Mapping[str, Metric]
    aliases: Mapping[str, str] = field(default_factory=dict)
    statistics: tuple[str, ...] = STATISTICS
    example: str = "rtt_p95<=300ms"

    def names(self) -> list[str]:
        """Every name a threshold may start with (before a statistic suffix), canonical then aliases."""
        return [*self.metrics, *self.aliases]

    def parse(self, text: str) -> Threshold:
        """A threshold over these names, as :meth:`Threshold.parse` is over the call-quality ones."""
        return Threshold._parse(text, self)

    def base(self, key: str) -> str:
        """The metric of a summary key: ``rtt_ms_p95`` → ``rtt_ms``."""
        if key in self.metrics:  # a name that merely ends like a statistic (decoder_threads_max)
            return key
        head, _, tail = key.rpartition("_")
        return head if tail in self.statistics else key


CALL_QUALITY = Vocabulary(METRICS, ALIASES, STATISTICS)
"""The call-quality contract's names (:mod:`peerbot.quality.metrics`): the default."""


def known_names() -> list[str]:
    """Every name a threshold may start with (before a statistic suffix), canonical then aliases."""
    return CALL_QUALITY.names()


@dataclass(frozen=True)
class Threshold:
    """One requirement on a summary key: ``key`` (canonical, e.g. ``rtt_ms_p95``) ``op`` ``value``
    in the metric's unit; ``name`` is what the user wrote (``rtt_p95``), for messages, and ``text``
    the whole expression as written."""

    name: str
    key: str
    op: str
    value: float
    text: str = field(default="", compare=False)
    vocabulary: Vocabulary = field(default=CALL_QUALITY, compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """A threshold from ``NAME OP VALUE[UNIT]``; :class:`ConfigurationError` saying what is wrong."""
        return cls._parse(text, CALL_QUALITY)

    @classmethod
    def _parse(cls, text: str, vocabulary: Vocabulary) -> Threshold:
        match = _SYNTAX.fullmatch(text)
        if match is None:
            raise ConfigurationError(f"threshold {text!r} is not NAME OP VALUE[UNIT], e.g. {vocabulary.example!r}"
                                     " (ops <= < >= > ==, units % ms s kbps fps)")
        name, op, number, unit = match.group(1).lower(), match.group(2), float(match.group(3)), match.group(4)
        key = _resolve(name, text, vocabulary)
        metric = vocabulary.metrics[vocabulary.base(key)]
        scale = _CONVERSIONS[metric.unit].get((unit or "").lower())
        if scale is None:
            fits = " or ".join(u for u in _CONVERSIONS[metric.unit] if u) or "no unit"
            raise ConfigurationError(f"threshold {text!r}: {unit} does not fit {metric.name}"
                                     f" (in {metric.unit or 'no unit'}; write {fits})")
        # Rounded so that 1.1s and 1100ms are the same bound, not 1100.0000000000002.
        value = number if scale == 1 else round(number * scale, 9)
        _check_range(metric, value, text)
        return cls(name, key, op, value, text.strip(), vocabulary=vocabulary)

    @property
    def unit(self) -> str:
        """The unit of ``value``: the metric's."""
        return self.vocabulary.metrics[self.vocabulary.base(self.key)].unit

    def __str__(self) -> str:
        return f"{self.name} {self.op} {format_value(self.value, self.unit)}"

    def passes(self, value: float) -> bool:
        """Whether a measured value meets this requirement."""
        return _OPERATORS[self.op](value, self.value)


@dataclass(frozen=True)
class CheckResult:
    """A threshold against what was measured (``None``: not measured, which fails)."""

    threshold: Threshold
    measured: float | None
    passed: bool
    message: str

    @property
    def shortfall(self) -> str:
        """By how much it failed (``12 ms over``, ``not measured``); empty when it passed."""
        if self.passed:
            return ""
        return "not measured" if self.measured is None else _miss(self.measured, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        """The result as the JSON report stores it."""
        t = self.threshold
        return {"threshold": t.text or str(t), "key": t.key, "op": t.op,
                "value": t.value, "unit": t.unit, "measured": self.measured, "passed": self.passed,
                "message": self.message}


def check(summary: Mapping[str, Any], thresholds: Iterable[Threshold]) -> list[CheckResult]:
    """Each threshold checked against a summary (:func:`~peerbot.quality.metrics.summarize`)."""
    return [_check_one(summary, threshold) for threshold in thresholds]


def _check_one(summary: Mapping[str, Any], t: Threshold) -> CheckResult:
    value = measured(summary.get(t.key))
    if value is None:
        return CheckResult(t, None, False, f"{t.name} not measured, required {t.op} {format_value(t.value, t.unit)}")
    passed = t.passes(value)
    message = f"{t.name} = {format_value(value, t.unit)}, required {t.op} {format_value(t.value, t.unit)}"
    if not passed:
        message += f": {_miss(value, t)}"
    return CheckResult(t, value, passed, message)


def _miss(value: float, t: Threshold) -> str:
    gap = abs(value - t.value)
    if t.op == "==":
        return f"off by {format_value(gap, t.unit)}"
    if gap == 0:  # a strict bound met exactly
        return "at the limit"
    return f"{format_value(gap, t.unit)} {'over' if value > t.value else 'under'}"


def format_value(value: float, unit: str) -> str:
    """A figure as people read it: ``412 ms``, ``1.25%``, ``4.1``."""
    text = _plain(value)
    return f"{text}{unit}" if unit in ("", "%") else f"{text} {unit}"


def _plain(value: float) -> str:
    digits = 0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 0.01 else 4
    text = f"{value:.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def value_range(metric: Metric) -> tuple[float, float]:
    """The values a threshold on ``metric`` may name, in its unit: a bound outside them is a typo."""
    if metric.name == "mos":
        return 1.0, 5.0
    if metric.unit == "%":
        return 0.0, 100.0
    if metric.name.endswith("_dbfs"):
        return -math.inf, 0.0
    return 0.0, math.inf  # times, rates and counts


def _check_range(metric: Metric, value: float, text: str) -> None:
    low, high = value_range(metric)
    if not math.isfinite(value):
        raise ConfigurationError(f"threshold {text!r}: the value must be a finite number")
    if not low <= value <= high:
        within = f"from {_plain(low)} to {_plain(high)}" if math.isfinite(high) else f"at least {_plain(low)}"
        raise ConfigurationError(f"threshold {text!r}: {metric.name} is {within}{' ' + metric.unit if metric.unit else ''},"
                                 f" got {format_value(value, metric.unit)}")


def _resolve(name: str, text: str, vocabulary: Vocabulary) -> str:
    """The summary key a written name stands for: alias or canonical, with its statistic suffix."""
    whole = vocabulary.aliases.get(name, name)
    if whole in vocabulary.metrics:
        return whole
    base, suffix = name, ""
    for statistic in vocabulary.statistics:
        if name.endswith(f"_{statistic}"):
            base, suffix = name[: -len(statistic) - 1], f"_{statistic}"
            break
    canonical = vocabulary.aliases.get(base, base)
    if canonical not in vocabulary.metrics:
        raise ConfigurationError(f"threshold {text!r}: unknown metric {name!r}; known: {', '.join(vocabulary.names())}"
                                 f" (each may end in {', '.join('_' + s for s in vocabulary.statistics)})")
    return canonical + suffix
