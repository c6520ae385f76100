"""Bad command lines are refused before any request: exit 2, one ``peerbot: error:`` line, nothing connected.

The commands are pointed at a listening socket standing in for Orga and Orbit; after each refusal
the socket's accept queue must be empty: not even a TCP connection was made.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
BASE = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A socket as both services, and the settings that point the commands at it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        yield listener, {**BASE, "ORGA_BASE_URL": url, "ORGA_API_KEY": "orga_test_key",
                         "ORGA_USER_EMAIL": "tester@peerbot.example", "ORBIT_BASE_URL": url,
                         "ORBIT_SECRET_KEY": "sk_test_validation", "ORBIT_CLIENT_ID": "pk_test_validation"}


def connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


BAD = {
    "record to an unsupported container": (["call", "--record", "x.txt"], "cannot record to x.txt"),
    "record into a missing directory": (["orbit", "answer", "--record", "no/such/dir/x.wav"],
                                        "cannot record to no/such/dir/x.wav: there is no directory"),
    "negative duration": (["call", "--duration", "-1"], "argument --duration: must be more than 0 seconds"),
    "zero duration": (["orbit", "call", "bob", "--duration", "0"], "argument --duration: must be more than 0"),
    "ICE server with a bad scheme": (["call", "--ice-server", "http://stun.example:3478"],
                                     "expected a stun:, stuns:, turn: or turns: URI"),
    "TURN without credentials": (["call", "--ice-server", "turn:turn.example:3478"],
                                 "it needs a username and a credential"),
    "ICE server that is not JSON": (["call", "--ice-server", "{urls"], "is not valid JSON"),
    "tone that is not a number": (["call", "--source", "tone:loud"], "--source tone:HZ needs a frequency"),
    "tone above Nyquist": (["orbit", "answer", "--source", "tone:30000"], "--source tone:HZ needs a frequency"),
    "missing source file": (["orbit", "call", "bob", "--source", "missing.wav"], "media file not found"),
    "missing video file": (["call", "--video", "missing.mp4"], "media file not found"),
    "speaker that does not exist": (["call", "--play", "--speaker-device", "no-such-speaker"],
                                    "no audio output device matches 'no-such-speaker'"),
    "microphone that does not exist": (["orbit", "call", "bob", "--source", "mic", "--mic-device", "no-such-mic"],
                                       "no audio input device matches 'no-such-mic'"),
    "unknown option": (["call", "--bogus"], "unrecognized arguments: --bogus"),
    "echo cancellation of a tone": (["call", "--echo-cancellation"],
                                    "--echo-cancellation: only with --source mic"),
    "microphone without --source mic": (["call", "--mic-device", "pulse"], "--mic-device: only with --source mic"),
    "speaker without --play": (["orbit", "call", "bob", "--speaker-device", "0"], "--speaker-device: only with --play"),
    "noise suppression of a file": (["orbit", "answer", "--source", "samples/hello.wav", "--noise-suppression",
                                     "--auto-gain"], "--noise-suppression, --auto-gain: only with --source mic"),
    "benchmark of no sessions": (["bench", "setup", "--sessions", "0"], "argument --sessions: expected a whole number"),
    "negative ring timeout": (["orbit", "answer", "--ring-timeout", "-3"], "argument --ring-timeout: must be more"),
    "record where nothing can be written": (["call", "--record", "/proc/x.wav"], "cannot record to /proc/x.wav"),
    "record to a directory": (["call", "--record", "/tmp/"], "cannot record to /tmp/: it is a directory"),
    "source that is a device": (["call", "--source", "/dev/zero"], "/dev/zero is not a media file"),
    "source that is a directory": (["orbit", "answer", "--source", "/tmp"], "/tmp is a directory, not a media file"),
    "orbit call to nobody": (["orbit", "call", ""], "USER must name whom to call"),
    "report where nothing can be written": (["call", "--report", "/proc/x"], "cannot write in '/proc'"),
    "report into a missing directory": (["orbit", "answer", "--report", "/nonexistent/dir/x"],
                                        "'/nonexistent/dir' is not an existing directory"),
    "report with an empty stem": (["call", "--report", ""], "argument --report: needs a file name stem"),
    "report stem that is a directory": (["orbit", "call", "bob", "--report", "/tmp/"], "needs a file name stem"),
    "assert an impossible percentage": (["call", "--assert", "loss<=150%"], "loss_percent is from 0 to 100"),
    "assert an infinite value": (["call", "--assert", "jitter==1e999ms"], "must be a finite number"),
    "assert a negative time": (["orbit", "answer", "--assert", "rtt_p95<=-1ms"], "rtt_ms is at least 0"),
    "bench of a negative duration": (["bench", "quality", "--duration", "-1"], "argument --duration: must be more"),
    "bench of no duration": (["bench", "quality", "--duration", "0"], "argument --duration: must be more"),
    "bench of a NaN duration": (["bench", "quality", "--duration", "nan"], "argument --duration: must be more"),
}


@pytest.mark.parametrize("argv, message", BAD.values(), ids=BAD.keys())
def test_bad_option_is_one_error_line_and_exit_2_before_any_connection(service, argv, message):
    listener, env = service
    result = subprocess.run([*PEERBOT, *argv], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("peerbot: error: ") and message in lines[0], result.stderr
    assert connections(listener) == 0


def test_play_without_a_speaker_fails_like_mic_without_a_microphone(service):
    """Both device checks happen before connecting and give the same kind of error."""
    listener, env = service
    results = [subprocess.run([*PEERBOT, "call", *argv], capture_output=True, text=True, timeout=30, env=env)
               for argv in (["--play", "--speaker-device", "99"], ["--source", "mic", "--mic-device", "99"])]
    assert [r.returncode for r in results] == [2, 2]
    assert all(r.stderr.startswith("peerbot: error: no audio") for r in results), [r.stderr for r in results]
    assert connections(listener) == 0


def test_secrets_in_a_bad_ice_server_are_not_echoed(service):
    listener, env = service
    result = subprocess.run([*PEERBOT, "call", "--ice-server", '{"urls": "http://x", "credential": "hunter2-secret"}'],
                            capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2
    assert "hunter2-secret" not in result.stderr


def test_orga_key_without_user_email_is_one_error_line_before_any_connection(service):
    listener, env = service
    env = {k: v for k, v in env.items() if k != "ORGA_USER_EMAIL"}
    result = subprocess.run([*PEERBOT, "call"], capture_output=True, text=True, timeout=30, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("peerbot: error: ") and "ORGA_USER_EMAIL" in lines[0]
    assert connections(listener) == 0
