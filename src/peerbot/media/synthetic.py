"""Synthetic sources: a sine tone, silence, and a video test pattern carrying a frame counter."""

from __future__ import annotations

import asyncio
import fractions
import math
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import ConfigurationError
from ._paced import PacedAudioTrack, frames_missed

VIDEO_CLOCK = 90000
COUNTER_BITS = 16
_BLOCK = 16  # pixels per counter bit: big enough to survive VP8/H264 at low bitrates


class Tone(PacedAudioTrack):
    """A continuous sine tone (default 440 Hz at -10 dBFS)."""

    def __init__(self, frequency: float = 440.0, *, amplitude: float = 0.3, sample_rate: int = 48000) -> None:
        super().__init__(sample_rate=sample_rate, channels=1)
        nyquist = self.sample_rate / 2
        self.frequency = _number("frequency", frequency, f"between 0 and {nyquist:g} Hz (half the sample rate)",
                                 lambda f: 0 < f < nyquist)
        self.amplitude = _number("amplitude", amplitude, "from 0 to 1 (full scale)", lambda a: 0 <= a <= 1)
        self._phase = 0

    def _next_samples(self, n: int) -> np.ndarray:
        t = (np.arange(n) + self._phase) / self.sample_rate
        self._phase += n
        wave = self.amplitude * 32767 * np.sin(2 * np.pi * self.frequency * t)
        return wave.astype(np.int16).reshape(1, -1)


def _number(name: str, value: object, expected: str, fits: Callable[[float], bool]) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigurationError(f"{name} must be a number {expected}, got {value!r}")
    number = float(value)
    if not (math.isfinite(number) and fits(number)):
        raise ConfigurationError(f"{name} must be {expected}, got {value!r}")
    return number


class Silence(PacedAudioTrack):
    """Digital silence, paced like a microphone."""

    def _next_samples(self, n: int) -> np.ndarray:
        return np.zeros((self.channels, n), dtype=np.int16)


class TestPattern(MediaStreamTrack):
    """Moving colour bars with the frame number drawn as a row of black/white blocks.

    ``read_frame_counter`` recovers the number from a received frame, so a test can check
    that frames arrive, in order, without comparing pictures.
    """

    kind = "video"
    __test__ = False  # not a pytest class despite the name

    def __init__(self, width: int = 320, height: int = 240, fps: int = 15) -> None:
        super().__init__()
        if width < COUNTER_BITS * _BLOCK or height < 2 * _BLOCK:
            raise ValueError(f"test pattern needs at least {COUNTER_BITS * _BLOCK}x{2 * _BLOCK} pixels")
        self.width, self.height, self.fps = width, height, fps
        self.count = 0
        self._start: float | None = None
        bars = np.array([[192, 192, 192], [192, 192, 0], [0, 192, 192], [0, 192, 0],
                         [192, 0, 192], [192, 0, 0], [0, 0, 192], [16, 16, 16]], dtype=np.uint8)
        columns = (np.arange(width) * len(bars) // width)
        self._bars = np.broadcast_to(bars[columns], (height, width, 3)).copy()

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            wait = self._start + self.count / self.fps - time.monotonic()
            self.count += frames_missed(wait, 1 / self.fps)  # far behind: the gap's pictures are skipped
            wait = self._start + self.count / self.fps - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        image = np.roll(self._bars, self.count * 4, axis=1)
        draw_frame_counter(image, self.count)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts = int(self.count * VIDEO_CLOCK / self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self.count += 1
        return frame


def draw_frame_counter(image: np.ndarray, number: int) -> None:
    """Draw ``number`` as COUNTER_BITS blocks along the top edge (white = 1), MSB first."""
    for bit in range(COUNTER_BITS):
        on = (number >> (COUNTER_BITS - 1 - bit)) & 1
        image[:_BLOCK, bit * _BLOCK:(bit + 1) * _BLOCK] = 255 if on else 0


def read_frame_counter(image: np.ndarray) -> int:
    """Read back the number drawn by ``draw_frame_counter`` from an rgb/bgr ``(h, w, 3)`` image."""
    number = 0
    for bit in range(COUNTER_BITS):
        # Sample the block's centre: edges bleed after lossy coding.
        block = image[4:_BLOCK - 4, bit * _BLOCK + 4:(bit + 1) * _BLOCK - 4]
        number = (number << 1) | int(block.mean() > 128)
    return number
