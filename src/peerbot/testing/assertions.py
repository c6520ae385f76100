"""Assertions for tests of calls and conversations: an ``AssertionError`` whose message lists
every threshold with what was measured and what was required, in the threshold language of
``peerbot call --assert`` and ``peerbot converse --assert`` (:mod:`peerbot.quality.thresholds`).

A threshold that does not parse is a ``ConfigurationError`` (a mistake in the test, not a
failure of the call); a figure that was not measured fails, as on the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigurationError
from ..quality.metrics import summarize
from ..quality.thresholds import CALL_QUALITY, CheckResult, Threshold, Vocabulary, check

if TYPE_CHECKING:
    from ..conversation.results import ConversationResult

__all__ = ["assert_call_quality", "assert_conversation_passed", "assert_thresholds", "check_call_quality",
           "check_thresholds"]


class _RecordsChecks(Protocol):
    def add_checks(self, results: Iterable[CheckResult]) -> None: ...


def check_thresholds(measured: Any, *thresholds: str | Threshold) -> list[CheckResult]:
    """Each conversation threshold (``"v2v_p95<=1500ms"``, ``"turns_failed==0"``…) against
    ``measured``: a ``ConversationResult``, several, or a summary from ``result.summary()``."""
    from ..conversation.results import ConversationResult, summarize_turns
    from ..conversation.thresholds import CONVERSATION, parse_threshold

    if isinstance(measured, ConversationResult):
        summary: Mapping[str, Any] = measured.summary()
    elif isinstance(measured, Mapping):
        summary = measured
    elif _all_conversations(measured):
        summary = summarize_turns(measured)
    else:
        raise ConfigurationError(f"conversation thresholds are checked against a ConversationResult, a list of them"
                                 f" or a summary, not {type(measured).__name__}")
    return check(summary, [_parsed(t, CONVERSATION, parse_threshold) for t in thresholds])


def check_call_quality(measured: Any, *thresholds: str | Threshold) -> list[CheckResult]:
    """Each call-quality threshold (``"loss<=1%"``, ``"rtt_p95<=300ms"``, ``"mos>=4"``…) against
    ``measured``: a session (its whole call, from ``stats_history()``), a ``StatsReport`` from
    ``session.stats()`` (that moment), a history (a list of samples), a summary from
    ``quality.summarize``, or a ``ConversationResult`` (its call)."""
    return check(_call_summary(measured), [_parsed(t, CALL_QUALITY, Threshold.parse) for t in thresholds])


def assert_thresholds(measured: Any, *thresholds: str | Threshold, report: _RecordsChecks | None = None) -> None:
    """Fail unless ``measured`` (see :func:`check_thresholds`) meets every conversation threshold;
    the message lists each one, passed or not, measured against required. ``report`` (the
    ``peerbot_report`` fixture) also gets the results, for its JSON and HTML."""
    __tracebackhide__ = True
    _assert(check_thresholds(measured, *thresholds), _subject(measured), report)


def assert_call_quality(measured: Any, *thresholds: str | Threshold, report: _RecordsChecks | None = None) -> None:
    """Fail unless ``measured`` (see :func:`check_call_quality`) meets every call-quality threshold;
    the message lists each one, passed or not, measured against required."""
    __tracebackhide__ = True
    _assert(check_call_quality(measured, *thresholds), "the call", report)


def assert_conversation_passed(result: ConversationResult) -> None:
    """Fail unless every turn of the conversation passed (an answer came, the far side stopped
    when talked over, each expectation met) and it ran to its end; the message says why each
    failed turn failed."""
    __tracebackhide__ = True
    if not result.failed:
        return
    failed = [t for t in result.turns if t.failed]
    lines = [f"conversation {result.script!r} failed: {len(failed)} of {len(result.turns)} turns failed"
             + (f", {sum(u.failed for u in result.updates)} update(s) failed" if any(u.failed for u in result.updates)
                else "")]
    if result.error:
        lines.append(f"  it did not run to its end: {result.error}")
    for turn in failed:
        label = turn.label if len(turn.label) <= 60 else turn.label[:59] + "…"
        lines.append(f"  turn {turn.number} ({label!r}): {'; '.join(turn.failures)}")
    for update in result.updates:
        if update.failed:
            lines.append(f"  step {update.number} (session.update): {update.error}")
    raise AssertionError("\n".join(lines))


def _format_checks(results: Sequence[CheckResult], subject: str) -> str:
    """The message: how many failed for what, then one line per threshold."""
    failed = [r for r in results if not r.passed]
    head = (f"{len(failed)} of {len(results)} thresholds failed for {subject}:" if failed
            else f"all {len(results)} thresholds passed for {subject}:")
    return "\n".join([head, *(f"  {'pass' if r.passed else 'FAIL'} {r.message}" for r in results)])


def _assert(results: list[CheckResult], subject: str, report: _RecordsChecks | None) -> None:
    __tracebackhide__ = True
    if report is not None:
        report.add_checks(results)
    if not results:
        raise ConfigurationError("no threshold given: name at least one, e.g. 'v2v_p95<=1500ms' or 'loss<=1%'")
    if any(not r.passed for r in results):
        raise AssertionError(_format_checks(results, subject))


def _parsed(threshold: str | Threshold, vocabulary: Vocabulary, parse: Any) -> Threshold:
    if isinstance(threshold, Threshold):
        if threshold.vocabulary is not vocabulary:
            raise ConfigurationError(f"threshold {threshold.text or str(threshold)!r} is not in this language;"
                                     f" write it as text, e.g. {vocabulary.example!r}")
        return threshold
    if not isinstance(threshold, str):
        raise ConfigurationError(f"a threshold is text such as {vocabulary.example!r}, got {type(threshold).__name__}")
    parsed: Threshold = parse(threshold)
    return parsed


def _all_conversations(measured: Any) -> bool:
    from ..conversation.results import ConversationResult

    return isinstance(measured, (list, tuple)) and bool(measured) and all(
        isinstance(m, ConversationResult) for m in measured)


def _subject(measured: Any) -> str:
    from ..conversation.results import ConversationResult

    if isinstance(measured, ConversationResult):
        turns = len(measured.turns)
        return f"conversation {measured.script!r} ({turns} turn{'' if turns == 1 else 's'})"
    if isinstance(measured, (list, tuple)):
        return f"{len(measured)} conversations"
    return "the conversation summary"


def _call_summary(measured: Any) -> Mapping[str, Any]:
    from ..conversation.results import ConversationResult
    from ..engine.stats import StatsReport

    if isinstance(measured, ConversationResult):
        return measured.call_quality
    if isinstance(measured, StatsReport):
        return summarize([measured.to_metrics()])
    if hasattr(measured, "stats_history"):
        return summarize(measured.stats_history())
    if isinstance(measured, Mapping):
        return measured
    if isinstance(measured, (list, tuple)) and all(isinstance(s, Mapping) for s in measured):
        return summarize(measured)
    raise ConfigurationError(f"call-quality thresholds are checked against a session, session.stats(), a history,"
                             f" a summary or a ConversationResult, not {type(measured).__name__}")
