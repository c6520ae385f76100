"""Echo cancellation, noise suppression and gain (libwebrtc's APM from the livekit wheel): on
synthetic signals, then on a real audio path, a PulseAudio room between the speaker and the
microphone, with what the far side receives over a real call measured."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import wave

import numpy as np
import pytest

from peerbot.errors import ConfigurationError
from peerbot.media.audio_processing import AudioProcessing, chunk_samples
from peerbot.media.frames import AudioFrame
from peerbot.media.microphone import Microphone
from peerbot.media.speaker import Speaker

from audio_device import ROOM, SINK, VirtualAudioUnavailable, virtual_audio_device
from conftest import SAMPLES
from media_checks import dominant_frequency

RATE = 48000
NEAR_HZ = 1000  # where espeak's voice (the far side here) has little energy: the near end stands out


def far_voice(seconds: float, rate: int = RATE) -> np.ndarray:
    """samples/hello.wav (espeak speech, 16 kHz) looped to ``seconds`` at ``rate``, int16."""
    with wave.open(str(SAMPLES / "hello.wav")) as source:
        speech = np.frombuffer(source.readframes(source.getnframes()), np.int16).astype(np.float64)
    upsampled = np.interp(np.arange(len(speech) * rate // 16000) * 16000 / rate, np.arange(len(speech)), speech)
    return np.resize(upsampled, int(seconds * rate)).astype(np.int16)


def power(x: np.ndarray) -> float:
    return float(np.mean(np.asarray(x, np.float64) ** 2)) + 1e-9


def dbfs(x: np.ndarray) -> float:
    return 10 * np.log10(power(x) / 32768**2)


def band_power(x: np.ndarray, rate: int, hz: float, width: float = 20) -> float:
    spectrum = np.abs(np.fft.rfft(np.asarray(x, np.float64) * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1 / rate)
    return float(spectrum[(f > hz - width) & (f < hz + width)].sum()) + 1e-9


# --- the module on synthetic signals ---------------------------------------------------


def test_a_40ms_echo_of_far_end_speech_is_cancelled_by_30db_while_a_near_end_tone_stays():
    seconds, delay = 10, int(0.040 * RATE)
    far = far_voice(seconds)
    echo = np.concatenate([np.zeros(delay), far[:-delay] * 0.5])
    t = np.arange(seconds * RATE) / RATE
    near = 4000 * np.sin(2 * np.pi * NEAR_HZ * t) * (t >= 6)  # double talk for the last 4 s
    mic = np.clip(echo + near, -32768, 32767).astype(np.int16).reshape(-1, 1)
    processing = AudioProcessing(echo_cancellation=True, noise_suppression=True, stream_delay_ms=40)
    out = np.zeros_like(mic)
    block, chunk, fed = 383, RATE // 50, 0  # the reference in odd device-sized blocks, as PortAudio gives them
    for start in range(0, len(mic), chunk):
        while fed < start + chunk:  # what the speaker played comes before its echo is captured
            processing.add_reference(far[fed : fed + block].reshape(-1, 1), RATE)
            fed += block
        out[start : start + chunk] = processing.process_capture(mic[start : start + chunk], RATE)

    echo_only, double_talk = slice(3 * RATE, 6 * RATE), slice(7 * RATE, 10 * RATE)
    erle = 10 * np.log10(power(mic[echo_only]) / power(out[echo_only]))
    kept = 10 * np.log10(band_power(out[double_talk, 0], RATE, NEAR_HZ) / band_power(near[double_talk], RATE, NEAR_HZ))
    print(f"synthetic 40 ms echo: ERLE {erle:.1f} dB; near-end {NEAR_HZ} Hz tone in double talk {kept:+.1f} dB")
    assert erle >= 30
    assert abs(kept) <= 3
    assert dominant_frequency(out[double_talk, 0], RATE) == pytest.approx(NEAR_HZ, abs=2)


def test_auto_gain_lifts_quiet_speech():
    speech = (far_voice(8) * 0.03).astype(np.int16).reshape(-1, 1)  # about -52 dBFS
    processing = AudioProcessing(echo_cancellation=False, noise_suppression=False, auto_gain=True)
    chunk = RATE // 100
    out = np.concatenate([processing.process_capture(speech[i : i + chunk], RATE)
                          for i in range(0, len(speech), chunk)])
    gain = dbfs(out[-4 * RATE :]) - dbfs(speech[-4 * RATE :])
    print(f"auto gain: {dbfs(speech[-4 * RATE:]):.1f} dBFS in, {gain:+.1f} dB")
    assert gain > 15


def test_stream_delay_is_the_configured_one_else_the_devices_latencies_added_up():
    assert AudioProcessing(stream_delay_ms=120).stream_delay_ms == 120
    estimated = AudioProcessing()
    estimated.input_latency = 0.034
    estimated.add_reference(np.zeros((100, 2), np.int16), RATE, output_latency=0.035)
    assert estimated.stream_delay_ms == 69
    assert "stream_delay_ms=69" in repr(estimated)
    estimated.output_latency = 2.0
    assert estimated.stream_delay_ms == 500  # libwebrtc's ceiling
    for bad in (-1, 501, 40.5, "40"):
        with pytest.raises(ConfigurationError, match="stream_delay_ms"):
            AudioProcessing(stream_delay_ms=bad)  # type: ignore[arg-type]


def test_audio_processing_refuses_rates_without_whole_10ms_chunks_and_a_partial_chunk():
    assert chunk_samples(44100) == 441
    with pytest.raises(ConfigurationError, match="22050 Hz"):
        chunk_samples(22050)
    with pytest.raises(ValueError, match="10 ms chunks"):
        AudioProcessing().process_capture(np.zeros((500, 1), np.int16), RATE)
    with pytest.raises(ConfigurationError, match="would do nothing"):
        AudioProcessing(echo_cancellation=False, noise_suppression=False, high_pass_filter=False)


def test_microphone_refuses_a_shared_processing_together_with_its_own_settings():
    with pytest.raises(ConfigurationError, match="not both"):
        Microphone(processing=AudioProcessing(), echo_cancellation=True)
    with pytest.raises(ConfigurationError, match="needs echo_cancellation=True"):
        Microphone(noise_suppression=True, stream_delay_ms=50)
    with pytest.raises(ConfigurationError, match="echo_reference"):
        Speaker(echo_reference="yes")  # type: ignore[arg-type]


def test_microphone_and_audio_processing_refuse_settings_of_the_wrong_type_naming_them():
    # "yes" was a TypeError from livekit naming no setting; True was taken as a 1 ms delay;
    # a string processing= reached the device code.
    with pytest.raises(ConfigurationError, match=r"echo_cancellation=\) must be True or False, got 'yes'"):
        Microphone(echo_cancellation="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="auto_gain must be True or False"):
        AudioProcessing(auto_gain=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="stream_delay_ms must be a whole number"):
        AudioProcessing(stream_delay_ms=True)
    with pytest.raises(ConfigurationError, match="must be an AudioProcessing, got 'yes'"):
        Microphone(processing="yes")  # type: ignore[arg-type]


def test_audio_processing_refuses_samples_of_the_wrong_shape_or_type_and_a_zero_rate_with_a_clear_error():
    # They were an IndexError, a ZeroDivisionError, or float samples passed through.
    processing = AudioProcessing()
    for bad in (np.zeros(480, np.int16), np.zeros((480, 1), np.float32), np.zeros((480, 3), np.int16)):
        with pytest.raises(ValueError, match=r"int16 samples shaped \(n, channels\)"):
            processing.process_capture(bad, RATE)
    with pytest.raises(ValueError, match="reference audio must be int16"):
        processing.add_reference(np.zeros(480, np.int16), RATE)
    for side in (processing.process_capture, processing.add_reference):
        with pytest.raises(ConfigurationError, match="needs a sample rate in Hz, got 0"):
            side(np.zeros((480, 1), np.int16), 0)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_without_livekit_asking_for_processing_names_the_desktop_extra():
    result = run_python(
        """
        import sys
        sys.modules["livekit"] = None  # makes `import livekit` raise ImportError, as without the wheel
        from peerbot.errors import AudioDeviceError
        from peerbot.media import Microphone
        try:
            Microphone()  # no processing asked for: livekit is not needed
        except AudioDeviceError:
            pass  # no sound card in this process: what counts is that livekit was not asked for
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr
    result = run_python(
        """
        import sys
        sys.modules["livekit"] = None
        from peerbot.errors import ConfigurationError
        from peerbot.media import Microphone
        try:
            Microphone(echo_cancellation=True)
        except ConfigurationError as exc:
            print(exc)
        """
    )
    assert "pip install 'peerbot[desktop]'" in result.stdout, result.stderr


def test_importing_peerbot_media_does_not_load_livekit():
    result = run_python(
        """
        import sys
        import peerbot.media, peerbot.media.audio_processing
        assert not any(name.startswith("livekit") for name in sys.modules), "livekit imported at import time"
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr


# --- a real audio path: PulseAudio's room between speaker and microphone ---------------


@pytest.fixture(scope="module")
def audio():
    try:
        with virtual_audio_device() as device:
            yield device
    except VirtualAudioUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


async def frames_of(samples: np.ndarray, rate: int = RATE):
    n = rate // 50
    for i in range(0, len(samples) - n + 1, n):
        yield AudioFrame(data=samples[i : i + n].reshape(1, -1), sample_rate=rate, timestamp=i / rate)


async def test_the_far_sides_voice_through_the_room_is_cancelled_in_what_peerbot_sends(audio, orga_kwargs):
    """Two calls hear the same room: one microphone cancels echo, one does not. The far side
    (the embedded server, which sends back what it receives) gets the speaker's voice ≥ 30 dB
    quieter from the first, and the near end's tone, played into the room meanwhile, from both."""
    from peerbot import orga

    loop = asyncio.get_running_loop()
    heard: dict[str, list[tuple[float, np.ndarray]]] = {"on": [], "off": []}

    async def listen(name: str, session) -> None:
        async for frame in session.audio_frames(sample_rate=RATE, channels=1):
            heard[name].append((loop.time(), frame.data[0]))

    with audio.echo_path(delay_ms=40, gain=0.5):
        cancelling = Microphone(audio.device, echo_cancellation=True, noise_suppression=True)
        plain = Microphone(audio.device)
        speaker = Speaker(audio.device)  # echo_reference="auto": feeds the cancelling microphone
        try:
            async with orga.connect(cancelling, **orga_kwargs) as on, orga.connect(plain, **orga_kwargs) as off:
                listeners = [asyncio.create_task(listen("on", on)), asyncio.create_task(listen("off", off))]
                await asyncio.sleep(0.5)
                started = loop.time()
                playing = asyncio.create_task(speaker.play(frames_of(far_voice(8.2))))
                await asyncio.sleep(4.5)
                with audio.play_tone(NEAR_HZ, seconds=5, amplitude=0.15, sink=ROOM):  # the near end talks too
                    await playing
                for task in listeners:
                    task.cancel()
        finally:
            cancelling.stop(), plain.stop(), speaker.close()
    delay = cancelling.processing.stream_delay_ms

    def during(name: str, begin: float, end: float) -> np.ndarray:
        # The server sends back 0.1 s later what it got: the windows leave room for that and the network.
        return np.concatenate([x for t, x in heard[name] if started + begin <= t < started + end])

    echo_on, echo_off = during("on", 2.0, 4.5), during("off", 2.0, 4.5)
    erle = 10 * np.log10(power(echo_off) / power(echo_on))
    talk_on, talk_off = during("on", 5.2, 8.0), during("off", 5.2, 8.0)
    kept = 10 * np.log10(band_power(talk_on, RATE, NEAR_HZ) / band_power(talk_off, RATE, NEAR_HZ))
    print(f"room echo (40 ms, -6 dB), stream delay estimate {delay} ms: far side received the echo at"
          f" {dbfs(echo_off):.1f} dBFS without, {dbfs(echo_on):.1f} dBFS with processing: ERLE {erle:.1f} dB;"
          f" near-end {NEAR_HZ} Hz tone in double talk {kept:+.1f} dB")
    assert dbfs(echo_off) > -35, "without processing the echo should reach the far side"
    assert erle >= 30
    assert dominant_frequency(talk_on, RATE) == pytest.approx(NEAR_HZ, abs=3)
    assert abs(kept) <= 3


async def test_microphone_unplugged_mid_capture_goes_on_with_silence(audio):
    mic = Microphone(audio.device, echo_cancellation=True)
    try:
        with audio.play_tone(440):
            first = [await asyncio.wait_for(mic.recv(), timeout=5) for _ in range(10)]
            assert audio.unplug("source-output") == 1
            after = [await asyncio.wait_for(mic.recv(), timeout=5) for _ in range(40)]
    finally:
        mic.stop()
    assert mic.device_error is not None and "unplugged" in mic.device_error
    assert not np.any(after[-1].to_ndarray()), "after the device went away the frames are silent"
    pts = [f.pts for f in first + after]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)


async def test_microphone_whose_device_stalls_without_ending_is_lost_after_a_second_and_goes_on_with_silence(audio):
    # A suspended sink: its monitor stops delivering but PortAudio's stream never finishes (what an
    # ALSA stream that recovered from an overrun after its PulseAudio stream was killed does).
    mic = Microphone(audio.device)
    loop = asyncio.get_running_loop()
    try:
        with audio.play_tone(440):
            [await asyncio.wait_for(mic.recv(), timeout=5) for _ in range(10)]
            audio.pactl("suspend-sink", SINK, "1")
            stalled = loop.time()
            while mic.device_error is None and loop.time() - stalled < 5:
                frame = await asyncio.wait_for(mic.recv(), timeout=5)
            lost_after = loop.time() - stalled
            after = [await asyncio.wait_for(mic.recv(), timeout=5) for _ in range(10)]
    finally:
        audio.pactl("suspend-sink", SINK, "0")
        mic.stop()
    assert mic.device_error is not None and "stopped delivering audio" in mic.device_error
    assert 0.9 <= lost_after < 3.0
    assert not np.any(frame.to_ndarray()) and not any(np.any(f.to_ndarray()) for f in after)


async def test_speaker_unplugged_mid_play_drops_the_rest_at_real_time_and_returns(audio):
    speaker = Speaker(audio.device)
    loop = asyncio.get_running_loop()
    t = np.arange(2 * RATE) / RATE
    tone = (8000 * np.sin(2 * np.pi * 660 * t)).astype(np.int16)
    started = loop.time()
    try:
        playing = asyncio.create_task(speaker.play(frames_of(tone)))
        await asyncio.sleep(0.5)
        assert audio.unplug("sink-input") == 1
        await asyncio.wait_for(playing, timeout=5)
    finally:
        speaker.close()
    assert speaker.device_error is not None and "unplugged" in speaker.device_error
    # Paced: the 1.5 s left after the unplug are not rushed through (the 0.2 s buffered are lost).
    assert loop.time() - started >= 2.0 - 3 * speaker._buffer_seconds
