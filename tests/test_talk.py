"""``peerbot talk``: its parts on a fake clock, then the command on a PulseAudio room against the
embedded server, in a real terminal (a pty) for the keys and Ctrl-C."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import subprocess
import sys
import termios
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from peerbot.cli.main import main
from peerbot.cli.talk import Controls, LevelMeter, StereoRecording

from audio_device import ROOM, VirtualAudioUnavailable, virtual_audio_device
from media_checks import dominant_frequency, rms

RATE = 48000


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def read_stereo(path: Path) -> np.ndarray:
    with wave.open(str(path)) as recorded:
        assert (recorded.getnchannels(), recorded.getframerate()) == (2, RATE)
        return np.frombuffer(recorded.readframes(recorded.getnframes()), "<i2").reshape(-1, 2)


# --- the parts -------------------------------------------------------------------------


def test_stereo_recording_puts_both_sides_on_one_clock_and_pads_a_silent_side(tmp_path):
    clock = FakeClock()
    recording = StereoRecording(tmp_path / "talk.wav", clock=clock)
    block = RATE // 50
    for i in range(100):  # 2 s: you talk all along, the assistant only in the second second
        clock.now += 0.02
        recording.add(0, np.full(block, 1000, np.int16))
        if i >= 50:
            recording.add(1, np.full(block, -2000, np.int16))
    recording.close()
    both = read_stereo(tmp_path / "talk.wav")
    assert len(both) == 2 * RATE
    assert np.all(both[:, 0] == 1000)
    assert np.all(both[: RATE - block, 1] == 0) and np.all(both[RATE:, 1] == -2000)
    assert recording.seconds == 2.0


def test_push_to_talk_sends_while_space_repeats_and_mute_wins():
    clock = FakeClock()
    controls = Controls(clock=clock)
    assert controls.sending and controls.state() == "live"
    controls.key("p")
    assert not controls.sending and controls.state() == "hold space to talk"
    controls.key(" ")  # the first press holds past the keyboard's repeat delay
    clock.now += 0.5
    assert controls.sending and controls.state() == "talking"
    for _ in range(10):  # then the repeats keep it open
        controls.key(" ")
        clock.now += 0.05
    assert controls.sending
    clock.now += 0.2  # space released: no more repeats
    assert not controls.sending
    controls.key(" ")
    controls.key("m")
    assert not controls.sending and controls.state() == "MUTED (m)"
    controls.key("m")
    controls.key("p")
    assert controls.sending
    controls.key("q")
    assert controls.quit


def test_level_meter_shows_the_level_and_falls_back_at_20db_per_second():
    clock = FakeClock()
    meter = LevelMeter(clock=clock)
    assert meter.db == -60 and meter.bar(10) == "░" * 10
    meter.add(np.full((1, 960), 3277, np.int16), RATE)  # -20 dBFS
    assert meter.db == pytest.approx(-20, abs=0.1) and meter.bar(10) == "█" * 7 + "░" * 3
    clock.now += 1.0
    assert meter.db == pytest.approx(-40, abs=0.1)
    assert meter.seconds == pytest.approx(0.02)


def test_talk_push_to_talk_without_a_terminal_and_a_non_wav_recording_are_usage_errors(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    assert main(["talk", "--push-to-talk"]) == 2
    assert "--push-to-talk needs a terminal" in capsys.readouterr().err
    assert main(["talk", "--record", "talk.ogg"]) == 2
    assert "stereo .wav" in capsys.readouterr().err
    assert main(["talk", "--no-echo-cancellation", "--stream-delay", "50"]) == 2
    assert "--stream-delay" in capsys.readouterr().err


@pytest.mark.parametrize("delay", ["-5", "501", "1.5", "²"])
def test_talk_refuses_a_stream_delay_out_of_range_naming_the_option(delay, capsys):
    # It was refused by AudioProcessing, as "stream_delay_ms", after the devices were opened.
    with pytest.raises(SystemExit) as exited:  # argparse's usage error
        main(["talk", "--stream-delay", delay])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --stream-delay: expected whole milliseconds from 0 to 500" in err and "stream_delay_ms" not in err


def test_talk_takes_a_device_spec_that_is_not_an_ascii_number_as_a_name():
    from peerbot.cli.talk import _device

    assert _device("3") == 3 and _device("²") == "²"  # "²" was an "unexpected ValueError"


def test_talk_without_livekit_says_pip_install_peerbot_desktop():
    code = ("import sys; sys.modules['livekit'] = None\n"
            "from peerbot.cli.main import main; sys.exit(main(['talk', '--local']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 2, result.stderr
    assert "pip install 'peerbot[desktop]'" in result.stderr


# --- the command on a real (virtual) sound card ----------------------------------------


@pytest.fixture(scope="module")
def audio():
    try:
        with virtual_audio_device() as device, device.echo_path(delay_ms=40, gain=0.5):
            yield device
    except VirtualAudioUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


def test_talk_records_you_on_the_left_and_the_assistant_on_the_right(audio, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())  # no terminal: no keys
    path = tmp_path / "talk.wav"
    with audio.play_tone(1000, seconds=10, amplitude=0.15, sink=ROOM):  # you, talking into the room
        status = main(["talk", "-i", audio.device, "-o", audio.device, "--local", "--duration", "3",
                       "--record", str(path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "echo cancellation, noise suppression, auto gain" in out
    assert "hung up after --duration 3 s" in out and "(stereo: left you, right the assistant)" in out
    both = read_stereo(path)
    assert len(both) >= 2.5 * RATE
    you, assistant = both[RATE // 2 :, 0], both[RATE:, 1]  # the embedded server plays you back 0.2 s later
    print(f"recording: you rms {rms(you):.0f}, assistant rms {rms(assistant):.0f}")
    assert dominant_frequency(you, RATE) == pytest.approx(1000, abs=3) and rms(you) > 300
    assert dominant_frequency(assistant, RATE) == pytest.approx(1000, abs=3) and rms(assistant) > 300


def test_talk_with_a_device_unplugged_mid_call_says_so_and_goes_on(audio, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    path = tmp_path / "talk.wav"
    unplugged = []

    def unplug_after_a_second() -> None:
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:  # the recording starts once connected
            time.sleep(0.05)
        time.sleep(1.5)  # talking by then
        unplugged.append(audio.unplug("source-output") + audio.unplug("sink-input"))

    with audio.play_tone(1000, seconds=10, amplitude=0.15, sink=ROOM):
        threading.Thread(target=unplug_after_a_second, daemon=True).start()
        status = main(["talk", "-i", audio.device, "-o", audio.device, "--local", "--duration", "5",
                       "--record", str(path)])
    out = capsys.readouterr().out
    assert unplugged == [2]
    assert status == 0, out
    assert "audio input device 'pulse' stopped delivering audio (unplugged?); sending silence; the call goes on" in out
    assert "audio output device 'pulse' stopped playing" in out
    assert "hung up after --duration 5 s" in out
    you = read_stereo(path)[:, 0]
    assert rms(you[: RATE]) > 300 and rms(you[-RATE:]) == 0  # talking, then the silence of a lost microphone


def test_call_with_the_microphone_cancels_the_echo_of_what_play_plays_when_asked(audio, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO())
    with audio.play_tone(1000, seconds=10, amplitude=0.15, sink=ROOM):
        status = main(["call", "--local", "--source", "mic", "--mic-device", audio.device, "--echo-cancellation",
                       "--play", "--speaker-device", audio.device, "--duration", "3"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "sending audio: mic (echo cancellation)" in out
    reference = re.search(r"echo canceller: ([0-9.]+) s of the speaker as reference, stream delay (\d+) ms", out)
    assert reference is not None, out
    assert float(reference[1]) >= 1.5  # the speaker's playback reached the canceller as its reference


class Terminal:
    """``peerbot talk`` in a pseudo-terminal: keys as typed, Ctrl-C as the terminal sends it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen([sys.executable, "-m", "peerbot.cli.main", "talk", *args], stdin=slave,
                                        stdout=slave, stderr=slave, env=env, start_new_session=True,
                                        preexec_fn=_controlling_terminal)
        os.close(slave)
        self.output = ""

    def expect(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never came; the terminal showed:\n{self.output}")
            self._read(0.2)

    def type(self, keys: bytes) -> None:
        os.write(self._master, keys)

    def finish(self, timeout: float = 15) -> int:
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(0.1)
        status = self.process.wait(timeout=1)
        self._read(0.1)  # what it wrote last
        os.close(self._master)
        return status

    def _read(self, timeout: float) -> None:
        if select.select([self._master], [], [], timeout)[0]:
            try:
                self.output += os.read(self._master, 65536).decode(errors="replace")
            except OSError:  # the process ended and the terminal closed
                time.sleep(timeout)


def _controlling_terminal() -> None:
    # In the child, after setsid(): stdin, the pty, becomes its terminal, so Ctrl-C there is SIGINT.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def talk_in_terminal(audio, *args: str) -> Terminal:
    env = {**audio.env(), "COLUMNS": "160", "TERM": "xterm"}
    env.pop("ORGA_API_KEY", None)
    return Terminal(["-i", audio.device, "-o", audio.device, "--local", *args], env)


def test_talk_in_a_terminal_mutes_with_m_and_hangs_up_with_q(audio):
    with audio.play_tone(1000, seconds=15, amplitude=0.15, sink=ROOM):
        terminal = talk_in_terminal(audio, "--duration", "20")
        try:
            terminal.expect("keys: m mute")
            terminal.expect(" live ")
            time.sleep(0.5)
            terminal.type(b"m")
            terminal.expect("MUTED (m)")
            time.sleep(1.0)
            terminal.type(b"q")
            terminal.expect("Call ended")
            status = terminal.finish()
        finally:
            terminal.process.kill()
    assert status == 0, terminal.output
    assert "hung up (q)" in terminal.output
    muted = terminal.output.split("s of it muted")[0].rsplit("(", 1)[1]
    assert float(muted.split()[0]) >= 0.8


def test_talk_in_a_terminal_hangs_up_cleanly_on_ctrl_c_with_exit_130(audio):
    terminal = talk_in_terminal(audio)
    try:
        terminal.expect("Connected: start talking")
        time.sleep(0.5)
        terminal.type(b"\x03")  # the terminal turns it into SIGINT
        status = terminal.finish()
    finally:
        terminal.process.kill()
    assert status == 130, terminal.output
    assert "hung up (interrupted)" in terminal.output
    assert "Traceback" not in terminal.output
