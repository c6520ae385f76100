"""A speaker: plays peerbot ``AudioFrame`` streams to an output device through PortAudio, and hands
what it plays to the microphone's echo canceller (see ``audio_processing``)."""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterable
from typing import Any, Literal

import av
import numpy as np

from ..errors import AudioDeviceError, ConfigurationError, MediaError
from . import audio_processing
from .audio_processing import AudioProcessing
from .devices import call_in_loop, device_info, import_sounddevice, resolve_device
from .frames import AudioFrame

log = logging.getLogger(__name__)

_LAYOUTS = {1: "mono", 2: "stereo"}


class Speaker:
    """Plays audio frames on an output device.

    ``device`` is an index, a (part of a) device name, or ``None`` for the system default. The
    output stream opens on the first frame, at ``sample_rate``/``channels`` when given, else at
    the first frame's; later frames of another rate are resampled, other channel counts are
    up- or down-mixed. The device pulls from a bounded buffer: ``play()`` waits for room (it
    paces the iterator at real time), and when the buffer runs dry the device plays silence and
    ``underruns`` counts it.

    What the device plays is the echo a microphone's canceller must remove: ``echo_reference``
    ``"auto"`` feeds it to the echo canceller of every running ``Microphone(echo_cancellation=True)``
    of the process, an ``AudioProcessing`` to that one only, ``None`` to none.

    A device that stops (unplugged) does not end ``play()``: ``device_error`` says what happened, a
    warning is logged, and the frames are taken at real time and dropped.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        sample_rate: int | None = None,
        channels: int | None = None,
        buffer_seconds: float = 0.2,
        echo_reference: AudioProcessing | Literal["auto"] | None = "auto",
    ) -> None:
        if not (echo_reference is None or echo_reference == "auto" or isinstance(echo_reference, AudioProcessing)):
            raise ConfigurationError(
                f"echo_reference must be 'auto', None or an AudioProcessing, got {echo_reference!r}")
        self._sd = import_sounddevice()
        info = device_info(resolve_device(device, "output"), "output")
        self.device_name = info.name
        self._index = info.index
        self._max_channels = info.max_output_channels
        self.sample_rate = sample_rate
        self.channels = channels
        self.underruns = 0
        self.echo_reference = echo_reference
        self.device_error: str | None = None  # set when the device stopped under us
        self._buffer_seconds = buffer_seconds
        self._buffer: _SampleBuffer | None = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._room: asyncio.Event | None = None  # set by the device thread when it consumed samples
        self._playing = False
        self._closed = False
        self._resampler: av.AudioResampler | None = None
        self._resampler_key: tuple[int, int] | None = None
        self._latency = 0.0  # the device's output latency, once open
        self._discard_due = 0.0  # loop time by which dropped samples would have been played
        self._reference_failed = False

    async def play(self, frames: AsyncIterable[AudioFrame]) -> None:
        """Play every frame of ``frames``; return once the last one has left the speaker."""
        if self._closed:
            raise MediaError(f"speaker {self.device_name!r} is closed")
        # A fresh event per play(): an asyncio.Event belongs to the loop that first awaits it.
        self._room = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._playing = True
        try:
            async for frame in frames:
                if self._closed:
                    raise MediaError(f"speaker {self.device_name!r} was closed while playing")
                if self._stream is None:
                    await asyncio.to_thread(self._open, frame)
                await self._write(self._convert(frame))
                if not self._stream.active and self.device_error is None:
                    self._start()  # only now: starting empty would count a spurious underrun
            if self._resampler is not None:
                await self._write(self._resampler_tail())
            await self._drain()
        finally:
            self._playing = False

    def close(self) -> None:
        """Stop the device; frames still buffered are discarded."""
        self._closed = True
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.close(ignore_errors=True)

    async def __aenter__(self) -> Speaker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    # --- device side -------------------------------------------------------------------

    def _open(self, first: AudioFrame) -> None:
        self.sample_rate = int(self.sample_rate or first.sample_rate)
        self.channels = int(self.channels or min(first.channels, self._max_channels))
        self._buffer = _SampleBuffer(max(1, int(self.sample_rate * self._buffer_seconds)), self.channels)
        try:
            stream = self._sd.OutputStream(
                device=self._index,
                channels=self.channels,
                samplerate=self.sample_rate,
                dtype="int16",
                callback=self._on_output,
                finished_callback=self._on_finished,
            )
        except (self._sd.PortAudioError, ValueError) as exc:
            raise AudioDeviceError(
                f"cannot open audio output device {self.device_name!r} "
                f"({self.channels} ch, {self.sample_rate} Hz): {exc}"
            ) from exc
        self._stream = stream
        self._latency = float(stream.latency)

    def _start(self) -> None:
        try:
            self._stream.start()
        except self._sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot start audio output device {self.device_name!r}: {exc}") from exc

    def _on_output(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        # PortAudio thread: fill from the buffer, pad with silence, tell the loop there is room.
        buffer, loop, room = self._buffer, self._loop, self._room
        assert buffer is not None and loop is not None and room is not None  # set before the stream starts
        got = buffer.read_into(outdata)
        if got < frames:
            outdata[got:] = 0
            if self._playing and not buffer.draining:
                self.underruns += 1
        self._feed_echo_cancellers(outdata)
        try:
            loop.call_soon_threadsafe(room.set)
        except RuntimeError:
            pass  # loop closed while the device was still running

    def _feed_echo_cancellers(self, played: np.ndarray) -> None:
        reference = self.echo_reference
        if reference is None or self._reference_failed:
            return
        targets = audio_processing.offered() if reference == "auto" else (reference,)
        try:
            for processing in targets:
                processing.add_reference(played, int(self.sample_rate or 0), self._latency)
        except Exception:  # raised here it would abort PortAudio's stream: play on without the reference
            self._reference_failed = True
            log.exception("echo reference of %r failed; echo is no longer cancelled", self.device_name)

    def _on_finished(self) -> None:
        # PortAudio thread: the stream became inactive. Unless close() did it, the device went away.
        if not self._closed:
            call_in_loop(self._loop, self._lost)

    def _lost(self) -> None:
        if self._closed or self.device_error is not None:
            return
        self.device_error = (f"audio output device {self.device_name!r} stopped playing (unplugged?);"
                             " received audio is dropped")
        log.warning("%s", self.device_error)
        if self._room is not None:
            self._room.set()  # wakes a play() that waits for the device to take samples

    # --- loop side ---------------------------------------------------------------------

    async def _write(self, samples: np.ndarray) -> None:
        buffer, room = self._buffer, self._room
        assert buffer is not None and room is not None  # _open() and play() made them
        while not buffer.has_room(len(samples)) and self.device_error is None:
            room.clear()
            await room.wait()
            if self._stream is None:
                raise MediaError(f"speaker {self.device_name!r} was closed while playing")
        if self.device_error is not None:
            await self._discard(len(samples))
            return
        buffer.write(samples)

    async def _discard(self, samples: int) -> None:
        # Taken at the pace the device would have played them, so a file does not rush through.
        loop = asyncio.get_running_loop()
        self._discard_due = max(self._discard_due, loop.time()) + samples / (self.sample_rate or 48000)
        await asyncio.sleep(max(0.0, self._discard_due - loop.time() - self._buffer_seconds))

    async def _drain(self) -> None:
        if self._buffer is None or self._room is None or self.device_error is not None:
            return
        self._buffer.draining = True
        try:
            while len(self._buffer) and self._stream is not None and self.device_error is None:
                self._room.clear()
                await self._room.wait()
            if self._stream is not None:
                # The last samples sit in the device's own buffer for about its latency.
                await asyncio.sleep(float(self._stream.latency))
        finally:
            self._buffer.draining = False

    def _convert(self, frame: AudioFrame) -> np.ndarray:
        """``frame`` as int16 ``(samples, channels)`` at the stream's rate and channel count."""
        assert self.channels is not None and self.sample_rate is not None  # fixed by _open()
        data = np.asarray(frame.data, dtype=np.int16)
        data = _mix(data, self.channels)
        if frame.sample_rate != self.sample_rate:
            data = self._resample(data, frame.sample_rate)
        return np.ascontiguousarray(data.T)

    def _resample(self, data: np.ndarray, rate: int) -> np.ndarray:
        assert self.channels is not None and self.sample_rate is not None  # fixed by _open()
        if self.channels not in _LAYOUTS:
            raise MediaError(f"cannot resample {self.channels}-channel audio from {rate} to {self.sample_rate} Hz")
        layout = _LAYOUTS[self.channels]
        if self._resampler_key != (rate, self.channels):
            self._resampler = av.AudioResampler(format="s16", layout=layout, rate=self.sample_rate)
            self._resampler_key = (rate, self.channels)
        source = av.AudioFrame.from_ndarray(data.T.reshape(1, -1), format="s16", layout=layout)
        source.sample_rate = rate
        assert self._resampler is not None
        return self._collect(self._resampler.resample(source))

    def _resampler_tail(self) -> np.ndarray:
        """The samples the resampler still holds, as ``(samples, channels)``; resets it."""
        assert self._resampler is not None
        tail = self._collect(self._resampler.resample(None))
        self._resampler = self._resampler_key = None
        return np.ascontiguousarray(tail.T)

    def _collect(self, frames: list[av.AudioFrame]) -> np.ndarray:
        channels = self.channels or 1
        out = [f.to_ndarray().reshape(-1, channels).T for f in frames]
        return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.int16)


def _mix(data: np.ndarray, channels: int) -> np.ndarray:
    """``(in_channels, n)`` to ``(channels, n)``: mono is copied to every channel, several
    channels are averaged down to mono, otherwise extra channels are cut or silent ones added."""
    have = data.shape[0]
    if have == channels:
        return data
    if have == 1:
        return np.repeat(data, channels, axis=0)
    if channels == 1:
        mono: np.ndarray = data.mean(axis=0, keepdims=True).astype(np.int16)
        return mono
    if have > channels:
        return data[:channels]
    return np.concatenate([data, np.zeros((channels - have, data.shape[1]), np.int16)])


class _SampleBuffer:
    """A bounded FIFO of ``(samples, channels)`` int16 chunks shared with the device thread."""

    def __init__(self, capacity: int, channels: int) -> None:
        self.capacity = capacity
        self.channels = channels
        self.draining = False
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0  # samples already read from the first chunk
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def has_room(self, samples: int) -> bool:
        # An oversized chunk still goes in once the buffer is empty, or play() would hang.
        return self._size == 0 or self._size + samples <= self.capacity

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            self._chunks.append(samples)
            self._size += len(samples)

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` samples into ``out``; return how many were copied."""
        filled = 0
        with self._lock:
            while filled < len(out) and self._chunks:
                chunk = self._chunks[0]
                n = min(len(out) - filled, len(chunk) - self._offset)
                out[filled : filled + n] = chunk[self._offset : self._offset + n]
                filled += n
                self._offset += n
                if self._offset == len(chunk):
                    self._chunks.popleft()
                    self._offset = 0
            self._size -= filled
        return filled
