"""Mouth-to-ear latency: chirp markers sent through a far side that echoes, found again."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

import peerbot
from peerbot import orbit
from peerbot.cli.orbit_target import orbit_target
from peerbot.errors import ConfigurationError
from peerbot.media.file import decode_audio
from peerbot.local.demo_user import ECHO_DELAY, echo_participant
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.quality.latency import LatencyProbe, LatencyResult

from conftest import SAMPLES, USER_EMAIL


async def round_trip_through_echo(echo_delay: float, seconds: float = 5.0) -> LatencyResult:
    async with LocalOrgaServer(echo_delay=echo_delay) as server:
        probe = LatencyProbe(interval=0.5)
        async with peerbot.orga.connect(source=probe, api_key=server.api_key, base_url=server.base_url,
                                        user_email=USER_EMAIL) as session:
            return await probe.measure(session.audio_frames(channels=1), duration=seconds)


async def test_round_trip_is_the_echo_delay_plus_a_small_overhead_and_follows_a_longer_delay():
    short = await round_trip_through_echo(0.2)
    long = await round_trip_through_echo(0.5)
    print(f"\necho 0.2 s: {short.round_trips_ms} ms; echo 0.5 s: {long.round_trips_ms} ms")
    for result in (short, long):
        assert result.markers_sent >= 7  # 0.5 s apart over the 4 s that leave time for the echo
        assert result.markers_lost <= 1  # a shared machine may starve one
    assert short.p50_ms is not None and long.p50_ms is not None
    # Overhead measured on an idle loopback: 40–60 ms (20 ms frame ticks at the echo, the
    # jitter buffer's one packet, Opus both ways).
    assert 200 <= short.p50_ms <= 350
    # The least delayed markers: after a stall on a busy machine the echo's backlog never drains
    # (it sends one frame a tick), so later round trips can carry a lasting extra 20–200 ms.
    assert long.percentile_ms(0) - short.percentile_ms(0) == pytest.approx(300, abs=40)
    assert short.max_ms is not None and short.max_ms <= 500


async def test_markers_are_found_mixed_over_the_users_own_audio(orga_kwargs):
    probe = LatencyProbe(interval=0.5, amplitude=0.3)
    speech = np.tile(decode_audio(SAMPLES / "hello.wav", 48000), 2)  # 8 s of a voice, peaks at 0.7 of full scale
    async with peerbot.orga.connect(source=probe, **orga_kwargs) as session:
        feeding = asyncio.create_task(probe.capture(speech, 48000))
        result = await probe.measure(session.audio_frames(channels=1), duration=3.5)
        feeding.cancel()
    print(f"\nover the user's audio: {result.round_trips_ms} ms")
    assert result.markers_sent >= 4 and result.markers_lost <= 1
    assert result.p50_ms is not None and 100 <= result.p50_ms <= 250  # the fixture echoes after 0.1 s


async def deaf_between(frames, start: float, end: float):
    """The received frames, less those that reach us from ``start`` to ``end`` seconds on."""
    began = time.monotonic()
    async for frame in frames:
        if not start <= time.monotonic() - began < end:
            yield frame


async def test_markers_in_audio_that_never_reaches_us_are_counted_lost(orga_kwargs):
    probe = LatencyProbe(interval=0.5)
    async with peerbot.orga.connect(source=probe, **orga_kwargs) as session:
        heard = deaf_between(session.audio_frames(channels=1), 1.5, 3.0)
        result = await probe.measure(heard, duration=5.0)
    print(f"\n1.5 s unheard: sent {result.markers_sent}, round trips {result.round_trips_ms} ms")
    # Three markers (0.5 s apart) come back inside the deaf 1.5 s; one at its edge may be cut too.
    assert 2 <= result.markers_lost <= 4
    assert result.markers_found >= 3
    assert result.to_metrics()["latency_markers_lost"] == result.markers_lost


async def test_round_trip_through_the_orbit_demo_user_includes_its_playback_delay():
    probe = LatencyProbe(interval=0.5)
    async with orbit_target("tester", local=True) as me, echo_participant(me, "echo") as echo:
        async with orbit.call(echo.user.id, probe, **me.call_kwargs) as call:
            result = await probe.measure(call.audio_frames(channels=1), duration=4.0)
    print(f"\nthrough the demo user: {result.round_trips_ms} ms")
    assert result.markers_sent >= 5 and result.markers_lost <= 1
    assert result.p50_ms is not None
    assert ECHO_DELAY * 1000 <= result.p50_ms <= ECHO_DELAY * 1000 + 200


def test_metrics_use_the_contract_names_and_are_none_when_nothing_came_back():
    result = LatencyResult((210.0, 220.0, 400.0), markers_sent=4, markers_found=3)
    assert result.to_metrics() == {"latency_ms": 220.0, "latency_p95_ms": pytest.approx(382.0),
                                   "latency_markers_lost": 1.0}
    assert LatencyResult((), markers_sent=3, markers_found=0).to_metrics()["latency_ms"] is None


def test_probe_refuses_a_round_trip_bound_that_would_confuse_markers():
    probe = LatencyProbe(interval=0.2)
    with pytest.raises(ConfigurationError, match="max_round_trip"):
        asyncio.run(probe.measure(_no_frames(), duration=0.1, max_round_trip=1.0))


async def _no_frames():
    return
    yield


def test_per_second_history_gets_the_mean_round_trip_heard_in_each_second_and_null_without_one():
    origin = 1000.0
    result = LatencyResult((200.0, 300.0, 250.0), markers_sent=3, markers_found=3,
                           heard_at=(origin + 0.4, origin + 0.9, origin + 2.5))
    history = [{"t": 1.0, "rtt_ms": 3.0}, {"t": 2.0, "rtt_ms": 3.0}, {"t": 3.0, "rtt_ms": 3.0}]
    filled = result.per_second(history, origin)
    assert [s["latency_ms"] for s in filled] == [250.0, None, 250.0]
    assert all(s["rtt_ms"] == 3.0 for s in filled) and history[0].get("latency_ms") is None  # a copy


async def test_listen_during_a_call_then_result_gives_the_round_trips_with_the_tone_mixed_under(orga_kwargs):
    import contextlib

    from peerbot.media import Tone

    probe = LatencyProbe()
    async with peerbot.orga.connect(probe, **orga_kwargs) as session:
        started = time.monotonic()
        tasks = [asyncio.create_task(probe.listen(session.audio_frames(channels=1))),
                 asyncio.create_task(probe.mix(Tone(440.0)))]
        await asyncio.sleep(3.5)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        result = probe.result(started, time.monotonic())
    print(result)
    assert result.markers_found >= 2 and result.markers_lost == 0
    assert all(100 <= trip <= 300 for trip in result.round_trips_ms)  # the fixture's server echoes after 0.1 s
    assert len(result.heard_at) == len(result.round_trips_ms)
