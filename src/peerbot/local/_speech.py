"""A crude energy detector that finds bursts of voiced audio, for placeholder transcripts."""

from __future__ import annotations

import numpy as np


class SpeechBurstDetector:
    """Feed int16 mono PCM; get a burst's duration in seconds once it is followed by silence.

    A frame is voiced when its RMS exceeds ``threshold`` (a fraction of full scale). A burst ends
    after ``hangover`` seconds without a voiced frame and counts if it lasted ``min_speech``.
    """

    def __init__(self, threshold: float = 0.02, hangover: float = 0.6, min_speech: float = 0.25) -> None:
        self.threshold = threshold
        self.hangover = hangover
        self.min_speech = min_speech
        self._position = 0.0  # seconds of audio fed so far
        self._start: float | None = None
        self._last_voiced_end = 0.0

    def feed(self, pcm: np.ndarray, sample_rate: int) -> float | None:
        """Take one chunk; return the duration of a burst that just ended, else ``None``."""
        duration = pcm.size / sample_rate
        rms = float(np.sqrt(np.mean(np.square(pcm.astype(np.float64))))) / 32768.0 if pcm.size else 0.0
        begin, self._position = self._position, self._position + duration
        if rms > self.threshold:
            if self._start is None:
                self._start = begin
            self._last_voiced_end = self._position
            return None
        if self._start is not None and self._position - self._last_voiced_end >= self.hangover:
            return self.flush()
        return None

    def flush(self) -> float | None:
        """End any burst in progress now (the audio stopped); return its duration if it counts."""
        if self._start is None:
            return None
        length, self._start = self._last_voiced_end - self._start, None
        return length if length >= self.min_speech else None
