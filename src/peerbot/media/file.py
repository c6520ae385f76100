"""A media file as a source: anything av decodes (wav, mp3, ogg, mp4 with audio and video)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamTrack

from ..errors import MediaError


class File:
    """Plays a file in real time; ``audio`` and ``video`` are its tracks (None when absent).

    aiortc's ``MediaPlayer`` does the decoding in a thread and paces it; ``loop=True`` restarts
    at the end. Without looping, the tracks end with the file.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise MediaError(f"media file not found: {self.path}")
        try:
            self._player = MediaPlayer(str(self.path), loop=loop)
        except Exception as exc:  # av raises many types for unreadable files
            raise MediaError(f"cannot open media file {self.path}: {exc}") from exc
        if self._player.audio is None and self._player.video is None:
            raise MediaError(f"{self.path} has neither audio nor video")

    @property
    def audio(self) -> MediaStreamTrack | None:
        return self._player.audio

    @property
    def video(self) -> MediaStreamTrack | None:
        return self._player.video

    def stop(self) -> None:
        """Stop decoding and end both tracks."""
        for track in (self._player.audio, self._player.video):
            if track is not None:
                track.stop()

    def __repr__(self) -> str:
        return f"File({str(self.path)!r})"


def decode_audio(path: str | Path, sample_rate: int = 48000, channels: int = 1) -> np.ndarray:
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
