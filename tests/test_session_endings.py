"""How sessions end: a normal hang-up ends iteration, an abnormal end raises, nothing is left pending."""

from __future__ import annotations

import asyncio
import gc
import logging

import pytest

from peerbot import orbit, orga
from peerbot.engine.impairment import Blackout
from peerbot.errors import SessionEndedError
from peerbot.media import TestPattern, Tone

from orbit_bed import orbit_bed


async def _drain_all(stream) -> int:
    return len([item async for item in stream])


def _our_tasks() -> set[asyncio.Task]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


def _closing_tasks(server) -> list[asyncio.Task]:
    """Client-side peerbot tasks and peer-connection closings still running."""
    # The server's far side runs on engine Peers too: its peers' and readers' tasks are not the client's.
    far_side = {id(part) for call in server.calls.values() for part in (call.peer, call.peer.audio, call.peer.video)}
    found = []
    for task in _our_tasks():
        coro = task.get_coro()
        code = getattr(coro, "cr_code", None)
        owner = getattr(getattr(coro, "cr_frame", None), "f_locals", {}).get("self")
        if code is None or id(owner) in far_side:
            continue
        client_side = "/peerbot/" in code.co_filename and "/peerbot/local/" not in code.co_filename
        if client_side or code.co_qualname == "RTCPeerConnection.close":
            found.append(task)
    return found


async def _settled(baseline: set[asyncio.Task], seconds: float = 3.0) -> set[asyncio.Task]:
    """Tasks started since ``baseline`` that are still alive after ``seconds`` at most."""
    for _ in range(int(seconds / 0.1)):
        left = _our_tasks() - baseline
        if not left:
            return left
        await asyncio.sleep(0.1)
    return _our_tasks() - baseline


async def test_orga_server_closing_the_call_ends_audio_and_events_iteration_without_error(orga_server, orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        frames, events = session.audio_frames(), session.events()
        await frames.__anext__()
        # The data channel may open after the first audio arrives: close once its first event came.
        first = await asyncio.wait_for(events.__anext__(), 10)
        await orga_server.calls[session.conversation_id].close()
        await asyncio.wait_for(asyncio.gather(_drain_all(frames), _drain_all(events)), 10)
        reason = await session.closed()
    assert first.type == "session.created"
    assert session.state == "closed" and "closed" in reason and session.error is None


@pytest.fixture
async def bed():
    async with orbit_bed(ring_timeout=3) as bed:
        yield bed


async def _enter(call):
    return await call.__aenter__()


async def test_orbit_hangup_by_the_caller_ends_the_callees_audio_and_video_iteration_and_both_are_closed(bed):
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    answering = asyncio.create_task(_enter(orbit.answer(Tone(880), TestPattern(), **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(440), TestPattern(), type="video", **alice.kwargs) as caller:
        callee = await answering
        audio, video = callee.audio_frames(), callee.video_frames()
        await audio.__anext__()
        await video.__anext__()
    await asyncio.wait_for(asyncio.gather(_drain_all(audio), _drain_all(video)), 10)
    await callee.closed()
    assert (caller.state, callee.state) == ("closed", "closed")
    assert callee.ended_by_remote == "hangup"


async def test_silent_orga_server_without_reconnect_raises_session_ended_and_leaves_no_task_pending(
        orga_server, orga_kwargs, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    baseline = _our_tasks()
    session = orga.connect(Tone(), reconnect=False, liveness_timeout=1.0, **orga_kwargs)
    async with session:
        frames = session.audio_frames()
        await frames.__anext__()
        with Blackout(session.peer):
            with pytest.raises(SessionEndedError, match="silent"):
                await asyncio.wait_for(_drain_all(frames), 10)
            reason = await session.closed()
            # closed() returns once everything is released, not while the peer is still closing
            assert not _closing_tasks(orga_server), _closing_tasks(orga_server)
    assert session.state == "failed" and "silent" in reason and session.error == reason
    for call in list(orga_server.calls.values()):  # the server's side of the dead path (same loop)
        await call.close()
    left = await _settled(baseline)
    gc.collect()
    await asyncio.sleep(0)
    assert not left, f"tasks left running: {left}"
    assert "Task was destroyed" not in caplog.text


async def test_silent_orbit_callee_without_reconnect_fails_the_call_and_tells_the_server(bed, caplog):
    caplog.set_level(logging.ERROR, logger="asyncio")
    alice, bob = await bed.participant("alice"), await bed.participant("bob")
    options = {"reconnect": False, "liveness_timeout": 1.0}
    answering = asyncio.create_task(_enter(orbit.answer(Tone(880), **options, **bob.kwargs)))
    async with orbit.call(bob.user_id, Tone(440), **options, **alice.kwargs) as caller:
        callee = await answering
        frames = caller.audio_frames()
        await frames.__anext__()
        with Blackout(callee.peer):
            with pytest.raises(SessionEndedError, match="silent"):
                await asyncio.wait_for(_drain_all(frames), 10)
            await asyncio.wait_for(asyncio.gather(caller.closed(), callee.closed()), 10)
    assert caller.state == "failed" and callee.state in ("failed", "closed")
    assert bed.server.calls[caller.call_id].status == "ended"
    gc.collect()
    await asyncio.sleep(0)
    assert "Task was destroyed" not in caplog.text
