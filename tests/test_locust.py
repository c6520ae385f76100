"""``peerbot.locust``: Locust runs peerbot participants, a headless master with two workers.

Locust runs only in subprocesses here: importing it monkey-patches ``socket``/``selectors`` with
gevent, which would break this process's own asyncio. The embedded server runs in its own process
(as ``peerbot bench`` starts it). Every process a test starts carries a tag in its environment,
so the test can see which peerbot host processes ran and prove that none outlived the run.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCUST = ROOT / ".venv" / "bin" / "locust"
LOCUSTFILE = ROOT / "samples" / "locustfile.py"
TAG = "PEERBOT_LOCUST_TEST_TAG"
HOST_MODULE = b"peerbot.locust._host"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tagged(tag: str) -> dict[int, tuple[int, bytes]]:
    """Live processes whose environment holds the tag: pid → (parent pid, command line)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if f"{TAG}={tag}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            if stat.rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie has ended; its parent reaps it
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            found[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes())
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def _stats(prefix: Path) -> dict[tuple[str, str], dict[str, str]]:
    with open(f"{prefix}_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def _rows(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def tag() -> Iterator[str]:
    tag = uuid.uuid4().hex
    yield tag
    deadline = time.monotonic() + 10
    while _tagged(tag) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _tagged(tag)
    for pid in left:  # not to leave them to the next test; the assertion below still fails
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    assert not left, f"processes left running after the test: {left}"


@pytest.fixture
def orga_env(tag: str) -> Iterator[dict[str, str]]:
    """The embedded Orga server in its own process; the environment a Locust process gets for it."""
    key = "orga_locust_" + uuid.uuid4().hex[:12]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}
    env.update({TAG: tag, "PYTHONUNBUFFERED": "1"})
    server = subprocess.Popen([sys.executable, "-m", "peerbot.cli.main", "serve", "--port", "0", "--api-key", key],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    assert server.stdout is not None
    try:
        exports: dict[str, str] = {}
        for line in server.stdout:
            if line.startswith("export "):
                exports = dict(part.split("=", 1) for part in shlex.split(line)[1:])
                break
        assert exports.get("ORGA_BASE_URL"), "the embedded server did not start"
        yield {**env, **exports, "ORGA_API_KEY": key}
    finally:
        server.terminate()
        server.wait(10)


def _locust(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(LOCUST), "-f", str(LOCUSTFILE), *args], env=env, cwd=log.parent,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(*procs: subprocess.Popen[bytes]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_headless_master_with_two_workers_reports_connects_calls_and_media_figures_then_leaves_no_process(
        tmp_path: Path, orga_env: dict[str, str], tag: str) -> None:
    port = _free_port()
    env = {**orga_env, "CALL_SECONDS": "3"}
    prefix = tmp_path / "run"
    master = _locust("--headless", "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                     "--expect-workers", "2", "--expect-workers-max-wait", "40", "-u", "4", "-r", "4",
                     "--run-time", "12s", "--host", env["ORGA_BASE_URL"], "--csv", str(prefix), "--only-summary",
                     env=env, log=tmp_path / "master.log")
    workers = [_locust("--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                       env=env, log=tmp_path / f"worker{i}.log") for i in range(2)]
    hosts: dict[int, int] = {}  # host pid → its parent's pid
    try:
        deadline = time.monotonic() + 55
        while master.poll() is None and time.monotonic() < deadline:
            hosts.update({pid: ppid for pid, (ppid, cmd) in _tagged(tag).items() if HOST_MODULE in cmd})
            time.sleep(0.5)
        assert master.wait(5) == 0, (tmp_path / "master.log").read_text()[-3000:]
        for worker in workers:
            worker.wait(20)  # the master told them to quit
    finally:
        _stop(master, *workers)
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(tmp_path.glob("*.log")))

    # One clean peerbot host per worker process, none in the master.
    assert sorted(hosts.values()) == sorted(w.pid for w in workers), (hosts, logs)

    stats = _stats(prefix)
    connect, call = stats[("WebRTC", "connect")], stats[("WebRTC", "call")]
    assert int(connect["Request Count"]) >= 4 and int(connect["Failure Count"]) == 0, (connect, logs)
    assert 0 < float(connect["Average Response Time"]) < 5000, connect
    assert int(call["Request Count"]) >= 4 and int(call["Failure Count"]) == 0, (call, logs)
    assert 3000 <= float(call["Min Response Time"]) < 8000, call  # a 3 s hold, with set-up and hang-up
    first = stats[("WebRTC", "first audio")]
    assert int(first["Failure Count"]) == 0 and int(first["Request Count"]) == int(call["Request Count"]), first

    calls = int(call["Request Count"])
    media = {name: stats[("media", name)] for name in
             ("audio_coverage_percent", "loss_percent", "jitter_ms", "rtt_ms", "mos")}
    for name, row in media.items():  # one figure per completed call
        assert int(row["Request Count"]) == calls and int(row["Failure Count"]) == 0, (name, row)
    assert float(media["audio_coverage_percent"]["Average Response Time"]) > 80, media["audio_coverage_percent"]
    assert float(media["audio_coverage_percent"]["Max Response Time"]) <= 100.5, media["audio_coverage_percent"]
    assert 0 <= float(media["loss_percent"]["Average Response Time"]) < 5, media["loss_percent"]
    assert 0 <= float(media["jitter_ms"]["Average Response Time"]) < 100, media["jitter_ms"]
    assert 0 <= float(media["rtt_ms"]["Average Response Time"]) < 200, media["rtt_ms"]
    assert 1 <= float(media["mos"]["Min Response Time"]) <= float(media["mos"]["Max Response Time"]) <= 4.5, media["mos"]
    assert float(media["mos"]["Average Response Time"]) >= 3, media["mos"]  # loopback: no loss, little delay

    assert _rows(f"{prefix}_failures.csv") == []
    assert _rows(f"{prefix}_exceptions.csv") == [], logs
    print(f"\nLocust's figures over {calls} calls: " + ", ".join(
        f"{name} avg {float(row['Average Response Time']):.2f}" for name, row in
        {"connect ms": connect, "first audio ms": first, **media}.items()))


def test_a_refused_api_key_is_reported_as_connect_failures_with_the_typed_error(
        tmp_path: Path, orga_env: dict[str, str], tag: str) -> None:
    env = {**orga_env, "ORGA_API_KEY": "orga_wrong_key_0000", "CALL_SECONDS": "1"}
    prefix = tmp_path / "refused"
    proc = _locust("--headless", "-u", "2", "-r", "2", "--run-time", "4s", "--csv", str(prefix), "--only-summary",
                   "--host", env["ORGA_BASE_URL"], env=env, log=tmp_path / "local.log")
    try:
        code = proc.wait(40)
    finally:
        _stop(proc)
    log = (tmp_path / "local.log").read_text(errors="replace")
    assert code == 1, log[-3000:]  # Locust's exit status when requests failed
    connect = _stats(prefix)[("WebRTC", "connect")]
    assert int(connect["Request Count"]) >= 2 and connect["Failure Count"] == connect["Request Count"], connect
    assert ("WebRTC", "call") not in _stats(prefix)  # a call that never connected is not a call
    failures = _rows(f"{prefix}_failures.csv")
    assert failures and all(f["Name"] == "connect" for f in failures), failures
    assert all(re.search(r"OrgaAIAuthenticationError\(status=401", f["Error"]) for f in failures), failures
    assert "orga_wrong_key_0000" not in "".join(f["Error"] for f in failures)  # secrets never shown


def test_the_readme_shows_the_sample_locustfile_as_it_is() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Locust"):]
    shown = section[section.index("```python\n") + len("```python\n"):section.index("```\n")]
    assert shown.strip() and shown in LOCUSTFILE.read_text()


def test_importing_peerbot_or_the_locust_package_patches_nothing_until_the_user_class_is_asked_for() -> None:
    # In a subprocess: the names of peerbot.locust import locust, which monkey-patches the process.
    code = ("import sys, peerbot, peerbot.orga; assert 'peerbot.locust' not in sys.modules\n"
            "import peerbot.locust; assert 'locust' not in sys.modules and 'gevent' not in sys.modules\n"
            "peerbot.locust.PeerbotUser; assert 'locust' in sys.modules\n"
            "import socket, gevent.socket; assert socket.socket is gevent.socket.socket, 'locust patched socket'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
