"""File sources in real sessions: each container av decodes, looping, and the silence after the end."""

from __future__ import annotations

import asyncio
import fractions

import av
import numpy as np
import pytest

from peerbot import orga
from peerbot.errors import MediaError
from peerbot.media import File, decode_audio

from conftest import SAMPLES
from media_checks import dominant_frequency, rms


def write_tone(path, frequency: float, seconds: float, codec: str, rate: int = 44100) -> None:
    """A mono tone file written with av, so each container's real decoder is exercised."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        t = np.arange(int(seconds * rate)) / rate
        pcm = (0.4 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        fmt = stream.codec_context.codec.audio_formats[0].name
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, fractions.Fraction(1, rate)
        resampler = av.AudioResampler(format=fmt, layout="mono", rate=rate, frame_size=stream.codec_context.frame_size or None)
        for piece in [*resampler.resample(frame), *resampler.resample(None)]:
            container.mux(stream.encode(piece))
        container.mux(stream.encode(None))


async def echoed_tone(session, frames: int = 30) -> np.ndarray:
    loud = []
    async for frame in session.audio_frames(sample_rate=16000, channels=1):
        if rms(frame.data) > 1000:
            loud.append(frame.data[0])
        if len(loud) == frames:
            break
    return np.concatenate(loud)


@pytest.mark.parametrize("suffix, codec, rate", [(".wav", "pcm_s16le", 44100), (".mp3", "libmp3lame", 22050),
                                                 (".ogg", "libopus", 48000), (".flac", "flac", 16000)])
async def test_audio_file_of_each_format_is_sent_and_echoed_with_its_frequency(tmp_path, orga_kwargs, suffix, codec, rate):
    path = tmp_path / f"tone{suffix}"
    write_tone(path, 620.0, 2.0, codec, rate)
    async with orga.connect(File(path), **orga_kwargs) as session:
        heard = await echoed_tone(session)
    assert abs(dominant_frequency(heard, 16000) - 620) < 8


async def test_mp4_sample_sends_both_audio_and_video(orga_server, orga_kwargs):
    clip = File(SAMPLES / "pattern.mp4")
    async with orga.connect(clip, clip, **orga_kwargs) as session:
        heard = await echoed_tone(session, frames=20)
        call = orga_server.calls[session.conversation_id]
        assert call.video_frames_received > 5
    assert abs(dominant_frequency(heard, 16000) - 440) < 8


async def test_audio_goes_on_as_silence_after_the_file_ends(tmp_path, orga_server, orga_kwargs):
    path = tmp_path / "short.wav"
    write_tone(path, 500.0, 0.3, "pcm_s16le")
    async with orga.connect(File(path), **orga_kwargs) as session:
        received = [frame async for frame in _take(session.audio_frames(16000, 1), 75)]
        call = orga_server.calls[session.conversation_id]
        assert call.audio_frames_received >= 60  # far more than the file's 15 frames
    tail = np.concatenate([f.data[0] for f in received[-20:]])
    assert rms(tail) < 50


async def test_looping_file_keeps_sending_the_tone(tmp_path, orga_kwargs):
    path = tmp_path / "loop.wav"
    write_tone(path, 700.0, 0.5, "pcm_s16le")
    async with orga.connect(File(path, loop=True), **orga_kwargs) as session:
        received = [frame async for frame in _take(session.audio_frames(16000, 1), 100)]
    late = np.concatenate([f.data[0] for f in received[-25:]])  # 1.5 s after a 0.5 s file
    assert rms(late) > 1000 and abs(dominant_frequency(late, 16000) - 700) < 10


async def test_receive_only_session_sends_no_audio_but_receives(orga_server, orga_kwargs):
    async with orga.connect(None, **orga_kwargs) as session:
        frame = await session.audio_frames().__anext__()
        assert orga_server.calls[session.conversation_id].audio_frames_received == 0
    assert frame.samples == 960


def test_missing_or_unreadable_file_is_a_media_error(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        File(tmp_path / "nope.wav")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio")
    with pytest.raises(MediaError, match="cannot open"):
        File(junk)


def test_decode_audio_returns_the_whole_file_at_the_requested_rate():
    pcm = decode_audio(SAMPLES / "hello.wav", sample_rate=24000)
    assert pcm.shape[0] == 1 and pcm.dtype == np.int16
    assert pcm.shape[1] / 24000 == pytest.approx(4.11, abs=0.05)


async def _take(stream, n: int):
    async for item in stream:
        yield item
        n -= 1
        if n == 0:
            stream.close()
            return


def write_video(path, seconds: float, fps: int = 15) -> None:
    """A small H.264 clip of flat grey frames."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 90 + i, np.uint8), format="rgb24")
            frame.pts = i
            frame.time_base = fractions.Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


async def test_looping_video_file_keeps_sending_past_its_end(tmp_path, orga_server, orga_kwargs):
    path = tmp_path / "clip.mp4"
    write_video(path, 1.0)
    clip = File(path, loop=True)
    async with orga.connect(None, clip, **orga_kwargs) as session:
        await asyncio.sleep(3.0)
        received = orga_server.calls[session.conversation_id].video_frames_received
    assert received > 30  # a 15-frame clip, looped for 3 s
