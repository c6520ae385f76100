"""Fan-out of received media: one reader per remote track, any number of consumers.

aiortc's receiver queues are unbounded, so a reader task drains the track all the time.
Each consumer has its own bounded queue: a slow consumer loses its own oldest frames (and
counts them); it never stalls the call or the other consumers.

A hub of received media carries a meter (``receive_stats``) that sees each frame as it is
published, so what a receiver would have played and rendered is measured on the hub, which
outlives a peer across reconnects: ``hub.playout_stats()`` / ``hub.render_stats()``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, cast

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import SessionEndedError
from .frames import AudioFrame, VideoFrame
from .receive_stats import AudioPlayoutMeter, AudioPlayoutStats, VideoRenderMeter, VideoRenderStats

log = logging.getLogger(__name__)

T = TypeVar("T")
F = TypeVar("F", bound=av.frame.Frame)
In = TypeVar("In")
Out = TypeVar("Out")


class Subscription(Generic[T]):
    """One consumer's bounded view of a stream, as an async iterator.

    Iteration stops when the stream ends normally and raises ``SessionEndedError`` when it
    ended abnormally (the peer vanished, ICE failed). ``dropped`` counts frames lost here.
    """

    def __init__(self, hub: "StreamHub[T]", maxsize: int) -> None:
        self._hub = hub
        self._items: collections.deque[T] = collections.deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self.dropped = 0

    def _push(self, item: T) -> None:
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
        self._items.append(item)
        self._wakeup.set()

    def _wake(self) -> None:
        self._wakeup.set()

    def close(self) -> None:
        """Stop receiving; pending frames are discarded."""
        self._hub._unsubscribe(self)
        self._items.clear()
        self._wakeup.set()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while not self._items:
            if self._hub.ended or self not in self._hub._subscribers:
                self._hub._unsubscribe(self)
                if self._hub.error is not None:
                    raise SessionEndedError(self._hub.error)
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._items.popleft()


Meter = AudioPlayoutMeter | VideoRenderMeter


class StreamHub(Generic[T]):
    """Delivers items to every subscriber; ``end()`` finishes all their iterators.

    ``meter``, when set (a ``TrackReader`` sets one on the hub it feeds), sees every item as it
    is published, before any subscriber, and stops with the hub.
    """

    def __init__(self, history: int = 0) -> None:
        self._subscribers: list[Subscription[T]] = []
        # Items kept for late subscribers (events that arrive before anyone listens).
        self._history: collections.deque[T] = collections.deque(maxlen=history)
        self.ended = False
        self.error: str | None = None
        self.meter: Meter | None = None

    def playout_stats(self) -> AudioPlayoutStats | None:
        """Concealment, late audio and coverage of a hub of received audio (None for others)."""
        return self.meter.stats() if isinstance(self.meter, AudioPlayoutMeter) else None

    def render_stats(self) -> VideoRenderStats | None:
        """Frame rate, freezes and pauses of a hub of received video (None for others)."""
        return self.meter.stats() if isinstance(self.meter, VideoRenderMeter) else None

    def subscribe(self, maxsize: int = 100) -> Subscription[T]:
        """A new consumer, given the kept history first."""
        sub: Subscription[T] = Subscription(self, maxsize)
        for item in self._history:
            sub._push(item)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription[T]) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, item: T) -> None:
        """Hand ``item`` to every subscriber (and the history); ignored once ended."""
        if self.meter is not None:
            self.meter.on_frame(cast(Any, item))  # the meter counts what an ended hub drops
        if self.ended:
            return
        if self._history.maxlen:
            self._history.append(item)
        for sub in self._subscribers:
            sub._push(item)

    def end(self, error: str | None = None) -> None:
        """Finish every subscriber's iteration; with ``error`` they raise ``SessionEndedError``."""
        # A track may end (RTCP BYE) before the peer learns why: the reason still reaches readers.
        self.error = self.error or error
        if self.ended:
            return
        self.ended = True
        if self.meter is not None:
            self.meter.end()
        for sub in list(self._subscribers):
            sub._wake()


class TrackReader(Generic[F]):
    """Drains one remote aiortc track into a ``StreamHub`` of av frames.

    Given a ``hub`` (one that outlives the track, e.g. across a reconnection) the reader only
    publishes into it; its owner ends it. Without one it has its own, ended when the track ends.
    The hub's meter (made here for the first reader of a hub, kept by the later ones) measures
    playout or rendering; a new track tells it a new RTP clock begins.
    """

    def __init__(self, kind: str, hub: StreamHub[F] | None = None) -> None:
        self.kind = kind
        self.hub: StreamHub[F] = hub if hub is not None else StreamHub()
        if self.hub.meter is None:
            self.hub.meter = AudioPlayoutMeter() if kind == "audio" else VideoRenderMeter()
        self._owns_hub = hub is None
        self.frames_received = 0
        self._task: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        """Start draining ``track`` (the first one attached; later ones are ignored)."""
        if self._task is None:
            if self.hub.meter is not None:
                self.hub.meter.new_source()
            self._task = asyncio.create_task(self._drain(track), name=f"peerbot-{self.kind}-reader")

    def playout_stats(self) -> AudioPlayoutStats | None:
        """The hub's audio playout figures (None for a video reader)."""
        return self.hub.playout_stats()

    def render_stats(self) -> VideoRenderStats | None:
        """The hub's video render figures (None for an audio reader)."""
        return self.hub.render_stats()

    async def _drain(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = cast(F, await track.recv())  # decoded frames: receivers never hand out packets
                self.frames_received += 1
                self.hub.publish(frame)
        except MediaStreamError:
            if self._owns_hub:
                self.hub.end()

    async def stop(self, error: str | None = None) -> None:
        """Stop draining; end the reader's own hub (with ``error`` when the end is abnormal)."""
        if self._owns_hub:
            self.hub.end(error)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ConvertedStream(Generic[In, Out]):
    """An async iterator over a subscription, converting each item on the consumer's side
    (av frames to numpy frames, data-channel messages to events)."""

    def __init__(self, sub: Subscription[In], convert: Callable[[In], list[Out]]) -> None:
        self._sub = sub
        self._convert = convert
        self._ready: collections.deque[Out] = collections.deque()

    @property
    def dropped(self) -> int:
        """Items this consumer lost because it read too slowly."""
        return self._sub.dropped

    def close(self) -> None:
        """Stop receiving; the iterator ends."""
        self._sub.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Out:
        while not self._ready:
            item = await self._sub.__anext__()
            self._ready.extend(self._convert(item))
        return self._ready.popleft()


class _Timeline:
    """Seconds since a stream's first frame, from the frames' RTP-derived pts.

    A new connection (a reconnect) starts a new, random RTP clock: a frame before where the
    stream stood, or far after it, is re-anchored to follow the previous one, so timestamps stay
    monotonic (a gap of up to two minutes in sending still shows as a jump).
    """

    _MAX_GAP = 120.0

    def __init__(self) -> None:
        self._origin: float | None = None
        self._next = 0.0

    def place(self, frame: av.AudioFrame | av.VideoFrame, duration: float) -> float:
        when = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0
        if self._origin is None:
            self._origin = when
        at = when - self._origin
        if not self._next - 1e-3 <= at <= self._next + self._MAX_GAP:
            self._origin = when - self._next
            at = self._next
        self._next = at + duration
        return at


def audio_converter(sample_rate: int | None, channels: int | None) -> Callable[[av.AudioFrame], list[AudioFrame]]:
    """Return a function turning av audio frames into int16 ``AudioFrame``s at the wanted rate/layout."""
    resampler: av.AudioResampler | None = None
    timeline = _Timeline()

    def convert(frame: av.AudioFrame) -> list[AudioFrame]:
        nonlocal resampler
        rate = sample_rate or frame.sample_rate
        layout = {1: "mono", 2: "stereo"}.get(channels or len(frame.layout.channels), "stereo")
        if resampler is None:
            resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        when = timeline.place(frame, frame.samples / frame.sample_rate if frame.sample_rate else 0.0)
        out = []
        for piece in resampler.resample(frame):
            n_ch = len(piece.layout.channels)
            data = piece.to_ndarray().reshape(-1, n_ch).T.copy()
            out.append(AudioFrame(data=data, sample_rate=piece.sample_rate, timestamp=when))
        return out

    return convert


def video_converter(fmt: str) -> Callable[[av.VideoFrame], list[VideoFrame]]:
    """Return a function turning av video frames into numpy ``VideoFrame``s in ``fmt``."""
    timeline = _Timeline()

    def convert(frame: av.VideoFrame) -> list[VideoFrame]:
        when = timeline.place(frame, 0.0)
        data: np.ndarray = frame.to_ndarray(format=fmt)
        return [VideoFrame(data=data, width=frame.width, height=frame.height, format=fmt, timestamp=when)]

    return convert
