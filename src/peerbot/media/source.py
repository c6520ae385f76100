"""What a session accepts as ``source=`` / ``video=``: a track, or an object holding tracks."""

from __future__ import annotations

from typing import Literal, Protocol

from aiortc.mediastreams import MediaStreamTrack

from ..errors import ConfigurationError


_MISSING = object()


class TrackSource(Protocol):
    """A source that holds its tracks, like ``File``: ``audio``/``video`` are tracks or None."""

    @property
    def audio(self) -> MediaStreamTrack | None: ...

    @property
    def video(self) -> MediaStreamTrack | None: ...


MediaSource = MediaStreamTrack | TrackSource
"""A track (``Tone()``, ``Microphone()``, ``TestPattern()``…) or a ``TrackSource`` (``File(...)``)."""


def track_of(source: MediaSource | None, kind: Literal["audio", "video"]) -> MediaStreamTrack | None:
    """The track of ``kind`` in ``source``; ``ConfigurationError`` for a track of the other kind
    or an object that is neither a track nor holds one."""
    if source is None:
        return None
    if isinstance(source, MediaStreamTrack):
        if source.kind != kind:
            raise ConfigurationError(f"expected an {kind} track, got a {source.kind} track")
        return source
    # Read once: a source may open its decoder on first access (File does).
    track = getattr(source, kind, _MISSING)
    if track is _MISSING:
        raise ConfigurationError(f"a source must be a media track or have .audio/.video, got {type(source).__name__}")
    if track is not None and not isinstance(track, MediaStreamTrack):
        raise ConfigurationError(f"{type(source).__name__}.{kind} is not a media track")
    return track
