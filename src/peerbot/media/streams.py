"""Fan-out of received media: one reader per remote track, any number of consumers.

aiortc's receiver queues are unbounded, so a reader task drains the track all the time.
Each consumer has its own bounded queue: a slow consumer loses its own oldest frames (and
counts them); it never stalls the call or the other consumers.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable
from typing import Generic, TypeVar

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import SessionEndedError
from .frames import AudioFrame, VideoFrame

log = logging.getLogger(__name__)

T = TypeVar("T")
U = TypeVar("U")


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

    def __aiter__(self) -> "Subscription[T]":
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


class StreamHub(Generic[T]):
    """Delivers items to every subscriber; ``end()`` finishes all their iterators."""

    def __init__(self, history: int = 0) -> None:
        self._subscribers: list[Subscription[T]] = []
        # Items kept for late subscribers (events that arrive before anyone listens).
        self._history: collections.deque[T] = collections.deque(maxlen=history)
        self.ended = False
        self.error: str | None = None

    def subscribe(self, maxsize: int = 100) -> Subscription[T]:
        sub: Subscription[T] = Subscription(self, maxsize)
        for item in self._history:
            sub._push(item)
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription[T]) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, item: T) -> None:
        if self.ended:
            return
        if self._history.maxlen:
            self._history.append(item)
        for sub in self._subscribers:
            sub._push(item)

    def end(self, error: str | None = None) -> None:
        # A track may end (RTCP BYE) before the peer learns why: the reason still reaches readers.
        self.error = self.error or error
        if self.ended:
            return
        self.ended = True
        for sub in list(self._subscribers):
            sub._wake()


class TrackReader:
    """Drains one remote aiortc track into a ``StreamHub`` of av frames."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.hub: StreamHub[av.frame.Frame] = StreamHub()
        self.frames_received = 0
        self._task: asyncio.Task[None] | None = None

    def attach(self, track: MediaStreamTrack) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._drain(track), name=f"peerbot-{self.kind}-reader")

    async def _drain(self, track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                self.frames_received += 1
                self.hub.publish(frame)
        except MediaStreamError:
            self.hub.end()
        except asyncio.CancelledError:
            raise

    async def stop(self, error: str | None = None) -> None:
        self.hub.end(error)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class ConvertedStream(Generic[U]):
    """An async iterator over a subscription, converting each av frame on the consumer's side."""

    def __init__(self, sub: Subscription[av.frame.Frame], convert: Callable[[av.frame.Frame], list[U]]) -> None:
        self._sub = sub
        self._convert = convert
        self._ready: collections.deque[U] = collections.deque()

    @property
    def dropped(self) -> int:
        """Frames this consumer lost because it read too slowly."""
        return self._sub.dropped

    def close(self) -> None:
        self._sub.close()

    def __aiter__(self) -> "ConvertedStream[U]":
        return self

    async def __anext__(self) -> U:
        while not self._ready:
            frame = await self._sub.__anext__()
            self._ready.extend(self._convert(frame))
        return self._ready.popleft()


def audio_converter(sample_rate: int | None, channels: int | None) -> Callable[[av.AudioFrame], list[AudioFrame]]:
    """Return a function turning av audio frames into int16 ``AudioFrame``s at the wanted rate/layout."""
    resampler: av.AudioResampler | None = None
    origin: float | None = None

    def convert(frame: av.AudioFrame) -> list[AudioFrame]:
        nonlocal resampler, origin
        rate = sample_rate or frame.sample_rate
        layout = {1: "mono", 2: "stereo"}.get(channels or len(frame.layout.channels), "stereo")
        if resampler is None:
            resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        when = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0
        if origin is None:
            origin = when
        out = []
        for piece in resampler.resample(frame):
            n_ch = len(piece.layout.channels)
            data = piece.to_ndarray().reshape(-1, n_ch).T.copy()
            out.append(AudioFrame(data=data, sample_rate=piece.sample_rate, timestamp=when - origin))
        return out

    return convert


def video_converter(fmt: str) -> Callable[[av.VideoFrame], list[VideoFrame]]:
    """Return a function turning av video frames into numpy ``VideoFrame``s in ``fmt``."""
    origin: float | None = None

    def convert(frame: av.VideoFrame) -> list[VideoFrame]:
        nonlocal origin
        when = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0
        if origin is None:
            origin = when
        data: np.ndarray = frame.to_ndarray(format=fmt)
        return [VideoFrame(data=data, width=frame.width, height=frame.height, format=fmt, timestamp=when - origin)]

    return convert

