"""``peerbot load`` for real: worker processes, the embedded server in a process of its own, real
WebRTC media; small runs (4 participants) so the whole file takes seconds."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from peerbot.load import LoadConfig, run


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is not running
        return f.read().split()[2] != "Z"


def _load(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "peerbot.cli.main", "load", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape_until(port: int, proc: subprocess.Popen[str], wanted: str, timeout: float = 30) -> str:
    """``/metrics`` of a running ``peerbot load``, once it shows ``wanted`` (or the run ended)."""
    scraped = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).text
        except httpx.HTTPError:
            pass
        if wanted in scraped:
            break
        time.sleep(0.2)
    return scraped


async def test_load_four_participants_in_two_workers_all_connect_with_full_audio_and_worker_health() -> None:
    result = await run(LoadConfig(participants=4, spawn_rate=10, duration=5, workers=2))
    s = result.summary
    assert result.errors == {} and result.ok
    assert s["connected"] == 4 and s["failed"] == 0
    assert s["audio_coverage_percent_p5"] is not None and s["audio_coverage_percent_p5"] > 90
    for key in ("setup_ms_p50", "setup_ms_p95", "setup_ms_p99", "first_audio_ms_p50", "first_audio_ms_p95",
                "mos_p5", "mos_p50", "loss_percent_p95", "jitter_ms_p50"):
        assert s[key] is not None and s[key] >= 0, key
    assert s["setup_ms_p50"] <= s["first_audio_ms_p50"]  # audio comes after the connection
    assert {p.worker for p in result.participants} == {0, 1}
    assert all(p.state == "ended" and p.call_id for p in result.participants)
    for w in result.workers:  # each worker watched itself, every second
        assert w.pid is not None and w.seconds >= 3 and w.cpu_max_percent > 0 and w.lag_ms is not None
        assert w.died is None and not _alive(w.pid)
    assert result.history and max(sample["participants"] for sample in result.history) == 4
    assert "generator_limited" in s and s["worker_lag_max_ms"] is not None


def test_load_cli_json_failing_assert_exits_1_and_prometheus_serves_the_participants_while_running() -> None:
    port = _free_port()
    proc = _load("-n", "4", "--duration", "3", "--workers", "2", "--json", "--prometheus-port", str(port),
                 "--assert", "setup_p95<=1ms", "--assert", "connected==4")
    scraped = _scrape_until(port, proc, 'peerbot_load_participants{state="connected"} 4.0')
    out, err = proc.communicate(timeout=60)
    assert 'peerbot_load_participants{state="connected"} 4.0' in scraped, scraped[-2000:]
    assert "peerbot_load_setup_seconds_count" in scraped and "peerbot_load_worker_cpu_percent" in scraped
    assert proc.returncode == 1, err
    record = json.loads(out)
    assert record["summary"]["connected"] == 4 and record["errors"] == {}
    verdicts = {t["threshold"]: t["passed"] for t in record["thresholds"]}
    assert verdicts == {"setup_p95<=1ms": False, "connected==4": True}
    assert len(record["participants"]) == 4 and record["exit_status"] == 1


def test_load_bad_server_url_counts_every_failure_by_typed_error_exits_1_and_leaves_nothing_running() -> None:
    proc = _load("-n", "4", "--duration", "5", "--workers", "2", "--json",
                 env={"ORGA_API_KEY": "orga_bad", "ORGA_BASE_URL": "http://127.0.0.1:1", "ORGA_USER_EMAIL": "a@b.c"})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    record = json.loads(out)
    assert record["errors"] == {"OrgaAIServerError": 4}
    assert record["summary"]["failed"] == 4 and record["summary"]["connected"] == 0
    assert all(p["phase"] == "setup" and p["message"] for p in record["participants"])
    assert record["duration_s"] < 5  # every participant failed: the workers did not wait for the end
    assert not any(_alive(w["pid"]) for w in record["workers"])


async def test_load_a_worker_that_dies_is_reported_and_the_run_ends_cleanly() -> None:
    started = time.monotonic()
    result = await run(LoadConfig(participants=2, spawn_rate=10, duration=20, workers=2,
                                  media="load_helpers:DyingMedia",
                                  local=False, api_key="orga_x", base_url="http://127.0.0.1:1"))
    assert time.monotonic() - started < 15
    assert all(w.died == "exit code 3" for w in result.workers)
    assert result.errors == {"WorkerDied": 2} and not result.ok
    assert not any(_alive(w.pid) for w in result.workers)


def test_load_ctrl_c_hangs_everyone_up_and_exits_130() -> None:
    port = _free_port()
    proc = _load("-n", "2", "--duration", "30", "--workers", "1", "--json", "--prometheus-port", str(port))
    assert 'participants{state="connected"} 2.0' in _scrape_until(port, proc, 'participants{state="connected"} 2.0')
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    record = json.loads(out)
    assert record["interrupted"] and record["summary"]["connected"] == 2 and record["errors"] == {}
    assert all(p["state"] == "ended" for p in record["participants"])
    assert not any(_alive(w["pid"]) for w in record["workers"])


@pytest.mark.parametrize("bad", ["nope<=1", "setup_p95<=5kbps", "coverage_p7>=1%"])
def test_load_cli_refuses_a_bad_threshold_with_exit_2(bad: str) -> None:
    from peerbot.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["load", "-n", "2", "--assert", bad])
    assert exc.value.code == 2


async def test_load_orbit_pairs_of_cheap_participants_call_each_other_and_hear_each_other() -> None:
    result = await run(LoadConfig(participants=4, spawn_rate=10, duration=3, workers=2, orbit=True, media="encoded"))
    assert result.errors == {} and result.summary["connected"] == 4
    assert {p.worker for p in result.participants[:2]} == {0} and {p.worker for p in result.participants[2:]} == {1}
    assert result.summary["first_audio_ms_p50"] is not None  # the first RTP packet from the other user
    assert result.summary["audio_coverage_percent_p5"] is not None and result.summary["audio_coverage_percent_p5"] > 90
    assert len({p.call_id for p in result.participants}) == 2  # two calls, each with both ends
