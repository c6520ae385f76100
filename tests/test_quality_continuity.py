"""Video continuity and latency: our test pattern, echoed by a far side, read back by its counters."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from peerbot.engine.peer import Peer
from peerbot.errors import SessionEndedError
from peerbot.media.frames import VideoFrame
from peerbot.media.streams import ConvertedStream, Subscription, video_converter
from peerbot.media.synthetic import draw_frame_counter
from peerbot.quality.continuity import ContinuityResult, TimedTestPattern, VideoContinuity


class EchoedVideo(MediaStreamTrack):
    """The far side's outgoing video: the pictures it receives, every ``drop_every``-th left out.

    It reads the answerer's received-video hub (aiortc's ``MediaRelay`` cannot be used here: the
    Peer's own reader already drains the remote track, and a second ``recv()`` would split it).
    """

    kind = "video"

    def __init__(self, received: Subscription[av.VideoFrame], drop_every: int = 0) -> None:
        super().__init__()
        self._received = received
        self._drop_every = drop_every
        self.relayed = self.dropped = 0

    async def recv(self) -> av.VideoFrame:
        try:
            frame = await self._received.__anext__()
            if self._drop_every and (self.relayed + self.dropped + 1) % self._drop_every == 0:
                self.dropped += 1
                frame = await self._received.__anext__()
        except (StopAsyncIteration, SessionEndedError):
            raise MediaStreamError from None
        self.relayed += 1
        return frame


async def echoed_pattern(drop_every: int = 0, seconds: float = 4.0) -> tuple[ContinuityResult, EchoedVideo]:
    """Send a timed test pattern to a Peer that sends it back; measure what returns."""
    caller, far_side = Peer([]), Peer([])
    pattern = TimedTestPattern()
    try:
        caller.add_transceiver("video", pattern, "sendrecv")
        echo = EchoedVideo(far_side.video.hub.subscribe(maxsize=30), drop_every)
        answer = await far_side.accept_offer(await caller.create_offer(), video=echo)
        await caller.accept_answer(answer)
        await asyncio.gather(caller.wait_connected(), far_side.wait_connected())
        frames = ConvertedStream(caller.video.hub.subscribe(maxsize=30), video_converter("rgb24"))
        result = await VideoContinuity(pattern).measure(frames, duration=seconds)
        return result, echo
    finally:
        pattern.stop()
        await asyncio.gather(caller.close(), far_side.close())


async def test_unimpaired_echo_shows_no_skipped_or_repeated_frames_and_low_video_latency():
    result, _ = await echoed_pattern()
    print(f"\nunimpaired: {result.frames_received} received of {result.frames_expected}, skipped"
          f" {result.frames_skipped}, repeated {result.frames_repeated}, latency p50 {result.latency_ms} ms"
          f" p95 {result.latency_p95_ms} ms")
    assert result.frames_received >= 40  # 15 fps for 4 s, less the time to the first picture
    # A shared 2-core machine may lose a picture or two while the encoders start.
    assert result.frames_skipped <= 2 and result.frames_repeated <= 2 and result.frames_out_of_order == 0
    assert result.latency_ms is not None and 0 < result.latency_ms < 300
    assert len(result.latencies_ms) == result.frames_received - result.frames_repeated


async def test_far_side_dropping_every_tenth_frame_is_measured_as_ten_percent_skipped():
    result, echo = await echoed_pattern(drop_every=10)
    print(f"\ndropping 1 in 10: {result.frames_skipped} skipped of {result.frames_expected}"
          f" ({result.skipped_percent:.1f} %); the far side left out {echo.dropped}")
    # Each picture the far side left out is one skipped here (it may leave out one more after
    # we stopped reading, or one before our first picture); nothing else is lost on loopback.
    assert echo.dropped >= 4 and echo.dropped - 2 <= result.frames_skipped <= echo.dropped
    assert result.skipped_percent == pytest.approx(10, abs=4)
    assert result.frames_repeated <= 2
    metrics = result.to_metrics()
    assert metrics["video_frames_skipped"] == result.frames_skipped
    assert metrics["video_latency_ms"] is not None and metrics["video_latency_ms"] < 300


def test_counter_steps_are_classified_as_skips_repeats_and_reordering_across_the_wrap():
    continuity = VideoContinuity()
    for number in (65533, 65534, 65534, 1, 0, 2, 5):
        image = np.zeros((240, 320, 3), np.uint8)
        draw_frame_counter(image, number)
        continuity.observe(VideoFrame(image, 320, 240, "rgb24", 0.0))
    result = continuity.result()
    # 65534 → 1 skips 65535 and 0; 0 then arrives late; 2 → 5 skips 3 and 4.
    assert (result.frames_skipped, result.frames_repeated, result.frames_out_of_order) == (4, 1, 1)
    assert result.frames_expected == 9 and result.latency_ms is None
