"""A microphone as an aiortc audio track: PortAudio capture, 20 ms frames, drop-oldest buffer,
optional echo cancellation, noise suppression and gain (see ``audio_processing``)."""

from __future__ import annotations

import asyncio
import fractions
import logging
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import AudioDeviceError, ConfigurationError
from . import audio_processing
from .audio_processing import AudioProcessing
from .devices import call_in_loop, device_info, import_sounddevice, resolve_device

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.020
# No audio for this long from a started device is a lost device: an ALSA stream whose PulseAudio
# stream was killed may recover from an "overrun" and then sit silent without ever finishing.
STALL_SECONDS = 1.0
START_SECONDS = 5.0  # the same for the first audio after start: a loaded PulseAudio can be slow to begin
_LOST = object()  # queued when the device stops under us: recv() carries on with silence


class Microphone(MediaStreamTrack):
    """Audio captured from an input device, delivered by ``recv()`` as 20 ms s16 ``av.AudioFrame``.

    ``device`` is an index, a (part of a) device name, or ``None`` for the system default. The
    device's own default rate is used unless ``sample_rate`` is given: aiortc's encoders resample,
    so no conversion happens here. The stream is opened at construction (so a bad device fails
    early) and started on the first ``recv()``, when the event loop is known.

    A consumer that falls behind loses the oldest frames, never stalls the device:
    ``dropped_frames`` counts them and ``pts`` keeps counting captured samples across the gap.

    ``echo_cancellation``, ``noise_suppression`` and ``auto_gain`` clean the capture with libwebrtc's
    audio processing (``pip install 'peerbot[desktop]'``), all off by default. With echo
    cancellation on, what a ``Speaker`` of this process plays is the echo to remove (see
    ``audio_processing``); ``stream_delay_ms`` overrides the delay estimated from the devices'
    latencies. ``processing`` shares an ``AudioProcessing`` made by the application instead.

    A device that stops delivering (unplugged, or no audio for ``STALL_SECONDS``) does not end the
    track: ``device_error`` says what happened, a warning is logged, and ``recv()`` goes on with
    silence at the same pace (audio the device delivers after that is dropped).
    """

    kind = "audio"

    def __init__(
        self,
        device: str | int | None = None,
        *,
        channels: int = 1,
        sample_rate: int | None = None,
        buffer_frames: int = 50,
        echo_cancellation: bool = False,
        noise_suppression: bool = False,
        auto_gain: bool = False,
        stream_delay_ms: int | None = None,
        processing: AudioProcessing | None = None,
    ) -> None:
        super().__init__()
        if channels not in (1, 2):
            raise AudioDeviceError(f"a microphone captures mono or stereo, not {channels} channels")
        # Before any device is touched: a missing livekit is a setting to fix, not a device problem.
        self.processing = _processing(processing, echo_cancellation, noise_suppression, auto_gain, stream_delay_ms)
        self._offers = processing is None and echo_cancellation  # shared with "auto" speakers while running
        self._sd = import_sounddevice()
        info = device_info(resolve_device(device, "input"), "input")
        if info.max_input_channels < channels:
            raise AudioDeviceError(
                f"audio device {info.name!r} has {info.max_input_channels} input channel(s), {channels} requested"
            )
        self.device_name = info.name
        self.channels = channels
        self.sample_rate = int(sample_rate or info.default_samplerate)
        if self.processing is not None and self.sample_rate % 100 and sample_rate is None:
            self.sample_rate = 48000  # a device default with no whole 10 ms: one libwebrtc can work in
        if self.processing is not None:
            audio_processing.chunk_samples(self.sample_rate)  # refuses a rate given that cannot be processed
        self.samples_per_frame = round(self.sample_rate * FRAME_SECONDS)
        self.dropped_frames = 0
        self.device_overflows = 0  # PortAudio's own "input overflow" flags
        self.device_error: str | None = None  # set when the device stopped under us
        # (pts, samples) pairs; None wakes a pending recv() after stop(), _LOST when the device went away.
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=buffer_frames)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_pts = 0  # samples captured so far, including dropped ones
        self._carry = np.zeros((0, channels), np.int16)  # device samples short of a whole frame
        self._time_base = fractions.Fraction(1, self.sample_rate)
        self._stopping = False
        self._silence_due = 0.0  # loop time the next silent frame is due, once the device is lost
        self._processing_failed = False
        self._stream = self._open(info.index)
        if self.processing is not None:
            self.processing.input_latency = float(self._stream.latency)

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
                finished_callback=self._on_finished,
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
        if self.device_error is not None and self._queue.empty():
            return await self._silence()
        item = await self._next_item()
        if item is None:
            raise MediaStreamError
        if item is _LOST:
            return await self._silence()
        pts, chunk = item
        return self._frame(pts, chunk)

    async def _next_item(self) -> Any:
        """The next queued item; the device is lost when it delivers nothing for ``STALL_SECONDS``."""
        try:  # no task per frame: a timed-out get leaves any item in the queue
            async with asyncio.timeout(STALL_SECONDS if self._next_pts else START_SECONDS):
                return await self._queue.get()
        except TimeoutError:
            self._lost()  # queues _LOST unless stop() is under way
        return await self._queue.get()

    def _frame(self, pts: int, chunk: np.ndarray) -> av.AudioFrame:
        frame = av.AudioFrame.from_ndarray(
            chunk.reshape(1, -1), format="s16", layout="mono" if self.channels == 1 else "stereo"
        )
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        frame.pts = pts
        return frame

    async def _silence(self) -> av.AudioFrame:
        # Paced by the loop's clock, as the device would have been: the call goes on, quietly.
        loop = asyncio.get_running_loop()
        if not self._silence_due:
            self._silence_due = loop.time()
        await asyncio.sleep(max(0.0, self._silence_due - loop.time()))
        if self.readyState != "live":
            raise MediaStreamError
        self._silence_due += FRAME_SECONDS
        pts, self._next_pts = self._next_pts, self._next_pts + self.samples_per_frame
        return self._frame(pts, np.zeros((self.samples_per_frame, self.channels), np.int16))

    def stop(self) -> None:
        self._stopping = True
        if self.processing is not None:
            audio_processing.withdraw(self.processing)
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
        if self._offers and self.processing is not None:
            audio_processing.offer(self.processing)

    def _on_finished(self) -> None:
        # PortAudio thread: the stream became inactive. Unless stop() did it, the device went away.
        if not self._stopping:
            call_in_loop(self._loop, self._lost)

    def _lost(self) -> None:
        if self._stopping or self.device_error is not None:
            return
        self.device_error = (f"audio input device {self.device_name!r} stopped delivering audio (unplugged?);"
                             " sending silence")
        log.warning("%s", self.device_error)
        if self.processing is not None:
            audio_processing.withdraw(self.processing)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_LOST)  # wakes a recv() that waits for the device

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
                loop.call_soon_threadsafe(self._push, self._process(data[start : start + n]), overflow)
                overflow = False
        except RuntimeError:
            pass  # loop closed while the device was still delivering

    def _process(self, chunk: np.ndarray) -> np.ndarray:
        """A copy of ``chunk`` (PortAudio reuses its buffer), cleaned when processing is on."""
        processing = self.processing
        if processing is None or self._processing_failed:
            return chunk.copy()
        try:
            return processing.process_capture(chunk, self.sample_rate)
        except Exception:  # an error here would abort PortAudio's stream: send the raw audio instead
            self._processing_failed = True
            log.exception("audio processing failed on %r; sending unprocessed audio", self.device_name)
            return chunk.copy()

    def _push(self, chunk: np.ndarray, overflow: bool) -> None:
        if self.readyState != "live" or self.device_error is not None:
            return
        self.device_overflows += overflow
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped_frames += 1
        self._queue.put_nowait((self._next_pts, chunk))
        self._next_pts += len(chunk)


def _processing(given: AudioProcessing | None, echo_cancellation: bool, noise_suppression: bool, auto_gain: bool,
                stream_delay_ms: int | None) -> AudioProcessing | None:
    """The microphone's processing: the one given, one made from the flags, or None."""
    for name, value in (("echo_cancellation", echo_cancellation), ("noise_suppression", noise_suppression),
                        ("auto_gain", auto_gain)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"Microphone({name}=) must be True or False, got {value!r}")
    if given is not None and not isinstance(given, AudioProcessing):
        raise ConfigurationError(f"Microphone(processing=) must be an AudioProcessing, got {given!r}")
    asked = echo_cancellation or noise_suppression or auto_gain
    if stream_delay_ms is not None and given is None and not echo_cancellation:
        raise ConfigurationError("stream_delay_ms is the echo canceller's: it needs echo_cancellation=True")
    if given is not None:
        if asked or stream_delay_ms is not None:
            raise ConfigurationError(
                "give a Microphone either processing= or echo_cancellation/noise_suppression/auto_gain/"
                "stream_delay_ms, not both: an AudioProcessing carries its own settings"
            )
        return given
    if not asked:
        return None
    return AudioProcessing(echo_cancellation=echo_cancellation, noise_suppression=noise_suppression,
                           auto_gain=auto_gain, stream_delay_ms=stream_delay_ms)
