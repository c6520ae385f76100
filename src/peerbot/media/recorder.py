"""Record received media to a file: wav/ogg for audio only, mp4/webm/mkv with video too."""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import av

from ..errors import ConfigurationError, MediaError
from .streams import Subscription

log = logging.getLogger(__name__)

# container suffix → (audio codec, video codec or None when the container holds audio only)
_CODECS = {
    ".wav": ("pcm_s16le", None),
    ".ogg": ("libopus", None),
    ".mp4": ("aac", "libx264"),
    ".mkv": ("libopus", "libx264"),
    ".webm": ("libopus", "libvpx"),
}
Frame = TypeVar("Frame", av.AudioFrame, av.VideoFrame)
_FRAME_SIZE = {"aac": 1024, "libopus": 960}
_AUDIO_RATE = 48000
_VIDEO_CLOCK = 90000


def check_record_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` whose suffix names a container peerbot records; ``ConfigurationError`` otherwise."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise ConfigurationError(f"record must be a file path, got {path!r}")
    checked = Path(path)
    if str(path).endswith(("/", "\\")) or checked.is_dir():
        raise ConfigurationError(f"cannot record to {path}: it is a directory; give a file path ending in"
                                 f" one of {', '.join(_CODECS)}")
    if checked.suffix.lower() not in _CODECS:
        raise ConfigurationError(f"cannot record to {checked.name}: use one of {', '.join(_CODECS)}")
    return checked


def check_writable(path: Path) -> None:
    """Open ``path`` for writing now, as the recording will (a file made here is removed again), so
    that a place that cannot be written is a ``ConfigurationError`` before any request, not a
    recording lost at the end of the call."""
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ConfigurationError(f"cannot record to {path}: there is no directory {folder}")
    existed = path.exists()
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"cannot record to {path}: {exc.strerror or exc}") from None
    if not existed:
        with contextlib.suppress(OSError):
            path.unlink()


class Recorder:
    """Writes audio (and video where the container takes it) from frame subscriptions.

    Streams must all exist before a container's header is written, and the picture size is only
    known from the first video frame: audio is held back until that frame arrives, or for
    ``video_wait`` seconds, after which the file is audio-only. Audio timestamps count samples,
    so the file is exactly as long as the audio received. Encoding runs in a worker thread.
    """

    def __init__(self, path: str | Path, *, video_wait: float = 2.0) -> None:
        self.path = check_record_path(path)
        self.audio_codec, self.video_codec = _CODECS[self.path.suffix.lower()]
        self.video_wait = video_wait
        self._container: av.container.OutputContainer | None = None
        self._audio_stream: av.audio.stream.AudioStream | None = None
        self._video_stream: av.video.stream.VideoStream | None = None
        self._ready = False
        self._expect_video = False
        self._started = 0.0
        self._pending: list[av.AudioFrame] = []
        self._resampler = av.AudioResampler(
            format="s16" if self.audio_codec == "pcm_s16le" else "fltp", layout="stereo", rate=_AUDIO_RATE,
            frame_size=_FRAME_SIZE.get(self.audio_codec),
        )
        self._samples = 0
        self._video_origin: float | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription[av.AudioFrame] | Subscription[av.VideoFrame]] = []
        self.audio_frames = 0
        self.video_frames = 0
        self.error: str | None = None  # why writing failed: what was received is then (partly) lost

    def start(self, audio: Subscription[av.AudioFrame] | None, video: Subscription[av.VideoFrame] | None) -> None:
        """Begin writing; video is ignored when the container holds audio only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), mode="w")
        except Exception as exc:
            raise MediaError(f"cannot open {self.path} for writing: {exc}") from exc
        if video is not None and not self.video_codec:
            video.close()
            video = None
        self._expect_video = video is not None
        self._started = time.monotonic()
        if audio is not None:
            self._subs.append(audio)
        if video is not None:
            self._subs.append(video)
        if audio is not None:
            self._tasks.append(asyncio.create_task(self._pump(audio, self._on_audio)))
        if video is not None:
            self._tasks.append(asyncio.create_task(self._pump(video, self._on_video)))

    async def _pump(self, sub: Subscription[Frame], handle: Callable[[Frame], Awaitable[None]]) -> None:
        frames = sub.__aiter__()
        while True:
            try:
                frame = await frames.__anext__()
            except StopAsyncIteration:
                return
            except Exception as exc:  # a broken peer ends the stream: keep what was written
                log.debug("recording stream ended: %s", exc)
                return
            try:
                async with self._lock:
                    await handle(frame)
            except Exception as exc:  # the file, the disk or the encoder: say so, never lose it silently
                self._failed(f"writing {self.path} failed: {exc}")
                sub.close()
                return

    def _failed(self, message: str) -> None:
        if self.error is None:
            self.error = message
            log.warning("recording: %s", message)

    async def _on_audio(self, frame: av.AudioFrame) -> None:
        self._pending.append(frame)
        if not self._ready:
            if self._expect_video and time.monotonic() - self._started < self.video_wait:
                return
            await asyncio.to_thread(self._open_streams, None)
        pending, self._pending = self._pending, []
        await asyncio.to_thread(self._write_audio, pending)

    async def _on_video(self, frame: av.VideoFrame) -> None:
        if not self._ready:
            await asyncio.to_thread(self._open_streams, frame)
        if self._video_stream is not None:
            await asyncio.to_thread(self._write_video, frame)

    def _open_streams(self, first_video: av.VideoFrame | None) -> None:
        container = self._require_container()
        audio = container.add_stream(self.audio_codec, rate=_AUDIO_RATE, layout="stereo")
        assert isinstance(audio, av.audio.stream.AudioStream)  # an audio codec makes an audio stream
        self._audio_stream = audio
        if first_video is not None and self.video_codec is not None:
            stream = container.add_stream(self.video_codec, rate=30)
            assert isinstance(stream, av.video.stream.VideoStream)
            stream.width, stream.height = first_video.width, first_video.height
            stream.pix_fmt = "yuv420p"
            stream.time_base = fractions.Fraction(1, _VIDEO_CLOCK)
            self._video_stream = stream
        elif self._expect_video:
            log.warning("no video arrived within %.1f s: %s records audio only", self.video_wait, self.path.name)
        self._ready = True

    def _write_audio(self, frames: list[av.AudioFrame]) -> None:
        container, stream = self._require_container(), self._audio_stream
        assert stream is not None  # opened by _open_streams before any write
        for frame in frames:
            frame.pts = None  # timestamps are recounted from the samples written
            for piece in self._resampler.resample(frame):
                piece.pts = self._samples
                piece.time_base = fractions.Fraction(1, _AUDIO_RATE)
                self._samples += piece.samples
                container.mux(stream.encode(piece))
            self.audio_frames += 1

    def _write_video(self, frame: av.VideoFrame) -> None:
        when = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else 0.0
        if self._video_origin is None:
            self._video_origin = when
        container, stream = self._require_container(), self._video_stream
        assert stream is not None  # only called once the video stream is open
        image = frame.reformat(width=stream.width, height=stream.height, format="yuv420p")
        image.pts = int((when - self._video_origin) * _VIDEO_CLOCK)
        image.time_base = fractions.Fraction(1, _VIDEO_CLOCK)
        container.mux(stream.encode(image))
        self.video_frames += 1

    def _require_container(self) -> av.container.OutputContainer:
        if self._container is None:
            raise MediaError(f"{self.path.name} is not open for writing")
        return self._container

    async def stop(self) -> None:
        """Stop reading, write what is held back, flush the encoders and close the file."""
        # Closing the subscriptions ends the pumps after the frame in hand is written.
        for sub in self._subs:
            sub.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._container is None:
            return
        async with self._lock:
            try:
                await asyncio.to_thread(self._finish)
            except Exception as exc:
                self._failed(f"finishing {self.path} failed: {exc}")

    def _finish(self) -> None:
        container = self._require_container()
        try:
            if not self._ready:
                self._open_streams(None)
            pending, self._pending = self._pending, []
            self._write_audio(pending)
            for stream in (self._audio_stream, self._video_stream):
                if stream is not None:
                    container.mux(stream.encode(None))
        finally:
            self._container = None
            container.close()
