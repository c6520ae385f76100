"""Testing voice agents and calls: assertions whose failure says what was measured against
what was required, the per-test report, and the session and conversation factories behind
peerbot's pytest fixtures (:mod:`peerbot.pytest_plugin`)::

    from peerbot.testing import assert_conversation_passed, assert_thresholds

    async def test_the_agent_answers_fast(peerbot_conversation):
        result = await peerbot_conversation("scripts/smoke.toml")
        assert_conversation_passed(result)
        assert_thresholds(result, "v2v_p95<=1500ms", "barge_in_stop_p95<=500ms")

A failed threshold reads ``1 of 2 thresholds failed for conversation 'smoke' (3 turns):`` and then
one line per threshold: ``FAIL v2v_p95 = 1712 ms, required <= 1500 ms: 212 ms over``. Nothing
here needs pytest: the assertions raise ``AssertionError`` for any test runner.
"""

from __future__ import annotations

from .assertions import (
    assert_call_quality,
    assert_conversation_passed,
    assert_thresholds,
    check_call_quality,
    check_thresholds,
)
from .factories import ConversationFactory, SessionFactory
from .report import PeerbotReport, report_name

__all__ = ["ConversationFactory", "SessionFactory", "PeerbotReport", "assert_call_quality", "assert_conversation_passed",
           "assert_thresholds", "check_call_quality", "check_thresholds", "report_name"]
