"""A microphone as an aiortc audio track: PortAudio capture, 20 ms frames, drop-oldest buffer."""

from __future__ import annotations

import asyncio
import fractions
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import AudioDeviceError
from .devices import device_info, import_sounddevice, resolve_device

FRAME_SECONDS = 0.020


class Microphone(MediaStreamTrack):
    """Audio captured from an input device, delivered by ``recv()`` as 20 ms s16 ``av.AudioFrame``.

    ``device`` is an index, a (part of a) device name, or ``None`` for the system default. The
    device's own default rate is used unless ``sample_rate`` is given: aiortc's encoders resample,
    so no conversion happens here. The stream is opened at construction (so a bad device fails
    early) and started on the first ``recv()``, when the event loop is known.

    A consumer that falls behind loses the oldest frames, never stalls the device:
    ``dropped_frames`` counts them and ``pts`` keeps counting captured samples across the gap.
    """

    kind = "audio"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        channels: int = 1,
        sample_rate: int | None = None,
        buffer_frames: int = 50,
    ) -> None:
        super().__init__()
        if channels not in (1, 2):
            raise AudioDeviceError(f"a microphone captures mono or stereo, not {channels} channels")
        self._sd = import_sounddevice()
        info = device_info(resolve_device(device, "input"), "input")
        if info.max_input_channels < channels:
            raise AudioDeviceError(
                f"audio device {info.name!r} has {info.max_input_channels} input channel(s), {channels} requested"
            )
        self.device_name = info.name
        self.channels = channels
        self.sample_rate = int(sample_rate or info.default_samplerate)
        self.samples_per_frame = round(self.sample_rate * FRAME_SECONDS)
        self.dropped_frames = 0
        self.device_overflows = 0  # PortAudio's own "input overflow" flags
        # (pts, samples) pairs; None wakes a pending recv() after stop().
        self._queue: asyncio.Queue[tuple[int, np.ndarray] | None] = asyncio.Queue(maxsize=buffer_frames)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_pts = 0  # samples captured so far, including dropped ones
        self._carry = np.zeros((0, channels), np.int16)  # device samples short of a whole frame
        self._time_base = fractions.Fraction(1, self.sample_rate)
        self._stream = self._open(info.index)

    def _open(self, index: int) -> Any:
        try:
            return self._sd.InputStream(
                device=index,
                channels=self.channels,
                samplerate=self.sample_rate,
                dtype="int16",
                # The host's own period size (PortAudio's advice for robust, low-latency
                # streams); _on_audio cuts it into 20 ms frames.
                blocksize=0,
                callback=self._on_audio,
            )
        except (self._sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(
                f"cannot open audio input device {self.device_name!r} "
                f"({self.channels} ch, {self.sample_rate} Hz): {exc}"
            ) from exc

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._loop is None:
            self._start()
        item = await self._queue.get()
        if item is None:
            raise MediaStreamError
        pts, chunk = item
        frame = av.AudioFrame.from_ndarray(
            chunk.reshape(1, -1), format="s16", layout="mono" if self.channels == 1 else "stereo"
        )
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        frame.pts = pts
        return frame

    def stop(self) -> None:
        if self.readyState == "live":
            super().stop()
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close(ignore_errors=True)
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            self._stream.start()
        except self._sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot start audio input device {self.device_name!r}: {exc}") from exc

    def _on_audio(self, indata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        # PortAudio thread: cut into 20 ms chunks (copies: PortAudio reuses indata) for the loop.
        data = np.concatenate((self._carry, indata)) if len(self._carry) else indata
        n = self.samples_per_frame
        whole = len(data) - len(data) % n
        self._carry = data[whole:].copy()
        overflow = bool(status.input_overflow)
        loop = self._loop
        assert loop is not None  # set before the stream starts
        try:
            for start in range(0, whole, n):
                loop.call_soon_threadsafe(self._push, data[start : start + n].copy(), overflow)
                overflow = False
        except RuntimeError:
            pass  # loop closed while the device was still delivering

    def _push(self, chunk: np.ndarray, overflow: bool) -> None:
        if self.readyState != "live":
            return
        self.device_overflows += overflow
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped_frames += 1
        self._queue.put_nowait((self._next_pts, chunk))
        self._next_pts += len(chunk)
