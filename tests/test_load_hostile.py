"""``peerbot load`` under hostile use: signals to the whole process group, a worker signalled
alone, a media mode that breaks, participants that never connect within the run, and bad
``--report`` / ``--prometheus-port`` / ``--media`` / ``--spawn-rate`` refused before anything starts."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import pytest

from peerbot.errors import ConfigurationError
from peerbot.load import LoadConfig, LoadRunner, run


class SessionOptionsRaise:
    """A media mode whose every participant fails before its session exists (a plug-in's bug)."""

    name = "raising"

    def __init__(self, config: Any) -> None:
        pass

    def sources(self) -> tuple[Any, Any]:
        return None, None

    def session_options(self) -> dict[str, Any]:
        raise RuntimeError("broken plug-in")

    async def receive(self, session: Any, first_audio: Any) -> None:
        pass


def _load(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "peerbot.cli.main", "load", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # a process group of its own


def _workers(pid: int) -> list[int]:
    """The worker processes of the ``peerbot load`` process ``pid`` (its multiprocessing children)."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rpartition(")")[2].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"spawn_main" in cmdline:
            out.append(int(entry))
    return sorted(out)


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def _wait_for(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


async def test_load_a_media_mode_failing_for_every_participant_is_a_typed_failure_not_exit_0() -> None:
    result = await run(LoadConfig(participants=2, spawn_rate=10, duration=3, workers=1,
                                  media="test_load_hostile:SessionOptionsRaise"))
    assert result.errors == {"RuntimeError": 2} and not result.ok
    assert all(p.state == "failed" and p.phase == "setup" for p in result.participants)


def test_load_participants_never_started_or_still_connecting_at_the_end_are_failures() -> None:
    runner = LoadRunner(LoadConfig(participants=3, spawn_rate=10, duration=3, workers=1))
    runner.state.participants[0].state, runner.state.participants[0].setup_ms = "ended", 50.0
    runner.state.participants[1].state = "connecting"
    runner._settle()
    assert dict(runner.state.errors) == {"SetupTimeout": 1, "NotStarted": 1}
    assert [p.state for p in runner.state.participants] == ["ended", "failed", "failed"]


def test_load_result_is_not_ok_when_a_participant_never_connected() -> None:
    from peerbot.load import LoadResult
    from peerbot.load.summary import ParticipantRecord

    config = LoadConfig(participants=1, spawn_rate=10, duration=3, workers=1)
    result = LoadResult(config, "t", 0.0, 1.0, {}, {}, [ParticipantRecord(0, 0)], [], interrupted=True)
    assert not result.ok


def test_load_sigterm_to_the_whole_process_group_hangs_everyone_up_and_exits_143() -> None:
    proc = _load("-n", "4", "--duration", "30", "--workers", "2", "--json")
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2)
        time.sleep(6)  # connected and holding
        os.killpg(proc.pid, signal.SIGTERM)  # as timeout(1) or a service manager does
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    record = json.loads(out)
    assert record["errors"] == {} and record["summary"]["connected"] == 4, record["errors"]
    assert all(w["died"] is None for w in record["workers"])
    assert all(p["state"] == "ended" and p["duration_s"] for p in record["participants"])
    assert not any(_alive(w["pid"]) for w in record["workers"])


def test_load_ctrl_c_to_the_group_while_the_workers_import_is_130_and_kills_no_worker() -> None:
    proc = _load("-n", "4", "--duration", "30", "--workers", "2", "--json")
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2, timeout=30)
        os.killpg(proc.pid, signal.SIGINT)  # the terminal's Ctrl-C reaches every process of the group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    record = json.loads(out)
    assert record["errors"] == {} and all(w["died"] is None for w in record["workers"]), record["workers"]
    assert "Traceback" not in err


def test_load_a_worker_terminated_alone_fails_its_participants_and_exits_1() -> None:
    proc = _load("-n", "4", "--duration", "10", "--workers", "2", "--json")
    try:
        _wait_for(lambda: len(_workers(proc.pid)) == 2)
        time.sleep(5)
        os.kill(_workers(proc.pid)[0], signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, err
    record = json.loads(out)
    assert record["errors"] == {"WorkerTerminated": 2}, record["errors"]
    assert sorted(p["state"] for p in record["participants"]) == ["ended", "ended", "failed", "failed"]


def _main_exit(*args: str) -> int:
    from peerbot.cli.main import main

    try:
        return main(["load", *args])
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize("stem", ["/proc/x", "/no/such/dir/x", "./", "", "made.csv"])
def test_load_cli_refuses_a_report_it_could_not_write_with_exit_2_before_the_run(stem: str, tmp_path,
                                                                                 monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "made.csv").mkdir()
    assert _main_exit("-n", "1", "--duration", "2", "--report", stem) == 2
    assert "--report" in capsys.readouterr().err
    assert not (tmp_path / "no").exists() and not os.path.exists("/no")


def test_load_prometheus_port_taken_is_exit_2_before_any_process_starts(capsys) -> None:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        port = sock.getsockname()[1]
        started = time.monotonic()
        assert _main_exit("-n", "1", "--duration", "5", "--prometheus-port", str(port)) == 2
    assert time.monotonic() - started < 5
    assert f"port {port}" in capsys.readouterr().err


@pytest.mark.parametrize(("media", "words"), [(":", "module:attribute"), ("os:getcwd", "cannot be made"),
                                              ("builtins:str", "not a MediaMode")])
def test_load_a_media_mode_that_cannot_be_made_is_a_configuration_error(media: str, words: str, capsys) -> None:
    with pytest.raises(ConfigurationError, match=words):
        LoadRunner(LoadConfig(participants=1, spawn_rate=10, duration=2, workers=1, media=media))
    assert _main_exit("-n", "1", "--duration", "2", "--media", media) == 2


def test_load_cli_spawn_rate_error_speaks_of_participants_per_second(capsys) -> None:
    assert _main_exit("-n", "1", "--spawn-rate", "0") == 2
    err = capsys.readouterr().err
    assert "participants per second" in err and "seconds, got" not in err
