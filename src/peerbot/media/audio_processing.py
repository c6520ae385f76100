"""Echo cancellation, noise suppression and automatic gain for the desktop path.

libwebrtc's audio processing module (the AEC3 echo canceller, the noise suppressor, the digital
gain controller and the high-pass filter that browsers put behind ``getUserMedia``), as shipped
in the ``livekit`` wheel. A ``Microphone`` cleans what it captures here; a ``Speaker`` hands over
what it plays, the far-end reference that the echo canceller takes out of the microphone.

How a microphone and a speaker find each other: a ``Microphone`` made with
``echo_cancellation=True`` offers its processing to the process while it runs, and every
``Speaker`` left at ``echo_reference="auto"`` feeds what it plays to those (a desktop has one
microphone and one speaker). An ``AudioProcessing`` passed explicitly to ``Microphone(processing=)``
gets only the speakers given it too (``Speaker(echo_reference=processing)``).

Neither livekit nor its native library is loaded until processing is asked for.
"""

from __future__ import annotations

import logging
import numbers
import threading
from typing import Any

import numpy as np

from ..errors import ConfigurationError

log = logging.getLogger(__name__)

INSTALL_DESKTOP = "pip install 'peerbot[desktop]'"
CHUNK_SECONDS = 0.010  # libwebrtc processes exactly 10 ms at a time
MAX_STREAM_DELAY_MS = 500  # libwebrtc clamps the reported delay to 0..500 ms

_offered: list[AudioProcessing] = []  # echo cancellers of running microphones, for "auto" speakers
_offered_lock = threading.Lock()


class AudioProcessing:
    """One libwebrtc audio processing module: a capture side (the microphone) and a reference side
    (what the speaker plays).

    ``stream_delay_ms`` is the delay, from handing the speaker's samples over to capturing their
    echo, that libwebrtc is told; ``None`` estimates it from the devices' latencies (the speaker's
    output latency plus the microphone's input latency, as PortAudio reports them). AEC3 finds
    the echo's exact delay itself; the figure is its starting point.

    Both sides may be called from different threads (the PortAudio callbacks); calls are serialised.
    """

    def __init__(
        self,
        *,
        echo_cancellation: bool = True,
        noise_suppression: bool = True,
        auto_gain: bool = False,
        high_pass_filter: bool = True,
        stream_delay_ms: int | None = None,
    ) -> None:
        for name, value in (("echo_cancellation", echo_cancellation), ("noise_suppression", noise_suppression),
                            ("auto_gain", auto_gain), ("high_pass_filter", high_pass_filter)):
            if not isinstance(value, bool):  # "no" is true, and livekit's own error names no setting
                raise ConfigurationError(f"{name} must be True or False, got {value!r}")
        if not (echo_cancellation or noise_suppression or auto_gain or high_pass_filter):
            raise ConfigurationError("AudioProcessing with every stage off would do nothing; turn one on")
        if stream_delay_ms is not None and not (
            isinstance(stream_delay_ms, int) and not isinstance(stream_delay_ms, bool)
            and 0 <= stream_delay_ms <= MAX_STREAM_DELAY_MS
        ):
            raise ConfigurationError(
                f"stream_delay_ms must be a whole number of milliseconds from 0 to {MAX_STREAM_DELAY_MS},"
                f" got {stream_delay_ms!r}"
            )
        rtc = import_livekit_rtc()
        self.echo_cancellation = echo_cancellation
        self.noise_suppression = noise_suppression
        self.auto_gain = auto_gain
        self.high_pass_filter = high_pass_filter
        self.output_latency = 0.0  # seconds, reported by the speaker
        self.input_latency = 0.0  # seconds, reported by the microphone
        self.captured_seconds = 0.0
        self.reference_seconds = 0.0
        self._configured_delay = stream_delay_ms
        self._rtc = rtc
        self._apm = rtc.AudioProcessingModule(
            echo_cancellation=echo_cancellation,
            noise_suppression=noise_suppression,
            high_pass_filter=high_pass_filter,
            auto_gain_control=auto_gain,
        )
        self._lock = threading.Lock()
        self._reference_format: tuple[int, int] | None = None
        self._reference_carry = np.zeros((0, 1), np.int16)  # reference samples short of 10 ms

    def __repr__(self) -> str:
        stages = [name for name, on in (("echo_cancellation", self.echo_cancellation),
                                         ("noise_suppression", self.noise_suppression),
                                         ("auto_gain", self.auto_gain),
                                         ("high_pass_filter", self.high_pass_filter)) if on]
        return f"AudioProcessing({', '.join(stages)}, stream_delay_ms={self.stream_delay_ms})"

    @property
    def stream_delay_ms(self) -> int:
        """The delay libwebrtc is told: the configured one, else the devices' latencies added up."""
        if self._configured_delay is not None:
            return self._configured_delay
        estimate = round((self.output_latency + self.input_latency) * 1000)
        return min(MAX_STREAM_DELAY_MS, max(0, estimate))

    def process_capture(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        """The microphone's ``samples`` (int16, ``(n, channels)``, n a whole number of 10 ms
        chunks) cleaned: echo taken out, noise suppressed, gain applied. A new array."""
        chunk = chunk_samples(sample_rate)
        _check_samples(samples, "capture")
        if len(samples) % chunk:
            raise ValueError(f"capture audio must come in 10 ms chunks ({chunk} samples at {sample_rate} Hz),"
                             f" got {len(samples)} samples")
        channels = samples.shape[1]
        out = np.empty_like(samples)
        with self._lock:
            for start in range(0, len(samples), chunk):
                frame = self._frame(samples[start : start + chunk], sample_rate, channels)
                if self.echo_cancellation:
                    # libwebrtc wants the delay before every capture chunk when cancelling echo.
                    self._apm.set_stream_delay_ms(self.stream_delay_ms)
                self._apm.process_stream(frame)
                out[start : start + chunk] = np.frombuffer(frame.data, np.int16).reshape(chunk, channels)
            self.captured_seconds += len(samples) / sample_rate
        return out

    def add_reference(self, samples: np.ndarray, sample_rate: int, output_latency: float | None = None) -> None:
        """What the speaker plays now (int16, ``(n, channels)``, any n): the echo to expect.

        ``output_latency`` (seconds until these samples are heard) updates the delay estimate.
        """
        if output_latency is not None:
            self.output_latency = float(output_latency)
        if not self.echo_cancellation:
            return
        _check_samples(samples, "reference")
        channels = samples.shape[1]
        chunk = chunk_samples(sample_rate)
        with self._lock:
            if self._reference_format != (sample_rate, channels):
                # Another stream format (a new speaker stream): what was carried belongs to the old one.
                self._reference_format = (sample_rate, channels)
                self._reference_carry = np.zeros((0, channels), np.int16)
            data = np.concatenate((self._reference_carry, samples)) if len(self._reference_carry) else samples
            whole = len(data) - len(data) % chunk
            for start in range(0, whole, chunk):
                self._apm.process_reverse_stream(self._frame(data[start : start + chunk], sample_rate, channels))
            self._reference_carry = data[whole:].copy()
            self.reference_seconds += whole / sample_rate

    def _frame(self, samples: np.ndarray, sample_rate: int, channels: int) -> Any:
        # livekit's frame over a private copy: libwebrtc writes the processed samples into it.
        data = bytearray(np.ascontiguousarray(samples, dtype=np.int16).tobytes())
        return self._rtc.AudioFrame(data, sample_rate, channels, len(samples))


def _check_samples(samples: np.ndarray, side: str) -> None:
    if not (isinstance(samples, np.ndarray) and samples.ndim == 2 and samples.dtype == np.int16
            and samples.shape[1] in (1, 2)):
        shape = getattr(samples, "shape", None)
        raise ValueError(f"{side} audio must be int16 samples shaped (n, channels) with 1 or 2 channels,"
                         f" got {type(samples).__name__} {getattr(samples, 'dtype', '')} {shape}")


def chunk_samples(sample_rate: int) -> int:
    """Samples in one 10 ms chunk; ``ConfigurationError`` for a rate that has no whole 10 ms."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, numbers.Integral) or sample_rate <= 0:
        raise ConfigurationError(f"audio processing needs a sample rate in Hz, got {sample_rate!r}")
    if sample_rate % 100:
        raise ConfigurationError(
            f"audio processing works in 10 ms chunks, which {sample_rate} Hz does not divide into;"
            " use a rate such as 48000, 44100 or 16000 (sample_rate=)"
        )
    return sample_rate // 100


def import_livekit_rtc() -> Any:
    """``livekit.rtc``, or ``ConfigurationError`` naming the extra that installs it."""
    try:
        from livekit import rtc
    except ImportError as exc:
        raise ConfigurationError(
            "echo cancellation, noise suppression and auto gain use libwebrtc's audio processing from"
            f" the livekit package, which is not installed: {INSTALL_DESKTOP}"
        ) from exc
    return rtc


def offer(processing: AudioProcessing) -> None:
    """Make ``processing`` the echo canceller of every ``Speaker`` at ``echo_reference="auto"``."""
    with _offered_lock:
        if processing not in _offered:
            _offered.append(processing)


def withdraw(processing: AudioProcessing) -> None:
    """Undo ``offer()``: its microphone stopped."""
    with _offered_lock:
        if processing in _offered:
            _offered.remove(processing)


def offered() -> tuple[AudioProcessing, ...]:
    """The echo cancellers of the running microphones that speakers feed by default."""
    return tuple(_offered)
