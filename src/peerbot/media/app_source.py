"""Audio pushed by the application, like LiveKit's ``AudioSource.capture_frame``."""

from __future__ import annotations

import asyncio
import collections
import math

import av
import numpy as np

from ..errors import ConfigurationError
from ._paced import PacedAudioTrack, check_sample_rate


class AudioSource(PacedAudioTrack):
    """An audio track fed by ``await capture(pcm, sample_rate)``.

    Audio is converted to the source's rate and channel count, queued (at most
    ``queue_seconds``; ``capture`` waits while the queue is full) and sent in real-time 20 ms
    frames. When the queue runs dry the track sends silence. ``clear()`` drops what is queued
    (barge-in); ``wait_for_playout()`` returns once everything captured has been sent.
    """

    def __init__(self, sample_rate: int = 48000, channels: int = 1, *, queue_seconds: float = 1.0) -> None:
        super().__init__(sample_rate=sample_rate, channels=channels)
        if (isinstance(queue_seconds, bool) or not isinstance(queue_seconds, (int, float))
                or not 0 < queue_seconds <= 3600 or not math.isfinite(queue_seconds)):
            raise ConfigurationError(f"queue_seconds must be a number of seconds above 0 (at most 3600),"
                                     f" got {queue_seconds!r}")
        self._capacity = max(1, int(queue_seconds * self.sample_rate))
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._queued = 0
        self._space = asyncio.Condition()
        self._drained = asyncio.Event()
        self._drained.set()
        self._resamplers: dict[tuple[int, int], av.AudioResampler] = {}

    @property
    def queued_seconds(self) -> float:
        """Audio waiting to be sent."""
        return self._queued / self.sample_rate

    async def capture(self, pcm: np.ndarray, sample_rate: int, channels: int | None = None) -> None:
        """Queue PCM: int16, or float in [-1, 1].

        1-D input is interleaved samples of ``channels`` (default 1); 2-D input is
        ``(channels, n)`` or ``(n, channels)``; give ``channels`` to settle which for tiny chunks.
        Channels are 1 or 2; anything else (another dtype or shape, a bad rate) is a ``ConfigurationError``.
        """
        rate = check_sample_rate(sample_rate)
        if channels is not None and (isinstance(channels, bool) or channels not in (1, 2)):
            raise ConfigurationError(f"channels must be 1 or 2 (or None), got {channels!r}")
        planar = _planar(_samples(pcm), channels)
        if planar.shape[1] == 0:
            return
        data = self._convert(planar, rate)
        start = 0
        while start < data.shape[1]:
            async with self._space:
                await self._space.wait_for(lambda: self._queued < self._capacity)
                take = min(self._capacity - self._queued, data.shape[1] - start)
                self._chunks.append(data[:, start:start + take])
                self._queued += take
                self._drained.clear()
            start += take

    def clear(self) -> None:
        """Drop all queued audio at once (the user started talking over the bot)."""
        self._chunks.clear()
        self._queued = 0
        self._drained.set()
        asyncio.ensure_future(self._notify_space())

    async def wait_for_playout(self) -> None:
        """Return when every captured sample has been handed to the sender."""
        await self._drained.wait()

    def _convert(self, pcm: np.ndarray, rate: int) -> np.ndarray:
        if pcm.dtype.kind == "f":
            pcm = (np.clip(np.nan_to_num(pcm, nan=0.0), -1.0, 1.0) * 32767).astype(np.int16)
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        in_channels = pcm.shape[0]
        if rate == self.sample_rate and in_channels == self.channels:
            return pcm
        key = (rate, in_channels)
        if key not in self._resamplers:
            self._resamplers[key] = av.AudioResampler(
                format="s16", layout="mono" if self.channels == 1 else "stereo", rate=self.sample_rate
            )
        frame = av.AudioFrame.from_ndarray(
            pcm.T.reshape(1, -1).copy(), format="s16", layout="mono" if in_channels == 1 else "stereo"
        )
        frame.sample_rate = rate
        pieces = [p.to_ndarray().reshape(-1, self.channels).T for p in self._resamplers[key].resample(frame)]
        if not pieces:
            return np.zeros((self.channels, 0), dtype=np.int16)
        return np.concatenate(pieces, axis=1)

    def _next_samples(self, n: int) -> np.ndarray:
        out = np.zeros((self.channels, n), dtype=np.int16)
        filled = 0
        while filled < n and self._chunks:
            chunk = self._chunks[0]
            take = min(n - filled, chunk.shape[1])
            out[:, filled:filled + take] = chunk[:, :take]
            if take == chunk.shape[1]:
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[:, take:]
            filled += take
        if filled:
            self._queued -= filled
            asyncio.ensure_future(self._notify_space())
        if not self._chunks:
            self._drained.set()
        return out

    async def _notify_space(self) -> None:
        async with self._space:
            self._space.notify_all()


_SHAPES = "1-D (interleaved), (channels, n) or (n, channels), with 1 or 2 channels"


def _samples(pcm: object) -> np.ndarray:
    """``pcm`` as an array of int16 or float samples, else ``ConfigurationError``."""
    try:
        array = np.asarray(pcm)
    except Exception:
        raise ConfigurationError(f"PCM must be a numpy array of int16 or float samples, got {type(pcm).__name__}") from None
    if array.dtype != np.int16 and array.dtype.kind != "f":
        raise ConfigurationError(f"PCM must be int16, or float in [-1, 1], got {array.dtype} samples")
    return array


def _planar(pcm: np.ndarray, channels: int | None) -> np.ndarray:
    """Shape PCM as ``(channels, n)``, or ``ConfigurationError`` for a shape that is not one of ``_SHAPES``."""
    if pcm.ndim == 1:
        count = channels or 1
        if pcm.size % count:
            raise ConfigurationError(f"interleaved {count}-channel PCM needs a multiple of {count} samples,"
                                     f" got {pcm.size}")
        return pcm.reshape(-1, count).T
    if pcm.ndim != 2:
        raise ConfigurationError(f"PCM must be {_SHAPES}; got shape {pcm.shape}")
    rows, columns = pcm.shape
    if channels is not None:
        if rows == channels:
            return pcm
        if columns == channels:
            return pcm.T
        raise ConfigurationError(f"PCM of shape {pcm.shape} has no axis of {channels} channels")
    planar, tall = rows in (1, 2), columns in (1, 2)
    if planar and tall:
        return pcm.T if rows > columns else pcm  # tiny chunks: channels= settles it
    if planar:
        return pcm
    if tall:
        return pcm.T  # (n, channels) is the usual tall shape
    raise ConfigurationError(f"PCM must be {_SHAPES}; got shape {pcm.shape}")
