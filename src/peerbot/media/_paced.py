"""A base audio track that emits 20 ms frames on the wall clock, like a sound card would."""

from __future__ import annotations

import asyncio
import fractions
import time

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import ConfigurationError

FRAME_SECONDS = 0.020
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 192000
# How late a frame may be and still be caught up on (sent at once). Later than this, nobody read
# for a while (no sender during a reconnection, a starved loop): the frames of the gap are skipped,
# as a capture device drops what nobody took, and timestamps jump over it. Sending them late as
# one burst, or re-anchoring the clock, would instead add the gap to every later frame's delay.
MAX_LATENESS = 0.100


def check_sample_rate(rate: object, name: str = "sample_rate") -> int:
    """A whole number of samples per second a source can produce, else ``ConfigurationError``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ConfigurationError(f"{name} must be a whole number of Hz from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE},"
                                 f" got {rate!r}")
    return int(rate)


def frames_missed(wait: float, frame_seconds: float) -> int:
    """Whole frames to skip when the next one was due ``-wait`` seconds ago (0 unless far behind)."""
    return int(-wait / frame_seconds) if wait < -MAX_LATENESS else 0


class PacedAudioTrack(MediaStreamTrack):
    """Subclasses fill ``_next_samples(n)`` with int16 ``(channels, n)``; pacing is done here."""

    kind = "audio"

    def __init__(self, sample_rate: int = 48000, channels: int = 1) -> None:
        super().__init__()
        self.sample_rate = check_sample_rate(sample_rate)
        if channels not in (1, 2) or isinstance(channels, bool):
            raise ConfigurationError(f"channels must be 1 or 2, got {channels!r}")
        self.channels = int(channels)
        self._samples_per_frame = int(sample_rate * FRAME_SECONDS)
        self._pts = 0
        self._start: float | None = None

    def _next_samples(self, n: int) -> np.ndarray:
        raise NotImplementedError

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += self._samples_per_frame
            # Sleep to the frame's due time; a little late, send at once; far behind, skip the gap.
            wait = self._start + self._pts / self.sample_rate - time.monotonic()
            self._pts += frames_missed(wait, FRAME_SECONDS) * self._samples_per_frame
            wait = self._start + self._pts / self.sample_rate - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        data = self._next_samples(self._samples_per_frame)
        layout = "mono" if self.channels == 1 else "stereo"
        # Packed s16 wants one plane of interleaved samples: (1, n * channels).
        frame = av.AudioFrame.from_ndarray(data.T.reshape(1, -1).copy(), format="s16", layout=layout)
        frame.sample_rate = self.sample_rate
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        return frame
