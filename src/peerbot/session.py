"""What every session (an Orga session, an Orbit call) offers once its ``Peer`` is connected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from .engine.peer import Peer, PeerState
from .engine.stats import CallStats
from .media.frames import AudioFrame, VideoFrame
from .media.recorder import Recorder
from .media.streams import ConvertedStream, audio_converter, video_converter


def track_of(source: Any, kind: str) -> MediaStreamTrack | None:
    """The track of ``kind`` in a source: a track itself, or an object with ``.audio``/``.video``."""
    if source is None:
        return None
    if isinstance(source, MediaStreamTrack):
        if source.kind != kind:
            raise TypeError(f"expected an {kind} track, got a {source.kind} track")
        return source
    return getattr(source, kind)


class PeerSession:
    """Received media, stats, state and hang-up for a session built on one ``Peer``.

    Subclasses do the signalling in ``start()`` and set ``self.peer``.
    """

    def __init__(self, source: Any = None, video: Any = None, *, record: str | Path | None = None,
                 **peer_options: Any) -> None:
        self._audio_track = track_of(source, "audio")
        self._video_track = track_of(video, "video")
        self._peer_options = peer_options
        self._record_path = record
        self.recorder: Recorder | None = None
        self.peer: Peer | None = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        raise NotImplementedError

    def _new_peer(self, ice_servers: Any) -> Peer:
        self.peer = Peer(ice_servers, **self._peer_options)
        return self.peer

    def _start_recording(self, with_video: bool) -> None:
        if self._record_path is not None and self.peer is not None:
            self.recorder = Recorder(self._record_path)
            self.recorder.start(self.peer.audio.hub.subscribe(500),
                                self.peer.video.hub.subscribe(100) if with_video else None)

    def audio_frames(self, sample_rate: int | None = None, channels: int | None = None,
                     *, max_queue: int = 50) -> ConvertedStream[AudioFrame]:
        """Received audio as int16 frames (48 kHz stereo unless asked otherwise)."""
        return ConvertedStream(self._require_peer().audio.hub.subscribe(max_queue),
                               audio_converter(sample_rate, channels))

    def video_frames(self, format: str = "rgb24", *, max_queue: int = 30) -> ConvertedStream[VideoFrame]:
        """Received video as numpy pictures."""
        return ConvertedStream(self._require_peer().video.hub.subscribe(max_queue), video_converter(format))

    def stats(self) -> CallStats:
        """Loss, jitter, RTT, bitrates and a MOS estimate, refreshed every second."""
        return self._require_peer().stats()

    @property
    def state(self) -> PeerState:
        return self.peer.state if self.peer else "new"

    async def closed(self) -> str:
        """Wait for the session to end and return why."""
        return await self._require_peer().closed()

    async def _end(self, reason: str, *, error: bool) -> None:
        """End the media side: recorder, peer connection, our sources."""
        if self.recorder is not None:
            await self.recorder.stop()
        if self.peer is not None:
            await self.peer.close(reason, error=error)
        for track in (self._audio_track, self._video_track):
            if track is not None:
                track.stop()

    async def close(self) -> None:
        """Hang up: close the peer connection, stop sources and the recorder."""
        await self._end("closed by the application", error=False)

    def _require_peer(self) -> Peer:
        if self.peer is None:
            raise RuntimeError("the session has not started: use 'async with'")
        return self.peer
