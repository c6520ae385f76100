"""What the command line prints for people and for scripts: --version, --json, the live status
line in an 80-column terminal, and unexpected errors without a traceback unless asked for."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import peerbot

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}  # local servers
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def test_version_prints_the_package_version():
    result = subprocess.run([*PEERBOT, "--version"], capture_output=True, text=True, timeout=30, env=ENV)
    assert result.returncode == 0
    assert result.stdout.strip() == f"peerbot {peerbot.__version__}"


def test_call_json_is_one_object_on_stdout_with_the_summary_and_humans_read_stderr(tmp_path):
    record = tmp_path / "call.wav"
    result = subprocess.run([*PEERBOT, "call", "--duration", "3", "--json", "--record", str(record)],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # the whole of stdout is the object: `| jq` works
    assert summary["command"] == "call" and summary["exit_status"] == 0
    assert summary["end_reason"] == "hung up after --duration 3 s"
    assert summary["call_id"].startswith("conv_") and summary["recording"] == str(record)
    assert 2.9 < summary["duration_s"] < 4
    assert summary["packets_sent"] > 100 and summary["packets_received"] > 100
    assert summary["audio_seconds_received"] > 2 and summary["audio_frames_received"] > 100
    assert summary["video_frames_received"] == 0  # Orga sends no video
    assert summary["mos"] > 3 and summary["rtt_ms"] is not None and summary["loss_percent"] < 5
    # Transport bytes: at least the RTP headers of the packets counted, both ways.
    assert summary["bytes_sent"] > 12 * summary["packets_sent"]
    assert summary["bytes_received"] > 12 * summary["packets_received"]
    assert summary["reconnects"] == 0 and summary["outage_seconds"] == 0
    assert "reconnects: none" in result.stderr
    assert "Call ended after" in result.stderr and "Call ended" not in result.stdout


def test_orbit_answer_json_names_the_call_and_counts_what_was_received():
    result = subprocess.run([*PEERBOT, "orbit", "answer", "--duration", "3", "--json"],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["command"] == "orbit answer" and summary["call_id"].startswith("call_")
    assert summary["audio_seconds_received"] > 2
    assert f"call {summary['call_id']} (voice) with demo-caller" in result.stderr


def test_help_documents_every_json_field():
    result = subprocess.run([*PEERBOT, "orbit", "call", "--help"], capture_output=True, text=True, timeout=30, env=ENV)
    fields = ("command", "exit_status", "end_reason", "call_id", "duration_s", "packets_sent", "bytes_sent",
              "bytes_received", "reconnects", "outage_seconds", "audio_seconds_received", "video_frames_received", "loss_percent", "jitter_ms", "rtt_ms", "mos",
              "recording")
    assert all(name in result.stdout for name in fields)


def test_live_status_line_fits_an_80_column_terminal_with_rtt_and_audio_in():
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([*PEERBOT, "call", "--duration", "3"], stdin=terminal, stdout=terminal, stderr=terminal,
                            env={**ENV, "COLUMNS": "80", "LINES": "24", "TERM": "xterm-256color"})
    os.close(terminal)
    chunks = []
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the process closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(controller)
    screen = ANSI.sub("", b"".join(chunks).decode(errors="replace"))
    assert proc.wait(timeout=30) == 0, screen
    status = [line for line in re.split(r"[\r\n]", screen) if "│" in line]
    print("\n" + "\n".join(sorted(set(status))[-3:]))
    assert status, screen
    assert max(len(line) for line in status) <= 80
    assert all("RTT " in line and "audio in " in line for line in status)


def test_unexpected_error_is_one_line_without_traceback_unless_debug():
    # A command that crashes with an error peerbot does not know: `devices` made to raise.
    crash = ("import sys; from peerbot.cli import devices, main;"
             " devices.run = lambda args: {}['no such key'];"
             " sys.exit(main.main(['devices']))")
    plain = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=30, env=ENV)
    debug = subprocess.run([sys.executable, "-c", crash], capture_output=True, text=True, timeout=30,
                           env={**ENV, "PEERBOT_DEBUG": "1"})
    assert plain.returncode == 1
    assert plain.stderr.splitlines() == [
        "peerbot: error: unexpected KeyError: 'no such key' (run with --debug for the traceback)"]
    assert debug.returncode == 1 and "Traceback (most recent call last)" in debug.stderr


def test_end_summary_without_a_terminal_has_a_quality_line_with_loss_jitter_rtt_mos_and_coverage():
    from peerbot.cli.summary import CallSummary

    summary = CallSummary("call", exit_status=0, end_reason="", loss_percent=0.0, jitter_ms=1.23, rtt_ms=3.4,
                          mos=4.41, audio_coverage_percent=99.6)
    assert summary.quality() == "quality:  loss 0.0 %, jitter 1.2 ms, RTT 3 ms, MOS 4.4, coverage 100 %"
    summary.latency_ms, summary.latency_p95_ms, summary.latency_markers_lost = 251.0, 262.0, 1
    assert summary.quality().endswith(", latency 251 ms (p95 262 ms, 1 markers lost)")
    assert CallSummary("call", exit_status=1, end_reason="").quality().startswith("quality:  loss –, jitter –")
