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


class _FakeSession:
    """What ``bench quality`` reads of a session: a last interval's MOS of 1.0 after seconds of 4.0 and 4.4."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        return None

    async def audio_frames(self):
        return
        yield

    def stats(self):
        from types import SimpleNamespace

        return SimpleNamespace(to_metrics=lambda: {"t": 3.0, "mos": 1.0, "audio_coverage_percent": 100.0})

    def stats_history(self):
        return [{"t": 1.0, "mos": 4.0}, {"t": 2.0, "mos": None}, {"t": 3.0, "mos": 4.4}]


def test_bench_quality_mos_is_the_whole_calls_mean_of_its_seconds_not_the_last_interval(monkeypatch):
    import asyncio

    from peerbot import orga
    from peerbot.cli import bench

    monkeypatch.setattr(orga, "connect", lambda *a, **k: _FakeSession())
    figures = asyncio.run(bench._one_call("http://unused", "key", 0.01))
    assert abs(figures["mos"] - 4.2) < 1e-9


def test_bench_quality_exits_1_and_says_why_when_a_session_failed(monkeypatch, capsys):
    import asyncio
    import contextlib

    from peerbot.cli import bench

    calls = iter([None, RuntimeError("the server refused")])

    async def one_call(*args):
        error = next(calls)
        if error:
            raise error
        return {"mos": 4.4}

    @contextlib.asynccontextmanager
    async def no_server():
        yield "http://unused", "key"

    monkeypatch.setattr(bench, "_one_call", one_call)
    monkeypatch.setattr(bench, "_server_process", no_server)
    assert asyncio.run(bench._quality([2], 0.01)) == 1
    out = capsys.readouterr().out
    assert "(1 failed)" in out and "the server refused" in out
