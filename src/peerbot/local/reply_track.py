"""An outgoing audio track that sends silence, and the voice agent's replies each at its due time."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from ..media._paced import FRAME_SECONDS, PacedAudioTrack

# kind ("reply_started", "reply_stopped", "reply_finished"), when, detail
MarkCallback = Callable[[str, float, dict[str, Any]], None]


@dataclass
class _Reply:
    pcm: np.ndarray
    due: float
    detail: dict[str, Any]
    sent: int = 0


class ReplyTrack(PacedAudioTrack):
    """20 ms frames of int16 mono at ``sample_rate``: silence, or a queued reply.

    A reply starts on the frame tick nearest its due time (so within half a frame of it), or at
    once when it was queued late; replies queued together play one after the other.
    ``interrupt()`` cuts the one being sent from the next frame on; ``stop()`` ends the track. ``on_mark`` hears when each
    reply started, stopped or finished on the wire: the moment the frame holding that sample was
    handed to the sender (``recv`` returned it), plus the sample's offset in the frame.
    """

    def __init__(self, on_mark: MarkCallback, *, sample_rate: int = 48000) -> None:
        super().__init__(sample_rate=sample_rate, channels=1)
        self.frames_sent = 0
        self.reply_frames = 0  # frames that carried some reply audio
        self._on_mark = on_mark
        self._queue: deque[_Reply] = deque()
        self._current: _Reply | None = None
        self._cut = False
        self._marks: list[tuple[str, int, dict[str, Any]]] = []  # stamped when recv hands the frame over

    @property
    def replying(self) -> bool:
        """True while a reply is being sent."""
        return self._current is not None and not self._cut

    @property
    def pending(self) -> int:
        """Replies queued and not started yet."""
        return len(self._queue)

    def play(self, pcm: np.ndarray, due: float, detail: dict[str, Any] | None = None) -> None:
        """Queue int16 mono ``pcm`` (at ``sample_rate``) to start at ``due`` (monotonic seconds)."""
        samples = np.ascontiguousarray(pcm, dtype=np.int16).reshape(-1)
        if samples.size:
            # In order of due time, whatever order their preparation finished in.
            self._queue = deque(sorted([*self._queue, _Reply(samples, due, dict(detail or {}))], key=lambda r: r.due))

    def interrupt(self) -> bool:
        """Stop the reply being sent and drop the queued ones; True if a reply was cut."""
        self._queue.clear()
        if self._current is None or self._cut:
            return False
        self._cut = True
        return True

    def stop(self) -> None:
        """End the track; a reply being sent is reported stopped (not by a barge-in)."""
        current, self._current = self._current, None
        self._queue.clear()
        if current is not None and self.readyState == "live":
            self._on_mark("reply_stopped", time.monotonic(), {**current.detail, "barged_in": False,
                                                              "seconds_sent": current.sent / self.sample_rate})
        super().stop()

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        handed = time.monotonic()
        marks, self._marks = self._marks, []
        for kind, offset, detail in marks:
            self._on_mark(kind, handed + offset / self.sample_rate, detail)
        return frame

    def _next_samples(self, n: int) -> np.ndarray:
        now = time.monotonic()
        out = np.zeros(n, dtype=np.int16)
        if self._cut and self._current is not None:
            self._marks.append(("reply_stopped", 0, {**self._current.detail, "barged_in": True,
                                                     "seconds_sent": self._current.sent / self.sample_rate}))
            self._current = None
        self._cut = False
        if self._current is None and self._queue and self._queue[0].due <= now + FRAME_SECONDS / 2:
            self._current = self._queue.popleft()
            self._marks.append(("reply_started", 0, self._current.detail))
        reply = self._current
        if reply is not None:
            take = min(n, reply.pcm.size - reply.sent)
            out[:take] = reply.pcm[reply.sent:reply.sent + take]
            reply.sent += take
            self.reply_frames += 1
            if reply.sent == reply.pcm.size:
                self._marks.append(("reply_finished", take, reply.detail))
                self._current = None
        self.frames_sent += 1
        return out.reshape(1, -1)
