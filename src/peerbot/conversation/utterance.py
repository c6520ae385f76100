"""What the caller says: utterances prepared ahead (TTS or a file, at 48 kHz, with where their
speech starts and ends) and the audio source that sends them, noting when their samples went out.

The moment our utterance ended is known from the samples themselves: the paced track hands each
20 ms frame to the sender at its due time, and a sample ``k`` samples into the frame leaves
``k / 48000`` s after that (the same clock as :class:`~peerbot.quality.LatencyProbe`'s markers).
Nothing is timed with a timer.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from ..errors import ConfigurationError, MediaError
from ..media.app_source import AudioSource
from ..media.file import decode_audio
from ..media.speech_synthesis import synthesize
from ..media.vad import VoiceActivityDetector

__all__ = ["SAMPLE_RATE", "SentUtterance", "Utterance", "UtteranceSource"]

SAMPLE_RATE = 48000
MAX_UTTERANCE_SECONDS = 300.0


SOUND_FLOOR_DBFS = -50.0  # the VAD's own floor
MAX_UNVOICED_ONSET = 0.3  # seconds of sound before the first voiced frame counted into the speech


@dataclass(frozen=True)
class Utterance:
    """Mono int16 samples at 48 kHz and where the speech is in them (seconds from the first sample).

    ``speech_end`` is the end of the last frame the VAD calls voiced (what a far side's endpointing
    waits after). ``speech_start`` is the first sound: the first sample louder than -50 dBFS (the
    VAD's floor) within 0.3 s before the first voiced frame: the "s" of "stop" is where a far side
    can first hear us (and a far side's VAD may well call it speech), though ours does not.
    """

    samples: np.ndarray = field(repr=False)
    label: str
    speech_start: float
    speech_end: float

    @property
    def duration(self) -> float:
        """Seconds of audio, silence included."""
        return len(self.samples) / SAMPLE_RATE

    @classmethod
    def from_pcm(cls, samples: np.ndarray, sample_rate: int, label: str) -> Utterance:
        """An utterance of int16 mono PCM at any rate; ``ConfigurationError`` if the VAD hears no speech."""
        pcm = _resampled(np.asarray(samples, dtype=np.int16).reshape(-1), sample_rate)
        if len(pcm) > MAX_UTTERANCE_SECONDS * SAMPLE_RATE:
            raise ConfigurationError(f"{label!r} lasts {len(pcm) / SAMPLE_RATE:.0f} s;"
                                     f" an utterance is at most {MAX_UTTERANCE_SECONDS:g} s")
        start, end = voiced_span(pcm, SAMPLE_RATE)
        if start is None or end is None:
            raise ConfigurationError(f"{label!r} holds no speech that the voice activity detector hears")
        return cls(pcm, label, sound_onset(pcm, SAMPLE_RATE, start), end)

    @classmethod
    def from_text(cls, text: str) -> Utterance:
        """``text`` spoken by the offline TTS (flite, else espeak-ng)."""
        speech = synthesize(text)
        return cls.from_pcm(speech.samples, speech.sample_rate, text)

    @classmethod
    def from_file(cls, path: str | Path) -> Utterance:
        """The first audio stream of a file (any format FFmpeg reads), mixed to mono."""
        declared = _declared_seconds(path)
        if declared is not None and declared > MAX_UTTERANCE_SECONDS + 1:  # refused before it is all decoded
            raise ConfigurationError(f"{Path(path).name!r} lasts {declared:.0f} s;"
                                     f" an utterance is at most {MAX_UTTERANCE_SECONDS:g} s")
        try:
            pcm = decode_audio(path, SAMPLE_RATE, 1)[0]
        except MediaError as exc:
            raise ConfigurationError(re.sub(r"\[Errno -?\d+\] ", "", str(exc))) from None  # FFmpeg's codes say nothing
        return cls.from_pcm(pcm, SAMPLE_RATE, Path(path).name)


def _declared_seconds(path: str | Path) -> float | None:
    """How long the file says its audio lasts (None when it does not say, or cannot be opened)."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.audio[0] if container.streams.audio else None
            if stream is not None and stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return container.duration / av.time_base if container.duration else None
    except Exception:  # decoding it says what is wrong
        return None


def voiced_span(pcm: np.ndarray, sample_rate: int) -> tuple[float | None, float | None]:
    """Where voiced speech starts and ends in ``pcm`` (seconds), by the default
    ``VoiceActivityDetector``, primed with ``pcm`` itself (an unprimed VAD calls the first words
    speech late; see ``FarSideSpeech.prime``)."""
    vad = VoiceActivityDetector(sample_rate)
    size = round(vad.frame_seconds * sample_rate)
    pause = np.zeros(round(sample_rate * (vad.min_silence + 0.1)) // size * size + size, np.int16)
    vad.feed(np.concatenate((pcm, np.zeros(-len(pcm) % size, np.int16), pause)))
    vad.flush()
    base = vad.position
    edges = vad.feed(pcm) + vad.feed(pause) + vad.flush()
    starts = [e.position - base for e in edges if e.kind == "start"]
    ends = [e.position - base for e in edges if e.kind == "end"]
    if not starts or not ends:
        return None, None
    return starts[0], min(ends[-1], len(pcm) / sample_rate)


def sound_onset(pcm: np.ndarray, sample_rate: int, voiced_start: float) -> float:
    """The first sample louder than -50 dBFS within ``MAX_UNVOICED_ONSET`` before ``voiced_start``
    (seconds; ``voiced_start`` itself when there is none)."""
    floor = 32768.0 * 10 ** (SOUND_FLOOR_DBFS / 20)
    first = max(0, round((voiced_start - MAX_UNVOICED_ONSET) * sample_rate))
    loud = np.flatnonzero(np.abs(pcm[first:round(voiced_start * sample_rate)].astype(np.int32)) >= floor)
    return (first + int(loud[0])) / sample_rate if loud.size else voiced_start


def _resampled(pcm: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return pcm.copy()
    if not 8000 <= rate <= 192000:
        raise ConfigurationError(f"audio at {rate} Hz cannot be sent (8000–192000 Hz)")
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1).copy(), format="s16", layout="mono")
    frame.sample_rate = rate
    pieces = [p.to_ndarray().reshape(-1) for p in (*resampler.resample(frame), *resampler.resample(None))]
    return np.concatenate(pieces) if pieces else np.zeros(0, np.int16)


@dataclass
class SentUtterance:
    """An utterance handed to the sender: monotonic times at which its first sample, its speech's
    first sample, the end of its speech and the end of its last sample went out (None until then)."""

    utterance: Utterance
    queued_at: float
    started_at: float | None = None
    speech_started_at: float | None = None
    speech_ended_at: float | None = None
    ended_at: float | None = None
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    async def wait_sent(self) -> None:
        """Return once the last sample went out."""
        await self._done.wait()


class UtteranceSource(AudioSource):
    """The caller's audio track: silence, and the utterances given to :meth:`say`, in real time.

    ``say`` queues an utterance right after any still being sent and returns once its last sample
    went out, with the times its samples left (:class:`SentUtterance`).
    """

    def __init__(self, *, queue_seconds: float = 5.0) -> None:
        super().__init__(sample_rate=SAMPLE_RATE, channels=1, queue_seconds=queue_seconds)
        self._captured = 0  # samples ever queued
        self._spoken = 0  # samples of those handed to the sender
        # (sample index among the queued ones, the utterance, which time it gives), by index
        self._marks: deque[tuple[int, SentUtterance, str]] = deque()
        self.sent: list[SentUtterance] = []

    async def say(self, utterance: Utterance) -> SentUtterance:
        """Send ``utterance`` after whatever is queued; return once it is all out."""
        sent = SentUtterance(utterance, time.monotonic())
        base, n = self._captured, len(utterance.samples)
        speech_from = base + min(n - 1, round(utterance.speech_start * SAMPLE_RATE))
        speech_to = base + max(0, min(n, round(utterance.speech_end * SAMPLE_RATE)) - 1)
        self._captured += n
        self._marks.extend([(base, sent, "started_at"), (speech_from, sent, "speech_started_at"),
                            (speech_to, sent, "speech_ended_at"), (base + n - 1, sent, "ended_at")])
        self.sent.append(sent)
        await self.capture(utterance.samples, SAMPLE_RATE, 1)
        await sent.wait_sent()
        return sent

    def clear(self) -> None:
        """Drop what is queued; the utterances cut short count as sent (their missing times stay None)."""
        super().clear()
        for _, sent, _ in self._marks:
            sent._done.set()
        self._marks.clear()
        self._captured = self._spoken

    def _next_samples(self, n: int) -> np.ndarray:
        now = time.monotonic()
        before = self.queued_seconds
        out = super()._next_samples(n)
        # Queued audio fills the frame from its start: the frame holds [spoken, spoken + taken).
        taken = round((before - self.queued_seconds) * SAMPLE_RATE)
        while self._marks and self._marks[0][0] < self._spoken + taken:
            index, sent, name = self._marks.popleft()
            at = now + (index - self._spoken) / SAMPLE_RATE
            if name in ("speech_ended_at", "ended_at"):
                at += 1 / SAMPLE_RATE  # the end of that sample
            setattr(sent, name, at)
            if name == "ended_at":
                sent._done.set()
        self._spoken += taken
        return out
