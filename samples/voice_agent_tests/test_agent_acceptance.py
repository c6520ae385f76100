"""A voice agent's acceptance tests: latency, barge-in, what it heard, the call itself.

They run against peerbot's embedded voice agent (no account needed), or against Orga when
ORGA_API_KEY and ORGA_USER_EMAIL are set (``--peerbot-target=local`` keeps them local). Each
test leaves NAME.json and NAME.html in ``peerbot-reports/`` (``--peerbot-reports DIR``).
"""

from __future__ import annotations

import pytest

import peerbot
from peerbot.conversation import Expect, Script, Turn
from peerbot.testing import assert_call_quality, assert_conversation_passed, assert_thresholds

# pytest-asyncio runs these coroutines; the mark is needed in its strict mode (its default) and harmless in auto.
pytestmark = pytest.mark.asyncio


async def test_the_agent_starts_answering_within_1500ms_at_p95(peerbot_conversation, peerbot_report):
    result = await peerbot_conversation("scripts/latency.toml")  # relative to this file
    assert_conversation_passed(result)
    assert_thresholds(result, "v2v_p95<=1500ms", "turns_failed==0", report=peerbot_report)


async def test_the_agent_stops_talking_when_the_caller_talks_over_it(peerbot_conversation):
    script = Script([
        Turn(say="What is the weather like in London today?", barge_in_after=1.2),  # the next turn interrupts
        Turn(say="Stop please.", answer_silence=0.6),
    ])
    result = await peerbot_conversation(script)
    interrupted = result.turns[0]
    assert interrupted.barge_in is not None and interrupted.barge_in.stopped, interrupted.failures
    assert_thresholds(result, "barge_ins_not_stopped==0", "barge_in_stop_p95<=500ms")  # measured: ~50–110 ms


async def test_the_agent_hears_what_the_caller_says(peerbot_conversation):
    script = Script([Turn(say="What is the weather like today?", answer_silence=0.6,
                          expect=[Expect("transcript", contains="weather")])])
    result = await peerbot_conversation(script)
    assert_conversation_passed(result)  # a missed expectation fails with the transcript the agent sent


async def test_the_call_loses_nothing_and_sounds_good(peerbot_session):
    session = await peerbot_session(source=peerbot.media.Tone(440))
    received = 0
    async for frame in session.audio_frames(sample_rate=16000, channels=1):
        received += frame.samples
        if frame.timestamp >= 3:
            break
    assert received >= 2.5 * 16000  # the far side's audio flowed for the whole three seconds
    assert_call_quality(session, "loss<=1%", "jitter_p95<=30ms", "mos>=4")
