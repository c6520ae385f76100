"""The ``peerbot`` command line, run as a user would: a subprocess against the embedded server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import av

from conftest import SAMPLES

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("ORGA_")}  # force the embedded server


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PEERBOT, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def test_call_with_sample_files_prints_transcripts_counts_and_records(tmp_path):
    record = tmp_path / "call.wav"
    result = run("call", "--source", str(SAMPLES / "hello.wav"), "--video", f"{SAMPLES / 'pattern.mp4'}:loop",
                 "--duration", "7", "--transcripts", "--record", str(record))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "embedded Orga-compatible server" in out
    assert "you: (" in out and "assistant: echo:" in out
    assert "hung up after --duration 7 s" in out
    video_frames = int(out.split("video frames received ")[1].split(",")[0])
    assert video_frames > 50
    with av.open(str(record)) as container:
        assert container.duration / 1e6 > 6


def test_ctrl_c_hangs_up_cleanly_with_a_summary_and_exit_130():
    proc = subprocess.Popen([*PEERBOT, "call", "--source", "tone"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 30
    line = ""
    while "connected in" not in line and time.monotonic() < deadline:
        line = proc.stdout.readline()
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert "hung up (interrupted)" in out and "received:" in out
    assert "Traceback" not in err


def test_missing_source_file_is_a_one_line_error_without_traceback(tmp_path):
    result = run("call", "--source", str(tmp_path / "missing.wav"), "--duration", "1")
    assert result.returncode == 2
    assert "media file not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_prints_where_it_listens_and_stops_on_sigterm():
    proc = subprocess.Popen([*PEERBOT, "serve", "--port", "0"], stdout=subprocess.PIPE, text=True, env=ENV)
    first = proc.stdout.readline()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert first.startswith("Orga-compatible server on http://127.0.0.1:")
    assert proc.returncode == 0
