"""What the receiver plays: the audio playout meter fed frame by frame (the definitions), and on
real calls against the embedded server, unimpaired and with a starved event loop."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
import pytest

from peerbot import orga
from peerbot.engine.peer import Peer
from peerbot.media import TestPattern, Tone
from peerbot.media.streams import StreamHub
from peerbot.media.receive_stats import RESYNC_LATE_SECONDS, TARGET_DELAY, AudioPlayoutMeter, AudioPlayoutStats

RATE = 48000
FRAME = 960  # 20 ms


def opus_frame(index: int, *, origin: int = 0, amplitude: int = 0) -> av.AudioFrame:
    """A decoded 20 ms stereo frame as aiortc hands it out, with RTP time ``origin + index × 20 ms``."""
    data = np.full((1, 2 * FRAME), amplitude, dtype=np.int16)
    frame = av.AudioFrame.from_ndarray(data, format="s16", layout="stereo")
    frame.sample_rate = RATE
    frame.pts = origin + index * FRAME
    frame.time_base = fractions.Fraction(1, RATE)
    return frame


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def feed(meter: AudioPlayoutMeter, clock: FakeClock, indices: range, *, at: float | None = None,
         origin: int = 0, step: float = 0.02) -> None:
    """Frames arriving every ``step`` s (from ``at``, else where the clock stands) in RTP order."""
    start = clock.now if at is None else at
    for n, index in enumerate(indices):
        clock.now = start + n * step
        meter.on_frame(opus_frame(index, origin=origin))


def test_one_second_gap_in_rtp_and_arrival_is_about_one_second_concealed_in_one_event():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    feed(meter, clock, range(100, 150), at=clock.now + 1.02)  # frames 50-99 never came
    stats = meter.stats()
    assert stats.concealmentEvents == 1
    assert stats.concealedSamples == pytest.approx(RATE, abs=FRAME)
    assert stats.lateFrames == 0
    assert stats.totalSamplesReceived == pytest.approx(150 * FRAME, abs=FRAME)
    assert stats.audioCoverage == pytest.approx(100 / 150, abs=0.02)


def test_frames_in_time_are_played_without_concealment_and_full_coverage():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(250))  # 5 s
    stats = meter.stats()
    assert stats == AudioPlayoutStats(
        totalSamplesReceived=250 * FRAME, totalSamplesDuration=5.0, concealedSamples=0, concealmentEvents=0,
        lateFrames=0, lateSamples=0, audioCoverage=1.0, audioLevel=0.0, totalAudioEnergy=0.0,
        framesReceived=250, sampleRate=RATE)


def test_frames_held_back_past_the_target_delay_are_late_and_concealed():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    # Frames 50-54 are held 0.1 s (a blocked loop), then delivered at once: the first ones
    # missed their slots (the device has 50 ms in hand), the last ones are still in time.
    burst_at = clock.now + 0.02 + 0.1
    feed(meter, clock, range(50, 55), at=burst_at, step=0.0)
    feed(meter, clock, range(55, 100), at=burst_at + 0.02)
    stats = meter.stats()
    late = round((0.1 - TARGET_DELAY) / 0.02) + 1  # whose playout time had passed
    assert stats.lateFrames == pytest.approx(late, abs=1)
    assert stats.lateSamples == stats.lateFrames * FRAME
    assert stats.concealedSamples == stats.lateSamples  # their slots, no more
    assert stats.concealmentEvents == 1


def test_a_lasting_delay_step_resynchronises_once_instead_of_every_frame_being_late():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    feed(meter, clock, range(50, 300), at=clock.now + 0.02 + 0.5)  # from now on 0.5 s later
    stats = meter.stats()
    # The first 200 ms of it are late (and dropped); then the device takes the longer delay.
    assert stats.lateFrames == pytest.approx(RESYNC_LATE_SECONDS / 0.02, abs=1)
    assert stats.concealmentEvents == 1
    assert stats.concealedSamples == pytest.approx((0.5 + RESYNC_LATE_SECONDS) * RATE, abs=2 * FRAME)


def test_an_ongoing_stall_shows_as_concealment_while_it_lasts():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    clock.now += 2.0  # nothing arrives
    stalled = meter.stats()
    assert stalled.concealedSamples == pytest.approx((2.0 + 0.02 - TARGET_DELAY - 0.02) * RATE, abs=FRAME)
    assert stalled.concealmentEvents == 1
    assert stalled.audioCoverage < 0.4
    clock.now += 1.0
    assert meter.stats().concealedSamples > stalled.concealedSamples  # it grows with the stall


def test_a_new_source_with_a_new_rtp_clock_conceals_the_outage_only():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    meter.new_source()  # a reconnection: the new peer's RTP clock is random
    feed(meter, clock, range(100), at=clock.now + 3.0, origin=123_456_789)
    stats = meter.stats()
    assert stats.concealmentEvents == 1
    assert stats.concealedSamples == pytest.approx(3.0 * RATE, abs=2 * FRAME)
    assert stats.lateFrames == 0


def test_figures_stop_when_the_stream_ends():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    feed(meter, clock, range(50))
    meter.end()
    at_end = meter.stats()
    clock.now += 10.0
    meter.on_frame(opus_frame(50))
    assert meter.stats() == at_end


def test_audio_level_and_energy_follow_the_signal():
    clock = FakeClock()
    meter = AudioPlayoutMeter(clock)
    for index in range(50):  # a constant half-scale signal: level 0.5, energy 0.25 × 1 s
        clock.now += 0.02
        meter.on_frame(opus_frame(index, amplitude=16384))
    stats = meter.stats()
    assert stats.audioLevel == pytest.approx(0.5, rel=1e-3)
    assert stats.totalAudioEnergy == pytest.approx(0.25, rel=1e-3)


# --- on real calls ------------------------------------------------------------------


async def test_unimpaired_call_plays_its_audio_in_time_and_the_figures_outlast_it(orga_kwargs):
    async with orga.connect(source=Tone(440), **orga_kwargs) as session:
        hub = session._audio_hub  # noqa: SLF001 (until stats() carries the meters)
        await asyncio.sleep(5.0)
        stats = hub.playout_stats()
    print(f"\nunimpaired: {stats}")
    assert stats is not None and stats.framesReceived >= 150
    assert stats.audioCoverage >= 0.95
    assert stats.concealedRatio < 0.05
    assert stats.lateFrames <= 5  # start-up: the encoders and the echo settle
    final = hub.playout_stats()
    await asyncio.sleep(0.3)
    assert hub.playout_stats() == final  # the session ended: its wall clock stopped with it
    assert final is not None and final.audioCoverage >= 0.9


async def hog_loop(seconds: float) -> None:
    """Block the event loop for 80 ms of every 100 ms, as many sessions on 2 cores do."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.08)  # noqa: ASYNC251 (blocking on purpose)
        await asyncio.sleep(0.02)


async def test_starved_event_loop_lowers_coverage_and_raises_concealment_then_recovers(orga_kwargs):
    async with orga.connect(source=Tone(440), **orga_kwargs) as session:
        hub = session._audio_hub  # noqa: SLF001
        await asyncio.sleep(2.0)
        before = hub.playout_stats()
        await hog_loop(3.0)
        starved = hub.playout_stats()
        await asyncio.sleep(0.5)  # the last stall's frames come in
        settled = hub.playout_stats()
        await asyncio.sleep(2.5)
        after = hub.playout_stats()
    assert before is not None and starved is not None and settled is not None and after is not None
    print(f"\nbefore: {before}\nstarved: {starved}\nafter: {after}")

    def concealed(a: AudioPlayoutStats, b: AudioPlayoutStats) -> float:
        return (b.concealedSamples - a.concealedSamples) / max(1, b.totalSamplesReceived - a.totalSamplesReceived)

    assert before.audioCoverage >= 0.95 and before.lateFrames <= 5
    # Each stall outlasts the 50 ms in hand: up to 30 ms of every 100 ms miss their time.
    assert concealed(before, starved) > 0.1
    assert starved.lateFrames >= before.lateFrames + 10
    assert starved.concealmentEvents >= before.concealmentEvents + 5  # ~30 stalls; runs merge on a loaded machine
    assert starved.audioCoverage < before.audioCoverage - 0.1
    # Once the loop is free again, the audio plays in time and coverage climbs back.
    assert concealed(settled, after) < 0.05
    assert after.audioCoverage > starved.audioCoverage


async def test_meters_on_a_hub_survive_a_reconnect_and_show_the_outage_as_concealment_and_a_freeze():
    audio_hub: StreamHub[av.AudioFrame] = StreamHub()
    video_hub: StreamHub[av.VideoFrame] = StreamHub()

    async def call(seconds: float) -> None:
        caller = Peer([])
        receiver = Peer([], audio_hub=audio_hub, video_hub=video_hub)  # a session's hubs, as after a reconnect
        tone, pattern = Tone(440), TestPattern(fps=15)
        try:
            caller.add_transceiver("audio", tone, "sendonly")
            caller.add_transceiver("video", pattern, "sendonly")
            await caller.accept_answer(await receiver.accept_offer(await caller.create_offer()))
            await asyncio.gather(caller.wait_connected(), receiver.wait_connected())
            await asyncio.sleep(seconds)
        finally:
            tone.stop()
            pattern.stop()
            await asyncio.gather(caller.close(), receiver.close())

    await call(2.0)
    first, first_video = audio_hub.playout_stats(), video_hub.render_stats()
    lost_at = time.monotonic()
    await asyncio.sleep(1.0)
    await call(2.0)
    audio, video = audio_hub.playout_stats(), video_hub.render_stats()
    print(f"\nfirst call: {first}\n{first_video}\nafter the second: {audio}\n{video}")
    assert first is not None and audio is not None and first_video is not None and video is not None
    outage = (audio.concealedSamples - first.concealedSamples) / RATE
    assert 1.0 <= outage <= time.monotonic() - lost_at - 1.5  # the second call played ~2 s
    assert audio.concealmentEvents == first.concealmentEvents + 1
    assert audio.framesReceived >= 2 * first.framesReceived * 0.8
    assert video.freezeCount == first_video.freezeCount + 1 and video.pauseCount == 0
    assert video.framesRendered >= 1.6 * first_video.framesRendered
