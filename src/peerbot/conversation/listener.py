"""The far side's speech, as the caller receives it: received audio through the VAD, each speech
segment placed on the monotonic clock.

Clocks. The VAD gives positions in seconds of audio fed. Each received frame is noted with where
it starts in that stream, its RTP-timeline timestamp (``AudioFrame.timestamp``) and the monotonic
time it reached us. A position maps to its frame's timestamp, plus the offset into the frame,
plus the median of ``arrival - timestamp`` over the frames within half a second: the frame's
arrival time, with one late delivery (our event loop busy for a moment) smoothed out; a lasting
change of delay (a playout buffer growing) is followed. While the call runs, decisions (is the
answer over, when to barge in) use the plain arrival time of the frame; the figures reported are
computed from the smoothed clock once the conversation is over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..media.frames import AudioFrame
from ..media.vad import VoiceActivityDetector
from ..quality.arrivals import ArrivalTimeline

__all__ = ["FarSideSpeech", "SpeechSegment"]

SMOOTHING_SECONDS = 0.5


SOUND_FLOOR_DBFS = -50.0  # the VAD's own floor: quieter frames are silence or comfort noise
MAX_UNVOICED_TAIL = 0.2  # seconds of sound after the last voiced frame counted into the speech


@dataclass
class SpeechSegment:
    """Speech from ``start`` to ``end`` (seconds of received audio; ``end`` None while it goes on).

    ``start`` is the VAD's: the first voiced frame. ``end`` is where the sound stops: the end of the
    last voiced frame, extended over the frames with sound (louder than -50 dBFS) that follow it
    without a quiet one between, at most 0.2 s. Speech cut mid-word (a far side that stops when
    talked over) often ends in an unvoiced sound, an "s" the VAD does not call speech: its audio
    stops there, not at the last vowel.
    """

    start: float
    end: float | None = None
    voiced_end: float | None = None  # the VAD's end: the end of the last voiced frame


class FarSideSpeech:
    """Feed received frames (any channels; 8, 16, 32 or 48 kHz) with their arrival times; read the
    speech segments and map their positions to monotonic time. Made with a ``VoiceActivityDetector``
    (default: 20 ms frames, aggressiveness 3, 60 ms to start, 300 ms to end, -50 dBFS floor)."""

    def __init__(self, vad: VoiceActivityDetector | None = None) -> None:
        self._vad = vad
        self._timeline = ArrivalTimeline(SMOOTHING_SECONDS)
        self._loud = bytearray()  # per VAD frame: whether it has sound (above the floor)
        self._floor = 32768.0 * 10 ** (SOUND_FLOOR_DBFS / 20)
        self._pending = np.zeros(0, dtype=np.int16)  # the start of the next VAD frame
        self.segments: list[SpeechSegment] = []
        self._offset = 0.0  # seconds of priming audio the VAD heard before the call's
        self.frames = 0
        self.ended = False
        self._progress = asyncio.Event()

    # --- feeding ----------------------------------------------------------------------

    def prime(self, speech: np.ndarray, sample_rate: int) -> None:
        """Let the VAD hear ``speech`` (int16 mono, a few seconds of it) before the call's audio.

        libwebrtc's VAD adapts its speech and noise models to what it hears, and frames below the
        floor never reach it: unprimed, it calls the far side's first words speech up to 60 ms late
        (measured on an agent's first reply), primed, like every later answer. Positions and
        segments leave the priming out. Only before the first frame.
        """
        if self.frames:
            raise RuntimeError("prime the VAD before feeding it the call's audio")
        if self._vad is None:
            self._vad = VoiceActivityDetector(sample_rate)
        if sample_rate != self._vad.sample_rate:
            raise ValueError(f"priming audio at {sample_rate} Hz for a VAD at {self._vad.sample_rate} Hz")
        size = round(self._vad.frame_seconds * sample_rate)
        pcm = np.asarray(speech, dtype=np.int16).reshape(-1)
        pause = np.zeros(round((self._vad.min_silence + 0.1) * sample_rate), dtype=np.int16)
        pcm = np.concatenate((pcm, pause))
        pcm = np.concatenate((pcm, np.zeros(-len(pcm) % size, dtype=np.int16)))  # whole frames
        self._vad.feed(pcm)
        self._vad.flush()
        self._offset = self._vad.position

    def feed(self, frame: AudioFrame, arrived_at: float) -> None:
        """Take one received frame that reached us at monotonic ``arrived_at``."""
        if self._vad is None:
            self._vad = VoiceActivityDetector(frame.sample_rate)
        if frame.sample_rate != self._vad.sample_rate:
            raise ValueError(f"frames at {frame.sample_rate} Hz fed to a VAD at {self._vad.sample_rate} Hz")
        data = frame.data
        mono = data[0] if data.shape[0] == 1 else data.astype(np.int32).mean(axis=0).astype(np.int16)
        self._timeline.add(frame.timestamp, len(mono), frame.sample_rate, arrived_at)
        self.frames += 1
        self._note_loudness(mono)
        for edge in self._vad.feed(mono):
            self._on_edge(edge.kind, edge.position - self._offset)
        self._progress.set()

    def finish(self) -> None:
        """The stream ended: speech in progress ends at its last voiced frame."""
        if self._vad is not None:
            for edge in self._vad.flush():
                self._on_edge(edge.kind, edge.position - self._offset)
        self.ended = True
        self._progress.set()

    def _note_loudness(self, mono: np.ndarray) -> None:
        assert self._vad is not None
        size = round(self._vad.frame_seconds * self._vad.sample_rate)
        samples = np.concatenate((self._pending, mono))
        whole = len(samples) // size * size
        frames = samples[:whole].reshape(-1, size).astype(np.float64)
        self._loud.extend((np.sqrt(np.mean(frames * frames, axis=1)) >= self._floor).tolist())
        self._pending = samples[whole:]

    def _on_edge(self, kind: str, position: float) -> None:
        if kind == "start":
            self.segments.append(SpeechSegment(position))
        elif self.segments and self.segments[-1].end is None:
            segment = self.segments[-1]
            segment.voiced_end = position
            segment.end = self._sound_end(position)

    def _sound_end(self, voiced_end: float) -> float:
        assert self._vad is not None
        step = self._vad.frame_seconds
        frame = round(voiced_end / step)
        last = min(len(self._loud), frame + round(MAX_UNVOICED_TAIL / step))
        while frame < last and self._loud[frame]:
            frame += 1
        return frame * step

    # --- reading ----------------------------------------------------------------------

    @property
    def position(self) -> float:
        """Seconds of received audio the VAD has classified."""
        return self._vad.position - self._offset if self._vad is not None else 0.0

    @property
    def speaking(self) -> bool:
        """Whether the far side is speaking now (by the VAD's last decision)."""
        return bool(self.segments) and self.segments[-1].end is None

    def silent_for(self) -> float:
        """Seconds of received audio since the far side last spoke (its whole stream if it never did);
        0 while it speaks."""
        if self.speaking:
            return 0.0
        last = self.segments[-1].end if self.segments else 0.0
        return max(0.0, self.position - (last or 0.0))

    def arrival_of(self, position: float) -> float:
        """Monotonic time at which the audio at ``position`` reached us: its frame's arrival time
        plus the offset into the frame (the clock of decisions during the call)."""
        timeline = self._timeline
        return timeline.arrival_of(position * timeline.rate) if timeline and timeline.rate else time.monotonic()

    def time_of(self, position: float) -> float:
        """Monotonic time of the audio at ``position``, on the smoothed clock (see the module's note)."""
        timeline = self._timeline
        return timeline.time_of(position * timeline.rate) if timeline and timeline.rate else time.monotonic()

    def timed_segments(self) -> list[tuple[float, float | None]]:
        """Every segment as ``(start, end)`` in monotonic time (smoothed); ``end`` None if it goes on."""
        return [(self.time_of(s.start), None if s.end is None else self.time_of(s.end)) for s in self.segments]

    # --- waiting ----------------------------------------------------------------------

    async def wait_until(self, condition: Callable[[], bool], deadline: float,
                         stop: asyncio.Event | None = None) -> bool:
        """Wait until ``condition()`` holds (checked after every frame), the monotonic ``deadline``
        passes, the stream ends or ``stop`` is set; whether the condition held."""
        while True:
            if condition():
                return True
            left = deadline - time.monotonic()
            if left <= 0 or self.ended or (stop is not None and stop.is_set()):
                return False
            self._progress.clear()
            waits = [asyncio.ensure_future(self._progress.wait())]
            if stop is not None:
                waits.append(asyncio.ensure_future(stop.wait()))
            try:
                await asyncio.wait(waits, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
