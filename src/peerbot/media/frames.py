"""Plain frame objects handed to applications: numpy data, rate or size, and a timestamp.

The av/aiortc frame objects stay inside the engine; these are what ``async for`` yields.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AudioFrame:
    """A chunk of PCM audio.

    ``data`` is int16 with shape ``(channels, samples)``; ``timestamp`` is seconds since the
    stream's first sample, from the RTP clock (so gaps in sending show as jumps).
    """

    data: np.ndarray
    sample_rate: int
    timestamp: float

    @property
    def channels(self) -> int:
        return int(self.data.shape[0])

    @property
    def samples(self) -> int:
        return int(self.data.shape[1])

    @property
    def duration(self) -> float:
        return self.samples / self.sample_rate


@dataclass(frozen=True)
class VideoFrame:
    """A decoded picture. ``data`` is ``(height, width, 3)`` uint8 for rgb24/bgr24."""

    data: np.ndarray
    width: int
    height: int
    format: str
    timestamp: float
