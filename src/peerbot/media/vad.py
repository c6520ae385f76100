"""Voice activity detection: where speech starts and ends in a stream of PCM.

libwebrtc's VAD (``webrtcvad-wheels``: a GMM over six frequency bands, 10/20/30 ms frames at
8/16/32/48 kHz) classifies each frame; a run of ``min_speech`` voiced audio starts speech and
``min_silence`` without any voiced frame ends it. Positions are seconds of audio fed, so a
caller that knows when each chunk arrived maps them to its own clock. An energy floor keeps
near-silence (comfort noise, dithering) from ever counting as speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import webrtcvad

__all__ = ["SpeechEdge", "VoiceActivityDetector", "VAD_RATES"]

VAD_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True)
class SpeechEdge:
    """Speech ``start`` or ``end`` at ``position`` seconds into the stream."""

    kind: Literal["start", "end"]
    position: float


class VoiceActivityDetector:
    """Feed int16 mono PCM at ``sample_rate``; get the edges of speech as they are decided.

    ``aggressiveness`` (0–3) is webrtcvad's mode: 3 rejects the most non-speech. A start is
    reported at the first voiced frame of a run lasting ``min_speech`` seconds (so it is decided
    ``min_speech`` late); an end at the end of the last voiced frame, once ``min_silence`` seconds
    have passed without one. Frames quieter than ``floor_dbfs`` are never speech.
    """

    def __init__(self, sample_rate: int = 48000, *, frame_ms: int = 20, aggressiveness: int = 3,
                 min_speech: float = 0.06, min_silence: float = 0.3, floor_dbfs: float = -50.0) -> None:
        if sample_rate not in VAD_RATES:
            raise ValueError(f"the VAD takes {', '.join(map(str, VAD_RATES))} Hz audio, not {sample_rate}")
        if frame_ms not in (10, 20, 30):
            raise ValueError("the VAD takes 10, 20 or 30 ms frames")
        if not 0 <= aggressiveness <= 3:
            raise ValueError("aggressiveness is 0 to 3")
        self.sample_rate = sample_rate
        self.frame_seconds = frame_ms / 1000
        self.min_speech = min_speech
        self.min_silence = min_silence
        self._frame = sample_rate * frame_ms // 1000
        self._floor = 32768.0 * 10 ** (floor_dbfs / 20)
        self._vad = webrtcvad.Vad(aggressiveness)
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames = 0  # whole frames classified so far
        self._run_start: int | None = None  # first frame of the current voiced run
        self._last_voiced: int | None = None  # last voiced frame while speaking
        self.speaking = False

    @property
    def position(self) -> float:
        """Seconds of audio classified so far."""
        return self._frames * self.frame_seconds

    def feed(self, pcm: np.ndarray) -> list[SpeechEdge]:
        """Classify ``pcm`` (int16 mono, any length) and return the edges it decided, in order."""
        samples = np.concatenate((self._pending, np.asarray(pcm, dtype=np.int16).reshape(-1)))
        whole = len(samples) // self._frame * self._frame
        self._pending = samples[whole:]
        edges: list[SpeechEdge] = []
        for offset in range(0, whole, self._frame):
            frame = samples[offset:offset + self._frame]
            rms = float(np.sqrt(np.mean(np.square(frame, dtype=np.float64))))
            voiced = rms >= self._floor and self._vad.is_speech(frame.tobytes(), self.sample_rate)
            edge = self._step(voiced)
            if edge is not None:
                edges.append(edge)
        return edges

    def flush(self) -> list[SpeechEdge]:
        """The stream ended: end speech in progress at its last voiced frame."""
        if not self.speaking or self._last_voiced is None:
            return []
        self.speaking = False
        self._run_start = None
        return [SpeechEdge("end", (self._last_voiced + 1) * self.frame_seconds)]

    def _step(self, voiced: bool) -> SpeechEdge | None:
        index = self._frames
        self._frames += 1
        if self.speaking:
            if voiced:
                self._last_voiced = index
                return None
            assert self._last_voiced is not None
            if (index - self._last_voiced) * self.frame_seconds >= self.min_silence:
                self.speaking = False
                self._run_start = None
                return SpeechEdge("end", (self._last_voiced + 1) * self.frame_seconds)
            return None
        if not voiced:
            self._run_start = None
            return None
        if self._run_start is None:
            self._run_start = index
        if (index - self._run_start + 1) * self.frame_seconds >= self.min_speech - 1e-9:
            self.speaking = True
            self._last_voiced = index
            return SpeechEdge("start", self._run_start * self.frame_seconds)
        return None
