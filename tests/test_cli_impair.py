"""``--impair`` on the calling commands: the conditions reach the call's datagrams, and a bad spec is
refused as bad usage before anything starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}  # local servers


def run_call(*options: str) -> dict:
    result = subprocess.run([*PEERBOT, "call", "--local", "--duration", "4", "--json", *options],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_impair_loss_and_delay_show_in_the_calls_own_figures():
    summary = run_call("--impair", "loss=10%,delay=60ms,seed=7")
    print(f"\nloss {summary['loss_percent']} %, RTT {summary['rtt_ms']} ms")
    assert 4 <= summary["loss_percent"] <= 18  # 10 % of ~200 packets, seeded
    assert 100 <= summary["rtt_ms"] <= 160  # 60 ms each way on loopback


def test_impair_in_alone_leaves_what_we_send_untouched():
    summary = run_call("--impair-in", "delay=80ms")
    assert summary["loss_percent"] == 0
    assert 60 <= summary["rtt_ms"] <= 130  # only the way back is delayed


@pytest.mark.parametrize("spec", ["loss=500%", "delay=-5ms", "speed=fast", "rate=fast"])
def test_a_bad_impair_spec_is_bad_usage_before_any_request(spec):
    result = subprocess.run([*PEERBOT, "call", "--local", "--impair", spec], capture_output=True, text=True,
                            timeout=30, env=ENV)
    assert result.returncode == 2
    assert result.stderr.startswith("peerbot: error: argument --impair:")
    assert "Traceback" not in result.stderr
