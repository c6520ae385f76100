"""One test's report files: what its conversations and calls measured, as ``peerbot converse
--report`` and ``peerbot call --report`` write them (the same JSON schema and HTML page).

``<stem>.json``/``.html`` hold the test's conversations (:func:`write_conversation_report`);
each session opened on its own (not for a conversation) gets ``<stem>.call<N>.json``/``.html``
(:func:`peerbot.quality.write_report`). The thresholds the test checked through the report go
in with them: a conversation's into the conversation report, the rest into the call reports.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PeerbotError
from ..quality.metrics import summarize
from ..quality.thresholds import CALL_QUALITY, CheckResult

if TYPE_CHECKING:
    from ..conversation.results import ConversationResult

__all__ = ["PeerbotReport", "report_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 120


def report_name(nodeid: str) -> str:
    """A file name (without suffix) from a pytest node id:
    ``tests/test_agent.py::test_latency[fast]`` → ``tests.test_agent.test_latency-fast``; a digest
    of the node id is added when characters had to go (``test_x[a b]`` → ``test_x-a_b-1f0c…``) or
    the name is too long."""
    path, _, rest = nodeid.partition("::")
    path = path[:-3] if path.endswith(".py") else path
    name = ".".join(p for p in (path.replace("\\", "/").replace("/", "."), rest.replace("::", ".")) if p)
    name = name.replace("[", "-").replace("]", "")
    safe = _UNSAFE.sub("_", name).strip("._-") or "test"
    digest = hashlib.sha1(nodeid.encode()).hexdigest()[:8]
    if safe != name:  # characters were lost (test_x[ä] and test_x[ö]): the digest keeps the names apart
        safe = f"{safe}-{digest}"
    if len(safe) > _MAX_NAME:  # keep the end (the test's own name), and the digest in front
        safe = f"{digest}-{safe[-(_MAX_NAME - 9):].lstrip('._-')}"
    return safe


class PeerbotReport:
    """What one test measured, written as report files by :meth:`write` (the ``peerbot_report``
    fixture does that at teardown, whether the test passed or not). ``add()`` a
    ``ConversationResult`` or a session; :func:`~peerbot.testing.assert_thresholds` with
    ``report=`` adds its checks. ``paths``: the files written."""

    def __init__(self, directory: str | Path, name: str, *, target: str = "peerbot", test: str | None = None) -> None:
        self.directory = Path(directory)
        self.name = name
        self.target = target
        self.test = test or name
        self.outcome: str | None = None  # the test's, once known ("passed", "failed", "skipped")
        self.started_at = time.time()
        self.conversations: list[ConversationResult] = []
        self.sessions: list[Any] = []
        self.checks: list[CheckResult] = []
        self.paths: list[Path] = []

    @property
    def stem(self) -> Path:
        """The path of the report files without their suffix."""
        return self.directory / self.name

    def add(self, measured: Any) -> None:
        """Put a ``ConversationResult`` (or a list of them) or a session (its call quality, read at
        :meth:`write`, after it closed) in the report."""
        from ..conversation.results import ConversationResult

        if isinstance(measured, ConversationResult):
            self.conversations.append(measured)
        elif isinstance(measured, (list, tuple)):
            for one in measured:
                self.add(one)
        elif hasattr(measured, "stats_history"):
            if all(s is not measured for s in self.sessions):
                self.sessions.append(measured)
        else:
            raise TypeError(f"a report holds ConversationResults and sessions, not {type(measured).__name__}")

    def add_checks(self, results: Iterable[CheckResult]) -> None:
        """Thresholds checked by the test, shown with its figures."""
        self.checks.extend(results)

    def __bool__(self) -> bool:
        return bool(self.conversations or self.sessions or self.checks)

    def write(self) -> list[Path]:
        """Write the report files (none when nothing was measured); return every path written."""
        from ..conversation.report import write_conversation_report
        from ..quality.report import write_report

        conversation_checks = [c for c in self.checks if c.threshold.vocabulary is not CALL_QUALITY]
        call_checks = [c for c in self.checks if c.threshold.vocabulary is CALL_QUALITY]
        written: list[Path] = []
        if self.conversations or (conversation_checks and not self.sessions):
            written += write_conversation_report(
                self.stem, self.conversations, meta=self._meta(max((c.duration_s for c in self.conversations),
                                                                   default=None)),
                results=conversation_checks if self.sessions else self.checks)
        for number, session in enumerate(self.sessions, 1):
            history = _history(session)
            duration = history[-1].get("t") if history else None
            written += write_report(f"{self.stem}.call{number}", summary=summarize(history), history=history,
                                    meta=self._meta(duration, call=number, **_session_meta(session)),
                                    results=call_checks)
        self.paths = written
        return written

    def summary_lines(self) -> list[str]:
        """A few figures for a line in a test report (pytest-html): per conversation its turns and
        voice-to-voice latency, per call its loss and MOS."""
        from ..quality.thresholds import format_value

        def shown(value: Any, unit: str) -> str:
            return "–" if value is None else format_value(float(value), unit)

        lines = []
        for c in self.conversations:
            s = c.summary()
            lines.append(f"conversation {c.script!r}: {s['turns'] or 0:.0f} turns, {s['turns_failed'] or 0:.0f} failed,"
                         f" voice to voice p50 {shown(s['v2v_ms_p50'], 'ms')}, p95 {shown(s['v2v_ms_p95'], 'ms')}")
        for number, session in enumerate(self.sessions, 1):
            q = summarize(_history(session))
            lines.append(f"call {number}: loss {shown(q['loss_percent'], '%')}, jitter {shown(q['jitter_ms'], 'ms')},"
                         f" MOS {shown(q['mos'], '')}")
        failed = [c for c in self.checks if not c.passed]
        if self.checks:
            lines.append(f"thresholds: {len(failed)} of {len(self.checks)} failed" if failed
                         else f"thresholds: all {len(self.checks)} passed")
        return lines

    def _meta(self, duration_s: float | None, **more: Any) -> dict[str, Any]:
        from ..quality.report import report_meta

        return report_meta("pytest", self.target, started_at=self.started_at, duration_s=duration_s,
                           test=self.test, outcome=self.outcome, **more)


def _history(session: Any) -> list[dict[str, Any]]:
    try:
        return [dict(s) for s in session.stats_history()]
    except PeerbotError:  # never started: nothing measured
        return []


def _session_meta(session: Any) -> Mapping[str, Any]:
    from ..quality.report import codecs_of

    ident = getattr(session, "conversation_id", None) or getattr(session, "call_id", None)
    try:
        codecs = codecs_of(session.stats())
    except PeerbotError:  # never started: no codecs to show
        codecs = None
    return {"session": ident, "end_reason": getattr(session, "end_reason", None), "codecs": codecs}
