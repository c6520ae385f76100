"""``--latency-probe`` and what ``--json``/``--report`` say about a call's quality: the latency measured
through the echoing local far sides, thresholds and report paths in the JSON object, the quality line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}  # local servers


def test_call_latency_probe_measures_the_embedded_servers_echo_into_summary_history_threshold_and_plot(tmp_path):
    stem = tmp_path / "latency"
    result = subprocess.run([*PEERBOT, "call", "--latency-probe", "--duration", "4", "--json",
                             "--assert", "latency<=1000ms", "--report", str(stem)],
                            capture_output=True, text=True, timeout=90, env=ENV)
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 200 <= summary["latency_ms"] <= 400  # the embedded server echoes after 0.2 s
    assert summary["latency_p95_ms"] >= summary["latency_ms"] and summary["latency_markers_lost"] == 0
    [threshold] = summary["thresholds"]
    assert threshold["passed"] and 200 <= threshold["measured"] <= 400
    assert summary["report"] == {"json": f"{stem}.json", "html": f"{stem}.html"}
    report = json.loads(stem.with_suffix(".json").read_text())
    per_second = [s["latency_ms"] for s in report["history"]]
    assert sum(v is not None for v in per_second) >= 3  # a marker a second, each in its second
    assert all(200 <= v <= 400 for v in per_second if v is not None)
    assert report["meta"]["codecs"] == {"received": ["audio/opus"]}
    assert "Latency (mouth to ear)" in stem.with_suffix(".html").read_text()
    quality = next(line for line in result.stderr.splitlines() if "quality:" in line)
    assert "loss 0.0 %" in quality and "MOS" in quality and "RTT" in quality and "latency" in quality


def test_orbit_answer_latency_probe_includes_the_demo_users_playback_delay():
    result = subprocess.run([*PEERBOT, "orbit", "answer", "--latency-probe", "--duration", "4", "--json"],
                            capture_output=True, text=True, timeout=90, env=ENV)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert 300 <= summary["latency_ms"] <= 550, summary  # the demo user plays back 0.3 s late
    assert "quality:" in result.stderr and "coverage" in result.stderr


def test_json_with_a_failing_assert_says_which_threshold_failed_and_by_how_much():
    result = subprocess.run([*PEERBOT, "call", "--duration", "2", "--json", "--assert", "mos>=4.9",
                             "--assert", "loss<=50%"], capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_status"] == 1 and summary["report"] is None
    failed, passed = summary["thresholds"]
    assert failed["threshold"] == "mos>=4.9" and failed["passed"] is False and failed["measured"] < 4.9
    assert "under" in failed["message"] and passed["passed"] is True
    assert summary["latency_ms"] is None and summary["latency_markers_lost"] is None  # no probe: not measured
