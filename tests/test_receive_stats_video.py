"""What the receiver renders: frame rate, freezes and pauses, on a 2-Peer loopback with real VP8
and, for the long cases, with the render meter fed frame by frame."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack

from peerbot.engine.peer import Peer
from peerbot.media import TestPattern
from peerbot.media.receive_stats import VideoRenderMeter, VideoRenderStats

FPS = 15


class WithheldPattern(MediaStreamTrack):
    """A test pattern whose sender can be made to hold its next picture back for a while."""

    kind = "video"

    def __init__(self, fps: int) -> None:
        super().__init__()
        self.pattern = TestPattern(fps=fps)
        self._hold = 0.0

    def withhold(self, seconds: float) -> None:
        self._hold = seconds

    async def recv(self) -> av.VideoFrame:
        if self._hold:
            hold, self._hold = self._hold, 0.0
            await asyncio.sleep(hold)  # the pattern then skips the pictures of the gap
        return await self.pattern.recv()

    def stop(self) -> None:
        self.pattern.stop()
        super().stop()


async def test_loopback_video_renders_at_the_sent_rate_and_a_withheld_picture_is_one_freeze():
    caller, far_side = Peer([]), Peer([])
    pattern = WithheldPattern(FPS)
    try:
        caller.add_transceiver("video", pattern, "sendonly")
        await caller.accept_answer(await far_side.accept_offer(await caller.create_offer()))
        await asyncio.gather(caller.wait_connected(), far_side.wait_connected())
        await asyncio.sleep(3.0)
        steady = far_side.video.render_stats()
        pattern.withhold(0.6)
        await asyncio.sleep(2.0)
        after = far_side.video.render_stats()
    finally:
        pattern.stop()
        await asyncio.gather(caller.close(), far_side.close())
    print(f"\nsteady: {steady}\nafter a 0.6 s hold: {after}")
    assert steady is not None and after is not None
    assert steady.framesPerSecond == pytest.approx(FPS, abs=3)
    assert (steady.frameWidth, steady.frameHeight) == (320, 240)
    assert steady.framesDecoded >= 30 and steady.framesDropped == 0
    assert steady.freezeCount == 0 and steady.pauseCount == 0
    assert after.freezeCount == 1 and after.pauseCount == 0
    assert after.totalFreezesDuration == pytest.approx(0.6, abs=0.15)
    assert after.framesPerSecond == pytest.approx(FPS, abs=3)  # back at its rate
    assert far_side.audio.render_stats() is None and far_side.video.playout_stats() is None


def picture(index: int) -> av.VideoFrame:
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), dtype=np.uint8), format="rgb24")
    frame.pts = index * 6000
    frame.time_base = fractions.Fraction(1, 90000)
    return frame


def render(meter: VideoRenderMeter, arrivals: list[float]) -> VideoRenderStats:
    for index, at in enumerate(arrivals):
        meter.on_frame(picture(index), arrival=at)
    return meter.stats()


def frames_at(start: float, count: int) -> list[float]:
    return [start + n / FPS for n in range(count)]


def test_six_seconds_without_a_picture_is_a_pause_not_a_freeze():
    first = frames_at(0.0, 30)
    stats = render(VideoRenderMeter(clock=lambda: first[-1] + 6.0 + 30 / FPS), first + frames_at(first[-1] + 6.0, 30))
    assert (stats.pauseCount, stats.freezeCount) == (1, 0)
    assert stats.totalPausesDuration == pytest.approx(6.0)
    assert stats.framesRendered == 60


def test_a_picture_late_by_less_than_the_freeze_threshold_is_not_a_freeze():
    first = frames_at(0.0, 30)
    # Average 67 ms: a freeze needs ≥ max(200 ms, 217 ms); 200 ms is not one.
    stats = render(VideoRenderMeter(clock=lambda: 10.0), first + frames_at(first[-1] + 0.2, 30))
    assert stats.freezeCount == 0


def test_inter_frame_delays_sum_to_the_time_between_first_and_last_picture():
    arrivals = frames_at(0.0, 30) + frames_at(29 / FPS + 0.7, 10)
    stats = render(VideoRenderMeter(clock=lambda: arrivals[-1]), arrivals)
    assert stats.freezeCount == 1 and stats.totalFreezesDuration == pytest.approx(0.7)
    assert stats.totalInterFrameDelay == pytest.approx(arrivals[-1] - arrivals[0])
    assert stats.totalSquaredInterFrameDelay == pytest.approx(38 / FPS**2 + 0.49)
    assert stats.framesPerSecond == 10  # only the last ten fall in the last second


def test_a_repeated_timestamp_is_dropped_not_rendered():
    meter = VideoRenderMeter(clock=lambda: 1.0)
    for at in (0.0, 0.1):
        meter.on_frame(picture(0), arrival=at)
    stats = meter.stats()
    assert (stats.framesDecoded, stats.framesRendered, stats.framesDropped) == (2, 1, 1)
