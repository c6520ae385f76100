"""An outgoing audio track that replays pushed PCM after a delay, and silence when it has none."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

from ..media._paced import FRAME_SECONDS, PacedAudioTrack


class DelayedEchoTrack(PacedAudioTrack):
    """Audio track playing back what ``push`` received, ``delay`` seconds later.

    Frames are 20 ms of int16 mono at ``sample_rate``, paced on the wall clock and timestamped
    from a sample counter, so the far side hears steady audio whatever the caller sends: silence
    before the caller's audio arrives and after it stops.
    """

    def __init__(self, delay: float = 0.2, *, sample_rate: int = 48000, max_backlog: float = 2.0) -> None:
        super().__init__(sample_rate=sample_rate, channels=1)
        self.delay = max(0.0, delay)
        self.samples_per_frame = int(sample_rate * FRAME_SECONDS)
        self.frames_sent = 0
        self.echoed_frames = 0  # frames that carried some of the caller's audio
        self._frame_duration = FRAME_SECONDS
        self._max_backlog = int(max_backlog * sample_rate)
        self._chunks: deque[tuple[float, np.ndarray]] = deque()
        self._buffered = 0

    def push(self, pcm: np.ndarray, arrived_at: float | None = None) -> None:
        """Queue int16 mono samples (at ``sample_rate``) received at ``arrived_at`` (monotonic)."""
        ready_at = (time.monotonic() if arrived_at is None else arrived_at) + self.delay
        self._chunks.append((ready_at, np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)))
        self._buffered += pcm.size
        # If sending stalls, drop the oldest audio rather than let the delay grow without bound.
        while self._buffered > self._max_backlog and self._chunks:
            self._buffered -= self._chunks.popleft()[1].size

    def _take(self, now: float) -> tuple[np.ndarray, bool]:
        out = np.zeros(self.samples_per_frame, dtype=np.int16)
        filled = 0
        # Audio whose playout time has passed (sending skipped a gap) is dropped, not played late:
        # played late, it would add the gap to the echo delay for the rest of the call.
        while self._chunks and self._chunks[0][0] + self._chunks[0][1].size / self.sample_rate < now - self._frame_duration:
            self._buffered -= self._chunks.popleft()[1].size
        # One frame of slack absorbs the phase between arrival and send ticks, which would
        # otherwise insert a 20 ms gap whenever a chunk becomes ready just after a tick.
        while filled < out.size and self._chunks and self._chunks[0][0] <= now + self._frame_duration:
            ready_at, data = self._chunks[0]
            take = min(out.size - filled, data.size)
            out[filled : filled + take] = data[:take]
            filled += take
            self._buffered -= take
            if take == data.size:
                self._chunks.popleft()
            else:
                self._chunks[0] = (ready_at, data[take:])
        return out, filled > 0

    def _next_samples(self, n: int) -> np.ndarray:
        pcm, echoed = self._take(time.monotonic())
        self.frames_sent += 1
        self.echoed_frames += int(echoed)
        return pcm.reshape(1, -1)
