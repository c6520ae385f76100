"""The bots in ``bots/`` run with their documented command lines against the local servers, and
``--play`` reaches a real (virtual PulseAudio) sound card."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audio_device import VirtualAudioDevice, VirtualAudioUnavailable, virtual_audio_device
from media_checks import dominant_frequency

BOTS = Path(__file__).resolve().parent.parent / "bots"
PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]


def local(env: dict[str, str]) -> dict[str, str]:
    """``env`` without ORGA_*/ORBIT_*: the commands start their local servers."""
    return {k: v for k, v in env.items() if not k.startswith(("ORGA_", "ORBIT_"))}


ENV = local(dict(os.environ))


@pytest.fixture(scope="module")
def audio() -> VirtualAudioDevice:
    try:
        with virtual_audio_device() as device:
            yield device
    except VirtualAudioUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def bot(name: str, *args: str, env: dict[str, str] = ENV, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BOTS / name), *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_echo_bot_greets_the_embedded_server_and_hears_the_greeting_back():
    result = bot("echo_bot.py", "--duration", "5")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "connected to the embedded Orga-compatible server" in out
    peaks = [float(p) for p in re.findall(r"heard 1 s of audio, peak +(-?[\d.]+) dBFS", out)]
    assert max(peaks) > -30, out  # the spoken greeting, echoed
    assert "stats: " in out


def test_answering_bot_alone_takes_its_demo_call_on_a_local_server(tmp_path):
    result = bot("answering_bot.py", "--max-calls", "1", "--record-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "answering calls to answering-bot" in out and "peerbot orbit call answering-bot --as you" in out
    assert re.search(r"call call_\w+ from demo-caller: answered", out)
    assert re.search(r"demo-caller heard [\d.]+ s of the bot, peak -\d", out)
    call_id = re.search(r"call (call_\w+): [\d.]+ s, ended", out).group(1)
    assert (tmp_path / f"{call_id}.wav").stat().st_size > 10_000


def test_talk_without_a_sound_card_says_so_and_exits_2():
    result = bot("talk.py", "--duration", "2", "--output", "no-such-speaker")
    assert result.returncode == 2
    assert result.stderr.startswith("audio device problem: no audio output device matches 'no-such-speaker'")


def test_talk_sends_the_microphone_and_plays_the_echo_on_a_virtual_sound_card(audio):
    with audio.play_tone(660):  # what the microphone (the sink's monitor) hears
        result = bot("talk.py", "--input", audio.device, "--output", audio.device, "--duration", "4",
                     env=local(audio.env()))
    assert result.returncode == 0, result.stderr
    assert "connected to the embedded Orga-compatible server" in result.stderr
    assert "Traceback" not in result.stderr


def test_call_play_puts_the_echoed_tone_on_the_speaker(audio):
    proc = subprocess.Popen([*PEERBOT, "call", "--source", "tone:550", "--play", "--speaker-device", audio.device,
                             "--duration", "5"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=local(audio.env()))
    try:
        for line in proc.stdout:
            if "connected in" in line:
                break
        time.sleep(1.5)  # the echo is 0.2 s late; let playback settle
        played = audio.record(1.0)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert abs(dominant_frequency(played, 48000) - 550) < 10
