"""Two peerbot participants call each other through the local Orbit server: real WebRTC media."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from peerbot import orbit
from peerbot.errors import CallNotConnectedError, SessionEndedError
from peerbot.media import TestPattern, Tone, read_frame_counter

from media_checks import dominant_frequency
from orbit_bed import orbit_bed


async def heard_tone(call, seconds: float = 1.0) -> float:
    chunks, total = [], 0
    async for frame in call.audio_frames(sample_rate=16000, channels=1):
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * 16000:
            break
    return dominant_frequency(np.concatenate(chunks)[-8000:], 16000)


async def counters(call, n: int = 10) -> list[int]:
    got = []
    async for frame in call.video_frames():
        got.append(read_frame_counter(frame.data))
        if len(got) == n:
            return got
    return got


@pytest.fixture
async def bed():
    async with orbit_bed(ring_timeout=3) as bed:
        yield bed


async def test_video_call_carries_tones_and_test_patterns_both_ways_and_hangup_propagates(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(880), TestPattern(), **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(440), TestPattern(), type="video", **alice.kwargs) as caller:
        callee = await answering
        heard_by_bob, heard_by_alice = await asyncio.gather(heard_tone(callee), heard_tone(caller))
        seen_by_bob, seen_by_alice = await asyncio.gather(counters(callee), counters(caller))
        assert abs(heard_by_bob - 440) < 5 and abs(heard_by_alice - 880) < 5
        assert seen_by_bob == sorted(seen_by_bob) and seen_by_bob[-1] > seen_by_bob[0]
        assert seen_by_alice == sorted(seen_by_alice) and seen_by_alice[-1] > seen_by_alice[0]
        print(f"\nalice heard {heard_by_alice:.0f} Hz, bob heard {heard_by_bob:.0f} Hz;"
              f" counters at bob {seen_by_bob[:3]}…, at alice {seen_by_alice[:3]}…; pair {caller.peer.candidate_pair()}")
        frames = callee.audio_frames()
    # Alice hung up: a normal end. Bob's call closes with the reason, his iterators just stop.
    reason = await asyncio.wait_for(callee.closed(), 10)
    assert "hung up" in reason and callee.ended_by_remote == "hangup"
    leftover = [frame async for frame in frames]
    assert len(leftover) <= 50
    assert callee.state == "closed" and caller.state == "closed"
    assert bed.server.calls[caller.call_id].status == "ended"


async def test_voice_call_has_audio_only_and_callee_hangup_closes_the_caller_normally(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(700), TestPattern(), **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(500), **alice.kwargs) as caller:
        callee = await answering
        assert "m=video" not in caller.peer._pc.remoteDescription.sdp
        assert abs(await heard_tone(caller) - 700) < 5
        await callee.close()
        reason = await asyncio.wait_for(caller.closed(), 10)
    assert "hung up" in reason and caller.state == "closed" and callee.state == "closed"


async def test_rejected_call_is_a_clear_outcome(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")

    async def reject_next() -> None:
        async with orbit.OrbitUser(bob.base_url, bob.token, bob.client_id) as user:
            async with user.events() as events:
                incoming = await events.wait_for("call:incoming")
                await user.calls.reject(incoming.call_id)

    rejecting = asyncio.create_task(reject_next())
    with pytest.raises(CallNotConnectedError) as info:
        async with orbit.call(bob.user_id, Tone(), **alice.kwargs):
            pass
    await rejecting
    assert info.value.outcome == "rejected"


async def test_unanswered_call_is_missed_after_the_ring_timeout(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    with pytest.raises(CallNotConnectedError) as info:
        async with orbit.call(bob.user_id, Tone(), ring_timeout=10, **alice.kwargs):
            pass
    assert info.value.outcome in ("missed", "no_answer")


async def test_answer_with_no_ring_timeout_waits_until_a_call_comes_and_takes_it(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(700), ring_timeout=None, **bob.kwargs)))
    await asyncio.sleep(2.0)
    assert not answering.done()  # still waiting, with no limit to give up at
    async with orbit.call(bob.user_id, Tone(500), **alice.kwargs) as caller:
        callee = await asyncio.wait_for(answering, 10)
        assert callee.call_id == caller.call_id
        assert abs(await heard_tone(callee) - 500) < 5
        await callee.close()


async def test_metrics_are_submitted_every_interval(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(700), **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(500), metrics_interval=1.0, **alice.kwargs) as caller:
        callee = await answering
        await asyncio.sleep(3.5)
        async with orbit.OrbitUser(alice.base_url, alice.token, alice.client_id) as user:
            samples = await user.calls.get_metrics(caller.call_id)
        await callee.close()
    assert len(samples) >= 2 and caller.metrics_submitted == len(samples)
    assert samples[-1].bitrate > 20  # kbps: Opus audio both ways (stats refresh each second)


async def test_token_expiry_mid_call_reconnects_the_websocket_and_the_call_survives(bed):
    alice, bob = await bed.participant("alice", ttl=2), await bed.participant("bob")
    refreshed = []

    async def fresh_token() -> str:
        refreshed.append(True)
        return await bed.fresh_token(alice.user_id)

    answering = asyncio.create_task(_enter(orbit.answer(Tone(700), **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(500), on_token_expired=fresh_token, **alice.kwargs) as caller:
        callee = await answering
        await asyncio.sleep(3.0)  # past the token's expiry: the server closes the socket with 4001
        assert refreshed and caller._events.token_refreshes >= 1
        assert caller.state == "connected"
        assert abs(await heard_tone(caller) - 700) < 5
        await callee.close()  # and events still arrive over the new socket
        reason = await asyncio.wait_for(caller.closed(), 10)
    assert "hung up" in reason


async def _enter(call):
    return await call.__aenter__()
