"""Video continuity through a far side that echoes: frame counters skipped, repeated, reordered,
and end-to-end video latency.

``TimedTestPattern`` is a ``TestPattern`` that notes when each numbered picture left; the far
side sends our pictures back, and ``VideoContinuity`` reads the number drawn in each received
one (``read_frame_counter``). A number that follows the last one by more than one means frames
skipped (lost on the way, dropped by a decoder or a relay, or by a reader too slow for its
queue); the same number again, a repeated frame; an earlier one, a frame out of order.

Video latency is the monotonic time a picture reached the reader minus the time the pattern
handed it to the sender: the whole path, both encodes and decodes included. (Unlike audio,
every picture is measured and the median taken, so one late delivery does not move it.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterable

import av
import numpy as np

from ..media.frames import VideoFrame
from ..media.synthetic import COUNTER_BITS, TestPattern, read_frame_counter

__all__ = ["ContinuityResult", "TimedTestPattern", "VideoContinuity"]

_WRAP = 1 << COUNTER_BITS  # the drawn counter wraps (after 73 min at 15 fps)


class TimedTestPattern(TestPattern):
    """A ``TestPattern`` that notes when each picture was handed to the sender (``sent_at``)."""

    __test__ = False

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__(width, height, fps)
        self._sent_at = np.full(_WRAP, np.nan)

    async def recv(self) -> av.VideoFrame:
        frame = await super().recv()
        self._sent_at[(self.count - 1) % _WRAP] = time.monotonic()
        return frame

    def sent_at(self, number: int) -> float | None:
        """Monotonic time picture ``number`` (as drawn) left, or None if it has not yet."""
        when = float(self._sent_at[number % _WRAP])
        return None if np.isnan(when) else when


@dataclasses.dataclass(frozen=True)
class ContinuityResult:
    """What the received frame counters showed.

    ``frames_expected`` is the span of numbers from the first received to the last (what a
    lossless path would have delivered); ``frames_skipped`` the numbers missing in it.
    ``latencies_ms`` holds one figure per new picture, when the sent times are known.
    """

    frames_received: int
    frames_expected: int
    frames_skipped: int
    frames_repeated: int
    frames_out_of_order: int
    latencies_ms: tuple[float, ...] = ()

    @property
    def skipped_percent(self) -> float:
        return 100.0 * self.frames_skipped / self.frames_expected if self.frames_expected else 0.0

    @property
    def latency_ms(self) -> float | None:
        """Median end-to-end video latency, or None when not measured."""
        return float(np.median(self.latencies_ms)) if self.latencies_ms else None

    @property
    def latency_p95_ms(self) -> float | None:
        return float(np.percentile(self.latencies_ms, 95)) if self.latencies_ms else None

    def to_metrics(self) -> dict[str, float | None]:
        """Flat figures in the metrics vocabulary."""
        return {"video_frames_skipped": float(self.frames_skipped),
                "video_frames_repeated": float(self.frames_repeated),
                "video_latency_ms": self.latency_ms}


class VideoContinuity:
    """Counts continuity of received test-pattern pictures; with the sent ``pattern``, their latency.

    Feed it with ``observe(frame)`` from your own ``async for``, or let ``measure()`` read a stream.
    """

    def __init__(self, pattern: TimedTestPattern | None = None) -> None:
        self.pattern = pattern
        self._first: int | None = None
        self._last = 0
        self._span = 0  # numbers advanced past the first
        self._received = self._skipped = self._repeated = self._out_of_order = 0
        self._latencies: list[float] = []

    def observe(self, frame: VideoFrame, arrived_at: float | None = None) -> None:
        """Take one received picture that reached us at monotonic ``arrived_at`` (default: now)."""
        arrived_at = time.monotonic() if arrived_at is None else arrived_at
        number = read_frame_counter(frame.data)
        self._received += 1
        if self._first is None:
            self._first = self._last = number
        else:
            step = (number - self._last) % _WRAP
            if step == 0:
                self._repeated += 1
                return
            if step >= _WRAP // 2:  # behind the newest: late, not a jump of half the counter
                self._out_of_order += 1
                return
            self._skipped += step - 1
            self._span += step
            self._last = number
        sent = self.pattern.sent_at(number) if self.pattern is not None else None
        if sent is not None and sent <= arrived_at:
            self._latencies.append(round((arrived_at - sent) * 1000, 1))

    def result(self) -> ContinuityResult:
        """The counts so far."""
        return ContinuityResult(
            frames_received=self._received, frames_expected=self._span + 1 if self._first is not None else 0,
            frames_skipped=self._skipped, frames_repeated=self._repeated,
            frames_out_of_order=self._out_of_order, latencies_ms=tuple(self._latencies))

    async def measure(self, frames: AsyncIterable[VideoFrame], duration: float) -> ContinuityResult:
        """Read ``frames`` for ``duration`` seconds (or until they end); the counts so far.
        ``frames`` is left open."""
        try:
            async with asyncio.timeout(duration):
                async for frame in frames:
                    self.observe(frame)
        except TimeoutError:
            pass
        return self.result()
