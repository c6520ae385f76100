"""``peerbot bench quality`` prints what simultaneous calls receive, from the calls' own W3C figures."""

from __future__ import annotations

import os
import re
import subprocess
import sys

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}


def test_bench_quality_prints_full_coverage_and_50_frames_a_second_for_one_unhurried_call():
    result = subprocess.run([*PEERBOT, "bench", "quality", "--sessions", "1", "--duration", "3"],
                            capture_output=True, text=True, timeout=90, env=ENV)
    print(result.stdout)
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if re.match(r"\s+1\s", line))
    medians = [float(m) for m in re.findall(r"(-?[\d.]+) \[", row)]
    coverage, concealed, frames, mos = medians[:4]
    assert coverage >= 90 and concealed <= 10  # one call on an idle loop gets its audio in time
    assert 45 <= frames <= 51  # 20 ms Opus frames
    assert mos >= 4.0


def test_bench_quality_refuses_a_round_of_no_sessions():
    result = subprocess.run([*PEERBOT, "bench", "quality", "--sessions", "1,0"], capture_output=True, text=True,
                            timeout=30, env=ENV)
    assert result.returncode == 2 and "expected a whole number of at least 1" in result.stderr
