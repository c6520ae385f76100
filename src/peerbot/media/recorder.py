"""Record received media to a file: wav for audio only, mp4/webm/mkv/ogg with the codecs that fit."""

from __future__ import annotations

import asyncio
import fractions
import logging
from pathlib import Path

import av

from ..errors import MediaError
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
_AUDIO_RATE = 48000


class Recorder:
    """Writes audio (and video where the container takes it) from frame subscriptions.

    Audio timestamps count samples, so the file is exactly as long as the audio received.
    Encoding runs in a worker thread to keep the event loop free.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix.lower() not in _CODECS:
            raise MediaError(f"cannot record to {self.path.name}: use one of {', '.join(_CODECS)}")
        self.audio_codec, self.video_codec = _CODECS[self.path.suffix.lower()]
        self._container: av.container.OutputContainer | None = None
        self._audio_stream = self._video_stream = None
        self._resampler = av.AudioResampler(format="s16" if self.audio_codec == "pcm_s16le" else "fltp",
                                            layout="stereo", rate=_AUDIO_RATE,
                                            frame_size=1024 if self.audio_codec == "aac" else 960 if self.audio_codec == "libopus" else None)
        self._samples = 0
        self._video_origin: float | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._subs: list[Subscription] = []
        self.audio_frames = 0
        self.video_frames = 0

    @property
    def records_video(self) -> bool:
        return self.video_codec is not None

    def start(self, audio: Subscription[av.AudioFrame] | None, video: Subscription[av.VideoFrame] | None) -> None:
        """Begin writing; video is ignored when the container holds audio only."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._container = av.open(str(self.path), mode="w")
        except Exception as exc:
            raise MediaError(f"cannot open {self.path} for writing: {exc}") from exc
        self._audio_stream = self._container.add_stream(self.audio_codec, rate=_AUDIO_RATE, layout="stereo")
        self._subs = [s for s in (audio, video) if s is not None]
        if audio is not None:
            self._tasks.append(asyncio.create_task(self._pump(audio, self._write_audio)))
        if video is not None and self.video_codec:
            self._tasks.append(asyncio.create_task(self._pump(video, self._write_video)))
        elif video is not None:
            video.close()

    async def _pump(self, sub: Subscription, write) -> None:
        try:
            async for frame in sub:
                async with self._lock:
                    await asyncio.to_thread(write, frame)
        except Exception as exc:  # a broken peer ends the stream: keep what was written
            log.debug("recording stream ended: %s", exc)

    def _write_audio(self, frame: av.AudioFrame) -> None:
        frame.pts = None
        for piece in self._resampler.resample(frame):
            piece.pts = self._samples
            piece.time_base = fractions.Fraction(1, _AUDIO_RATE)
            self._samples += piece.samples
            self._container.mux(self._audio_stream.encode(piece))
        self.audio_frames += 1

    def _write_video(self, frame: av.VideoFrame) -> None:
        if self._video_stream is None:
            self._video_stream = self._container.add_stream(self.video_codec, rate=30)
            self._video_stream.width, self._video_stream.height = frame.width, frame.height
            self._video_stream.pix_fmt = "yuv420p"
            self._video_stream.time_base = fractions.Fraction(1, 90000)
        when = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
        if self._video_origin is None:
            self._video_origin = when
        image = frame.reformat(width=self._video_stream.width, height=self._video_stream.height, format="yuv420p")
        image.pts = int((when - self._video_origin) * 90000)
        image.time_base = fractions.Fraction(1, 90000)
        self._container.mux(self._video_stream.encode(image))
        self.video_frames += 1

    async def stop(self) -> None:
        """Stop reading, flush the encoders and close the file."""
        # Closing the subscriptions ends the pumps after the frame in hand is written.
        for sub in self._subs:
            sub.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._container is None:
            return
        async with self._lock:
            await asyncio.to_thread(self._finish)

    def _finish(self) -> None:
        container, self._container = self._container, None
        try:
            for stream in (self._audio_stream, self._video_stream):
                if stream is not None:
                    container.mux(stream.encode(None))
        finally:
            container.close()
