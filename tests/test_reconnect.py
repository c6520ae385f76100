"""Surviving an outage longer than the liveness timeout: the path's datagrams really stop (a
``Blackout`` on the old connection's sockets), the session rebuilds its connection, and the
application's iterators carry on with the same tone."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from peerbot import orbit, orga
from peerbot.engine.impairment import Blackout
from peerbot.engine.peer import Peer
from peerbot.errors import SessionEndedError
from peerbot.orga.events import CallRecreated, SessionUpdated
from peerbot.media import Tone

from media_checks import dominant_frequency
from orbit_bed import orbit_bed

FAST = {"liveness_timeout": 1.0, "reconnect_backoff": 0.2}


async def tone_of(stream, seconds: float = 1.0, rate: int = 16000) -> float:
    """The dominant frequency of the next ``seconds`` of a mono 16 kHz audio stream."""
    chunks, total = [], 0
    async for frame in stream:
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * rate:
            break
    return dominant_frequency(np.concatenate(chunks)[-8000:], rate)


async def first_of(events, kind: type):
    async for event in events:
        if isinstance(event, kind):
            return event
    raise AssertionError(f"events() ended without a {kind.__name__}")


async def test_orga_session_recreates_the_call_after_an_outage_and_audio_and_events_continue(orga_kwargs):
    async with orga.connect(Tone(440), **FAST, **orga_kwargs) as session:
        audio, events = session.audio_frames(sample_rate=16000, channels=1), session.events()
        assert abs(await tone_of(audio) - 440) < 5
        first_conversation, old_peer = session.conversation_id, session.peer
        with Blackout(old_peer):
            recreated = await asyncio.wait_for(first_of(events, CallRecreated), 15)
        assert abs(await tone_of(audio) - 440) < 5  # the same iterator, over the new call
        stats = session.stats()
        print(f"\nre-created after {recreated.outage_seconds:.1f} s: {first_conversation} -> {recreated.conversation_id}")
    assert recreated.previous_conversation_id == first_conversation
    assert recreated.conversation_id == session.conversation_id != first_conversation
    assert session.peer is not old_peer and old_peer.ended
    assert stats.summary.reconnects == 1 and recreated.outage_seconds > FAST["liveness_timeout"]
    assert stats.summary.outage_seconds == recreated.outage_seconds
    assert session.state == "closed"


async def test_orga_session_gives_up_after_its_reconnect_attempts_with_the_reason():
    from peerbot.local.orga_server import LocalOrgaServer
    from conftest import USER_EMAIL

    server = LocalOrgaServer(echo_delay=0.1)
    await server.start()
    try:
        kwargs = {"api_key": server.api_key, "base_url": server.base_url, "user_email": USER_EMAIL}
        async with orga.connect(Tone(), reconnect_attempts=2, **FAST, **kwargs) as session:
            audio = session.audio_frames()
            await audio.__anext__()
            with Blackout(session.peer):
                await server.stop()  # signalling is gone too: re-creating the call cannot work
                old_peer = session.peer
                await asyncio.wait_for(_until(lambda: old_peer.ended, step=0.01), 10)
                updating = asyncio.create_task(session.update(instructions="anyone there?"))
                with pytest.raises(SessionEndedError, match="2 reconnect attempts failed") as info:
                    await asyncio.wait_for(_drain(audio), 20)
            with pytest.raises(SessionEndedError, match="2 reconnect attempts failed"):
                await asyncio.wait_for(updating, 5)  # it waited for the reconnection, which failed
            with pytest.raises(SessionEndedError, match="has ended"):
                await session.update(instructions="still there?")
    finally:
        await server.stop()
    assert "silent" in info.value.reason and session.state == "failed"
    assert session.error == session.end_reason == info.value.reason
    assert session.stats().summary.reconnects == 0


async def test_orga_update_sent_as_the_connection_is_lost_waits_and_reaches_the_recreated_call(orga_kwargs):
    async with orga.connect(Tone(440), **FAST, **orga_kwargs) as session:
        events = session.events()
        first_conversation, old_peer = session.conversation_id, session.peer
        with Blackout(old_peer):
            # The moment the peer is declared lost: its data channel is dead, the new one not there yet.
            await asyncio.wait_for(_until(lambda: old_peer.ended, step=0.01), 10)
            assert session.state == "reconnecting"
            await asyncio.wait_for(session.update(instructions="after the outage", voice="coral"), 15)
            sent_on = session.conversation_id
        seen = []
        async for event in events:
            seen.append(event)
            if isinstance(event, SessionUpdated):
                break
    assert sent_on != first_conversation and session.reconnects == 1
    recreated = next(i for i, e in enumerate(seen) if isinstance(e, CallRecreated))
    assert recreated < len(seen) - 1  # session.updated came from the re-created call
    assert seen[-1].session["instructions"] == "after the outage" and seen[-1].session["voice"] == "coral"


@pytest.fixture
async def bed():
    async with orbit_bed(ring_timeout=3) as bed:
        yield bed


async def test_orbit_call_renegotiates_over_the_same_call_after_an_outage_and_audio_continues_both_ways(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(880), **FAST, **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(440), **FAST, **alice.kwargs) as caller:
        callee = await answering
        heard_by_alice = caller.audio_frames(sample_rate=16000, channels=1)
        heard_by_bob = callee.audio_frames(sample_rate=16000, channels=1)
        assert abs(await tone_of(heard_by_alice) - 880) < 5
        old_peers = caller.peer, callee.peer
        with Blackout(callee.peer):  # bob's network goes dark
            await asyncio.wait_for(_until(lambda: caller.reconnects and callee.reconnects
                                          and caller.state == callee.state == "connected"), 20)
        tones = await asyncio.gather(tone_of(heard_by_alice), tone_of(heard_by_bob))
        stats = caller.stats()
        assert bed.server.calls[caller.call_id].status == "accepted"
        print(f"\nrenegotiated: outage {stats.summary.outage_seconds:.1f} s at alice, {callee.stats().summary.outage_seconds:.1f} s at bob")
    assert abs(tones[0] - 880) < 5 and abs(tones[1] - 440) < 5
    assert caller.peer is not old_peers[0] and callee.peer is not old_peers[1]
    assert stats.summary.reconnects == 1 and stats.summary.outage_seconds > FAST["liveness_timeout"]
    await asyncio.wait_for(callee.closed(), 10)
    assert caller.state == callee.state == "closed"


async def test_orbit_call_gives_up_after_its_reconnect_attempts_when_the_far_side_never_answers_again(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    # Bob answers once, by hand, then his network goes dark and he never answers a new offer.
    async with orbit.OrbitUser(bob.base_url, bob.token, bob.client_id) as user, user.events() as bob_events:
        placing = asyncio.create_task(_enter(orbit.call(bob.user_id, Tone(440), reconnect_attempts=2,
                                                        connect_timeout=2, **FAST, **alice.kwargs)))
        incoming = await bob_events.wait_for("call:incoming")
        await user.calls.accept(incoming.call_id)
        offer = await bob_events.wait_for("call:offer")
        bob_peer = Peer()
        try:
            answer = await bob_peer.accept_offer(offer.data["sdp"], audio=Tone(880))
            await user.calls.submit_answer(incoming.call_id, answer)
            caller = await asyncio.wait_for(placing, 10)
            heard = caller.audio_frames(sample_rate=16000, channels=1)
            assert abs(await tone_of(heard) - 880) < 5
            with Blackout(bob_peer):
                with pytest.raises(SessionEndedError, match="2 reconnect attempts failed") as info:
                    await asyncio.wait_for(_drain(heard), 30)
            offers = [e async for e in _pending(bob_events, "call:offer")]
        finally:
            await bob_peer.close()
    print(f"\nalice gave up: {info.value.reason}")
    assert "silent" in info.value.reason and "sent no answer" in info.value.reason
    assert caller.state == "failed" and caller.error == info.value.reason
    assert caller.stats().summary.reconnects == 0
    assert len(offers) == 2  # one new offer per attempt, each unanswered
    assert bed.server.calls[caller.call_id].status == "ended"  # alice hung up on giving up: bob is told


async def _pending(events, kind: str):
    """The ``kind`` events already received and not yet read."""
    while True:
        try:
            yield await events.wait_for(kind, timeout=0.5)
        except TimeoutError:
            return


async def _until(condition, step: float = 0.1) -> None:
    while not condition():
        await asyncio.sleep(step)


async def _drain(stream) -> None:
    async for _ in stream:
        pass


async def _enter(call):
    return await call.__aenter__()
