"""Measurements the tests make on received media."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np


def dominant_frequency(samples: np.ndarray, sample_rate: int) -> float:
    """The strongest frequency in a mono signal, by FFT with a Hann window."""
    x = samples.astype(np.float64)
    x -= x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sample_rate / len(x))


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


async def drain(stream: Any, seconds: float) -> list:
    """Every frame a stream yields within ``seconds``; the stream is closed afterwards."""
    got: list = []
    try:
        async with asyncio.timeout(seconds):
            async for frame in stream:
                got.append(frame)
    except TimeoutError:
        pass
    finally:
        stream.close()
    return got
