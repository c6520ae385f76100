"""``--decode-sample``: the few participants of a load test that decode what they receive and
say whether it is intelligible, not only that its packets arrived.

A sampled participant sends as its media mode does (pre-encoded, say) but receives with aiortc's
decoder, reads every decoded frame and measures each second of it (``DecodedAudioMeter``). Its
figures, per participant, next to the call metrics:

- ``decoded_frames``: decoded audio frames read;
- ``decoded_level_dbfs``: the RMS level of a second, averaged over the seconds (floor -100 dBFS);
- ``decoded_frequency_hz``: the strongest frequency of a second (Hann-windowed FFT), the median
  over the seconds that were not silent;
- ``decoded_tone_percent``: with ``--source tone[:HZ]``, the seconds whose strongest frequency
  is that tone (within a quarter tone) and louder than -50 dBFS, in % of the seconds measured:
  what a listener to an echoing or reflecting far side would hear. None for other sources.

Which participants are sampled is ``engine.receive_mode.decodes`` (evenly spread, the first
always); the others keep their mode's cheap receive and start no decoder thread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import PeerbotError
from .messages import Figures

if TYPE_CHECKING:
    from .media import MediaMode

__all__ = ["DECODED_FIGURES", "DecodedAudioMeter", "DecodedSample", "decoder_threads"]

DECODED_FIGURES = {"decoded_frames": "", "decoded_level_dbfs": "", "decoded_frequency_hz": "",
                   "decoded_tone_percent": "%"}
"""The decoded figures of a sampled participant, with their units (threshold language)."""

WINDOW_S = 1.0  # seconds of decoded audio per measurement: 1 Hz resolution, a figure a second
SILENT_DBFS = -50.0  # a second quieter than this has no tone to hear
FLOOR_DBFS = -100.0  # digital silence is this, not -inf (a mean of levels stays finite)
QUARTER_TONE = 1 / 24  # octaves: a pitch error a listener would call another note


class DecodedAudioMeter:
    """Level and strongest frequency of each ``WINDOW_S`` of decoded mono audio; ``tone_hz`` is
    the frequency expected back (None: no tone to compare with)."""

    def __init__(self, tone_hz: float | None = None) -> None:
        self.tone_hz = tone_hz
        self.frames = 0
        self.levels: list[float] = []  # dBFS, one a window
        self.frequencies: list[float | None] = []  # Hz, None for a silent window
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._rate = 0

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        """One decoded frame's samples (int16, one channel)."""
        self.frames += 1
        if sample_rate != self._rate:  # a window is of one rate only
            self._pending, self._pending_samples, self._rate = [], 0, sample_rate
        self._pending.append(samples)
        self._pending_samples += len(samples)
        window = round(WINDOW_S * sample_rate)
        if self._pending_samples >= window:
            joined = np.concatenate(self._pending)
            self._measure(joined[:window], sample_rate)
            rest = joined[window:]
            self._pending, self._pending_samples = ([rest] if len(rest) else []), len(rest)

    def _measure(self, window: np.ndarray, sample_rate: int) -> None:
        x = window.astype(np.float64)
        x -= x.mean()
        rms = math.sqrt(float(np.mean(x * x)))
        level = max(FLOOR_DBFS, 20 * math.log10(rms / 32768)) if rms > 0 else FLOOR_DBFS
        self.levels.append(level)
        if level < SILENT_DBFS:
            self.frequencies.append(None)
            return
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        self.frequencies.append(float(np.argmax(spectrum)) * sample_rate / len(x))

    def _is_tone(self, frequency: float | None) -> bool:
        if not frequency or self.tone_hz is None:  # a silent second is no tone
            return False
        return abs(math.log2(frequency / self.tone_hz)) <= QUARTER_TONE

    def figures(self) -> Figures:
        """``DECODED_FIGURES`` so far (None where nothing was measured yet)."""
        heard = [f for f in self.frequencies if f is not None]
        tone = None
        if self.tone_hz is not None and self.frequencies:
            tone = 100.0 * sum(self._is_tone(f) for f in self.frequencies) / len(self.frequencies)
        return {"decoded_frames": float(self.frames),
                "decoded_level_dbfs": statistics.fmean(self.levels) if self.levels else None,
                "decoded_frequency_hz": statistics.median(heard) if heard else None,
                "decoded_tone_percent": tone}


class DecodedSample:
    """A sampled participant of media mode ``base``: ``base``'s sources, aiortc's decode
    (``receive="decode"``, whatever ``base`` asks), every decoded frame measured."""

    def __init__(self, base: MediaMode, tone_hz: float | None) -> None:
        self.base = base
        self.name = f"{base.name}+decode"
        self.meter = DecodedAudioMeter(tone_hz)

    def sources(self) -> tuple[Any, Any]:
        return self.base.sources()

    def session_options(self) -> dict[str, Any]:
        return {**self.base.session_options(), "receive": "decode"}

    async def receive(self, session: Any, first_audio: Callable[[], None]) -> None:
        frames = session.audio_frames(channels=1)
        try:
            async for frame in frames:
                first_audio()
                self.meter.add(frame.data[0], frame.sample_rate)
        except PeerbotError:  # the session ended
            return
        finally:
            frames.close()

    def decoded_figures(self) -> Figures:
        return self.meter.figures()


def decoder_threads() -> int:
    """aiortc decoder threads alive in this process (aiortc names them ``audio-decoder`` /
    ``video-decoder``): what shows that the cheap participants decode nothing."""
    import threading

    return sum(t.name.endswith("-decoder") for t in threading.enumerate())
