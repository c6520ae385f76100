"""Microphone, speaker and device listing against a real (virtual) PulseAudio sound card."""

from __future__ import annotations

import asyncio
import fractions
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from peerbot.errors import AudioDeviceError
from peerbot.media.devices import format_devices, list_devices, resolve_device
from peerbot.media.frames import AudioFrame
from peerbot.media.microphone import Microphone
from peerbot.media.speaker import Speaker

from audio_device import VirtualAudioDevice, VirtualAudioUnavailable, virtual_audio_device
from media_checks import dominant_frequency, rms


@pytest.fixture(scope="module")
def audio() -> VirtualAudioDevice:
    try:
        with virtual_audio_device() as device:
            yield device
    except VirtualAudioUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


async def record_frames(mic: Microphone, seconds: float) -> list:
    frames = []
    while sum(f.samples for f in frames) < seconds * mic.sample_rate:
        frames.append(await asyncio.wait_for(mic.recv(), timeout=5))
    return frames


def frames_to_mono(frames: list) -> np.ndarray:
    return np.concatenate([f.to_ndarray().reshape(-1, len(f.layout.channels)).mean(axis=1) for f in frames])


async def tone_frames(frequency: float, seconds: float, rate: int = 48000, channels: int = 1):
    n = rate // 50
    for i in range(int(seconds * 50)):
        t = (np.arange(n) + i * n) / rate
        mono = (0.5 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
        yield AudioFrame(data=np.tile(mono, (channels, 1)), sample_rate=rate, timestamp=i * n / rate)


# --- capture ---------------------------------------------------------------------------


async def test_microphone_records_440hz_tone_played_into_the_null_sink(audio):
    with audio.play_tone(440):
        mic = Microphone(audio.device)
        try:
            frames = await record_frames(mic, 1.3)
        finally:
            mic.stop()
    rate = mic.sample_rate
    assert all(f.sample_rate == rate and f.samples == rate // 50 for f in frames)
    assert all(f.format.name == "s16" and f.time_base == fractions.Fraction(1, rate) for f in frames)
    assert [f.pts for f in frames] == [i * (rate // 50) for i in range(len(frames))]
    samples = frames_to_mono(frames)[-rate:]  # the last second: past any start-up silence
    frequency, level = dominant_frequency(samples, rate), rms(samples)
    print(f"microphone: {rate} Hz, {len(frames)} frames, peak {frequency:.1f} Hz, rms {level:.0f}")
    assert frequency == pytest.approx(440, abs=3)
    assert level > 1000  # the tone is played at half scale (rms ~11500): silence would be ~0


async def test_microphone_stereo_capture_delivers_interleaved_stereo_frames(audio):
    with audio.play_tone(440):
        mic = Microphone(audio.device, channels=2)
        try:
            frames = await record_frames(mic, 1.0)
        finally:
            mic.stop()
    assert all(f.layout.name == "stereo" and f.samples == mic.sample_rate // 50 for f in frames)
    frequency = dominant_frequency(frames_to_mono(frames)[-mic.sample_rate // 2 :], mic.sample_rate)
    assert frequency == pytest.approx(440, abs=6)


async def test_microphone_slow_consumer_drops_oldest_frames_and_pts_shows_the_gap(audio):
    mic = Microphone(audio.device, buffer_frames=5)
    try:
        first = await asyncio.wait_for(mic.recv(), timeout=5)
        await asyncio.sleep(0.5)  # ~25 frames arrive; the buffer holds 5
        later = [await asyncio.wait_for(mic.recv(), timeout=5) for _ in range(5)]
    finally:
        mic.stop()
    assert mic.dropped_frames > 0
    assert later[0].pts - first.pts > 5 * first.samples  # pts counts captured, not delivered, samples


async def test_microphone_stop_ends_the_track(audio):
    from aiortc.mediastreams import MediaStreamError

    mic = Microphone(audio.device)
    await asyncio.wait_for(mic.recv(), timeout=5)
    mic.stop()
    assert mic.readyState == "ended"
    with pytest.raises(MediaStreamError):
        await mic.recv()


async def test_microphone_frames_feed_aiortcs_opus_encoder_at_48khz_timestamps(audio):
    from aiortc.codecs.opus import OpusEncoder

    encoder = OpusEncoder()
    mic = Microphone(audio.device)
    try:
        encoded = [encoder.encode(await asyncio.wait_for(mic.recv(), timeout=5)) for _ in range(10)]
    finally:
        mic.stop()
    # The device runs at its own rate (44.1 kHz here); the encoder resamples to Opus's 48 kHz.
    timestamps = [ts for payloads, ts in encoded if payloads]
    assert len(timestamps) >= 8
    assert all(b - a == 960 for a, b in zip(timestamps, timestamps[1:]))


# --- devices ---------------------------------------------------------------------------


def test_list_devices_shows_the_virtual_pulse_device(audio):
    devices = list_devices()
    pulse = [d for d in devices if d.name == audio.device]
    assert pulse, [d.name for d in devices]
    assert pulse[0].max_input_channels > 0 and pulse[0].max_output_channels > 0
    assert pulse[0].default_samplerate > 0
    assert any(d.is_default_input for d in devices) and any(d.is_default_output for d in devices)
    table = format_devices()
    assert audio.device in table and "default input" in table


def test_resolve_device_by_index_exact_name_and_case_insensitive_substring(audio):
    index = next(d.index for d in list_devices() if d.name == "pulse")
    assert resolve_device(index, "input") == index
    assert resolve_device(str(index), "output") == index
    assert resolve_device("PULSE", "input") == index
    assert resolve_device("puls", "output") == index
    assert resolve_device(None, "input") is None


def test_missing_device_name_names_it_and_lists_available_devices(audio):
    with pytest.raises(AudioDeviceError) as info:
        Microphone("no-such-mic-xyz")
    message = str(info.value)
    assert "no-such-mic-xyz" in message
    assert "available input devices" in message and "'pulse'" in message
    with pytest.raises(AudioDeviceError, match="no-such-speaker"):
        Speaker("no-such-speaker")
    with pytest.raises(AudioDeviceError, match="index 999"):
        resolve_device(999, "input")


# --- playback --------------------------------------------------------------------------


async def test_speaker_plays_660hz_tone_into_the_null_sink(audio):
    speaker = Speaker(audio.device)
    recording = asyncio.create_task(asyncio.to_thread(audio.record, 2.0))
    try:
        await speaker.play(tone_frames(660, 2.5))
    finally:
        speaker.close()
    samples = await recording
    loud = samples[np.argmax(np.abs(samples) > 1000) :][:48000]  # one second from the tone's start
    assert len(loud) >= 24000, "the monitor recorded (almost) nothing"
    frequency, level = dominant_frequency(loud, 48000), rms(loud)
    print(f"speaker: peak {frequency:.1f} Hz, rms {level:.0f}, underruns {speaker.underruns}")
    assert frequency == pytest.approx(660, abs=3)
    assert level > 1000


async def test_speaker_resamples_and_upmixes_frames_that_differ_from_the_stream(audio):
    async def mixed():
        async for frame in tone_frames(660, 1.0, rate=48000, channels=2):
            yield frame
        async for frame in tone_frames(660, 1.5, rate=16000, channels=1):
            yield frame

    speaker = Speaker(audio.device)
    recording = asyncio.create_task(asyncio.to_thread(audio.record, 2.5))
    try:
        await speaker.play(mixed())
    finally:
        speaker.close()
    assert (speaker.sample_rate, speaker.channels) == (48000, 2)
    samples = await recording
    tail = samples[np.nonzero(np.abs(samples) > 1000)[0][-1] - 24000 :][:24000]  # the 16 kHz part
    frequency = dominant_frequency(tail, 48000)
    assert frequency == pytest.approx(660, abs=5)


async def test_speaker_plays_the_whole_stream_before_play_returns(audio):
    speaker = Speaker(audio.device)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        await speaker.play(tone_frames(660, 1.0))
    finally:
        speaker.close()
    # A fast producer is paced by the device: play() cannot return before the audio was played.
    assert loop.time() - started >= 1.0 - speaker._buffer_seconds


# --- no audio stack needed at import time ----------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_importing_audio_modules_does_not_import_sounddevice():
    result = run_python(
        """
        import sys
        import peerbot, peerbot.media.devices, peerbot.media.microphone, peerbot.media.speaker
        assert "sounddevice" not in sys.modules, "sounddevice imported at import time"
        assert "_sounddevice" not in sys.modules
        print("ok")
        """
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_missing_sounddevice_package_says_pip_install_sounddevice():
    result = run_python(
        """
        import sys
        sys.modules["sounddevice"] = None  # makes `import sounddevice` raise ImportError
        from peerbot.errors import AudioDeviceError
        from peerbot.media.microphone import Microphone
        try:
            Microphone()
        except AudioDeviceError as exc:
            print(exc)
        """
    )
    assert "pip install sounddevice" in result.stdout, result.stderr


def test_missing_portaudio_library_says_apt_get_install_libportaudio2():
    result = run_python(
        """
        import ctypes.util
        ctypes.util.find_library = lambda name: None  # as on a machine without libportaudio2
        from peerbot.errors import AudioDeviceError
        from peerbot.media.devices import list_devices
        try:
            list_devices()
        except AudioDeviceError as exc:
            print(exc)
        """
    )
    assert "apt-get install libportaudio2" in result.stdout, result.stderr



async def test_microphone_as_session_source_is_echoed_back_by_the_embedded_server(audio, orga_kwargs):
    from peerbot import orga

    with audio.play_tone(440):
        async with orga.connect(Microphone(audio.device), **orga_kwargs) as session:
            chunks = []
            async for frame in session.audio_frames(sample_rate=16000, channels=1):
                if rms(frame.data) > 500:
                    chunks.append(frame.data[0])
                if len(chunks) >= 40:
                    break
    assert abs(dominant_frequency(np.concatenate(chunks), 16000) - 440) < 5
