"""A media file as a source: anything av decodes (wav, mp3, ogg, mp4 with audio and video)."""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import av
import numpy as np

from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from ..errors import MediaError
from ._paced import FRAME_SECONDS, frames_missed


class File:
    """Plays a file in real time; ``audio`` and ``video`` are its tracks (None when absent).

    aiortc's ``MediaPlayer`` does the decoding in a thread and paces it. Each kind gets its own
    player, made when first asked for, so that using a video file for its sound decodes no
    pictures. ``loop=True`` restarts at the end by reopening the file (MediaPlayer's own looping
    misses the end of file with current PyAV), timestamps carrying on. Without looping, the audio
    goes on as silence once the file is over (like a participant who stopped talking: the call
    stays up and the far side hears the pause), unless ``then_silence=False``.
    """

    def __init__(self, path: str | Path, *, loop: bool = False, then_silence: bool = True) -> None:
        self.path = Path(path)
        self.loop = loop
        self.then_silence = then_silence
        if self.path.is_dir():
            raise MediaError(f"{self.path} is a directory, not a media file")
        if not self.path.exists():
            raise MediaError(f"media file not found: {self.path}")
        if not self.path.is_file():  # /dev/zero, a FIFO: a decoder would read it for ever
            raise MediaError(f"{self.path} is not a media file (not a regular file)")
        try:
            with av.open(str(self.path)) as container:
                self._kinds = {s.type for s in container.streams if s.type in ("audio", "video")}
        except av.error.InvalidDataError:
            raise MediaError(f"cannot open media file {self.path}: it is not a media file"
                             " (no decoder recognises it)") from None
        except Exception as exc:  # av raises many types for unreadable files
            raise MediaError(f"cannot open media file {self.path}: {exc}") from exc
        if not self._kinds:
            raise MediaError(f"{self.path} has neither audio nor video")
        self._tracks: dict[str, MediaStreamTrack] = {}

    @property
    def audio(self) -> MediaStreamTrack | None:
        return self._track("audio")

    @property
    def video(self) -> MediaStreamTrack | None:
        return self._track("video")

    def _track(self, kind: str) -> MediaStreamTrack | None:
        if kind not in self._kinds:
            return None
        if kind not in self._tracks:
            track = self._play(kind)
            if self.loop:
                track = Looping(track, lambda: self._play(kind))
            elif kind == "audio" and self.then_silence:
                track = SilenceAfterEnd(track)
            self._tracks[kind] = track
        return self._tracks[kind]

    def _play(self, kind: str) -> MediaStreamTrack:
        try:
            player = MediaPlayer(str(self.path))
        except Exception as exc:
            raise MediaError(f"cannot open media file {self.path}: {exc}") from exc
        # The player decodes every stream it keeps into unbounded queues, read or not: keep one.
        streams = player._MediaPlayer__streams  # type: ignore[attr-defined]
        player._MediaPlayer__streams = [s for s in streams if s.type == kind]  # type: ignore[attr-defined]
        return cast(MediaStreamTrack, getattr(player, kind))

    def stop(self) -> None:
        """Stop decoding and end the tracks."""
        for track in self._tracks.values():
            track.stop()

    def __repr__(self) -> str:
        return f"File({str(self.path)!r})"


class Looping(MediaStreamTrack):
    """Relays a file's track; at its end, reopens the file and shifts timestamps past the end."""

    def __init__(self, track: MediaStreamTrack, reopen: Callable[[], MediaStreamTrack | None]) -> None:
        super().__init__()
        self.kind = track.kind
        self._track: MediaStreamTrack | None = track
        self._reopen = reopen
        self._offset = 0.0  # seconds added to the current pass's timestamps
        self._end = 0.0  # where the latest frame ends, in the same timeline

    async def recv(self) -> Any:  # an av.AudioFrame or av.VideoFrame, as the relayed track gives
        if self.readyState != "live":
            raise MediaStreamError
        for _ in range(2):  # one reopen per end; a file that yields nothing ends the track
            if self._track is None:
                break
            try:
                frame: Any = await self._track.recv()
            except MediaStreamError:
                self._track.stop()
                self._track, self._offset = self._reopen(), self._end
                if self._track is None:
                    break
                continue
            start = float(frame.pts * frame.time_base) + self._offset
            frame.pts = round(start / frame.time_base)
            length = frame.samples / frame.sample_rate if isinstance(frame, av.AudioFrame) else 1 / 30
            self._end = max(self._end, start + length)
            return frame
        self.stop()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        if self._track is not None:
            self._track.stop()


class SilenceAfterEnd(MediaStreamTrack):
    """Relays an audio track, then sends paced 20 ms silence, continuing its timestamps."""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack) -> None:
        super().__init__()
        self._track = track
        self._ended_at: float | None = None
        self._next_pts = 0
        self._rate = 48000
        self._layout = "stereo"
        self._sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._ended_at is None:
            try:
                frame: Any = await self._track.recv()
            except MediaStreamError:
                self._ended_at = time.monotonic()
            else:
                self._rate, self._layout = frame.sample_rate, frame.layout.name
                self._next_pts = (frame.pts or 0) + frame.samples
                return cast(av.AudioFrame, frame)
        samples = self._rate // 50
        wait = self._ended_at + self._sent * FRAME_SECONDS - time.monotonic()
        missed = frames_missed(wait, FRAME_SECONDS)  # far behind: skip the gap, timestamps jump over it
        self._sent += missed
        self._next_pts += missed * samples
        wait = self._ended_at + self._sent * FRAME_SECONDS - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        self._sent += 1
        channels = 1 if self._layout == "mono" else 2
        frame = av.AudioFrame.from_ndarray(np.zeros((1, samples * channels), np.int16), format="s16", layout=self._layout)
        frame.sample_rate, frame.pts = self._rate, self._next_pts
        frame.time_base = fractions.Fraction(1, self._rate)
        self._next_pts += samples
        return cast(av.AudioFrame, frame)

    def stop(self) -> None:
        super().stop()
        self._track.stop()


def decode_audio(path: str | Path, sample_rate: int = 48000, channels: int = 1) -> np.ndarray[Any, np.dtype[np.int16]]:
    """A whole file's audio as int16 ``(channels, n)`` at ``sample_rate``: for ``AudioSource.capture``."""
    resampler = av.AudioResampler(format="s16", layout="mono" if channels == 1 else "stereo", rate=sample_rate)
    try:
        with av.open(str(path)) as container:
            frames = []
            for frame in container.decode(audio=0):
                frames.extend(resampler.resample(frame))
            frames.extend(resampler.resample(None))
    except Exception as exc:
        raise MediaError(f"cannot decode audio from {path}: {exc}") from exc
    if not frames:
        return np.zeros((channels, 0), dtype=np.int16)
    return np.concatenate([f.to_ndarray().reshape(-1, channels).T for f in frames], axis=1)
