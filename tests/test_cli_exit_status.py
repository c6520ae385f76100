"""Exit status and the hang-up line of ``call``, ``orbit call`` and ``orbit answer``, run as subprocesses:
SIGINT → 130 and SIGTERM → 143 whether connecting or in the call, a normal end by the far side → 0."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import IO

import pytest

from peerbot import orbit
from peerbot.media import Tone

from orbit_bed import orbit_bed

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}  # local servers


@pytest.fixture
def silent_service() -> Iterator[tuple[socket.socket, dict[str, str]]]:
    """A "service" that accepts TCP connections and never answers, and the settings that point
    ``peerbot call`` (as Orga) and ``peerbot orbit`` (as Orbit) at it."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(30)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        yield listener, {**ENV, "ORGA_BASE_URL": url, "ORGA_API_KEY": "orga_test_key",
                         "ORGA_USER_EMAIL": "tester@peerbot.example", "ORBIT_BASE_URL": url,
                         "ORBIT_SECRET_KEY": "sk_test_silent", "ORBIT_CLIENT_ID": "pk_test_silent"}


def start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([*PEERBOT, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_line(stream: IO[str], text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    for line in stream:
        if text in line:
            return
        assert time.monotonic() < deadline, f"no line with {text!r}"
    raise AssertionError(f"the output ended before a line with {text!r}")


@pytest.mark.parametrize("command, sig, status", [
    (["call"], signal.SIGINT, 130),
    (["call"], signal.SIGTERM, 143),
    (["orbit", "call", "bob"], signal.SIGINT, 130),
    (["orbit", "answer"], signal.SIGTERM, 143),
])
def test_signal_while_connecting_to_a_silent_service_stops_at_once_with_the_shell_status(
        silent_service, command, sig, status):
    listener, env = silent_service
    proc = start(*command, "--json", env=env)
    request, _ = listener.accept()  # the first request is in flight and will never be answered
    with request:
        time.sleep(0.3)
        sent = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=9)  # the clients' own timeout is 10 s: it is not waited for
    took = time.monotonic() - sent
    print(f"\n{' '.join(command)}: {sig.name} while connecting, exited {took * 1000:.0f} ms later")
    assert proc.returncode == status, err
    said = f"cancelled before it connected ({'terminated' if sig == signal.SIGTERM else 'interrupted'})"
    assert f"Call {said}" in err  # with --json the human lines are on stderr
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["exit_status"] == status and summary["end_reason"] == said
    assert summary["duration_s"] is None and summary["call_id"] is None


@pytest.mark.parametrize("command, ready, sig, status", [
    (["call"], "connected in", signal.SIGTERM, 143),
    (["orbit", "call", "alice"], "connected in", signal.SIGINT, 130),
    (["orbit", "answer"], "answered after", signal.SIGTERM, 143),
])
def test_signal_during_a_call_hangs_up_with_one_line_and_the_shell_status(command, ready, sig, status):
    proc = start(*command, env=ENV)
    wait_for_line(proc.stdout, ready)
    time.sleep(1.0)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == status, err
    said = f"hung up ({'terminated' if sig == signal.SIGTERM else 'interrupted'})"
    assert said in out
    assert out.count(said) == 1
    assert "Traceback" not in err


async def test_far_side_hanging_up_normally_ends_orbit_call_with_exit_0():
    async with orbit_bed(ring_timeout=10) as bed:
        bob = await bed.participant("bob")

        async def answer_then_hang_up() -> None:
            async with orbit.answer(Tone(330), ring_timeout=30, **bob.kwargs) as call:
                await asyncio.sleep(2.0)
            return call.call_id

        answering = asyncio.create_task(answer_then_hang_up())
        env = {**ENV, "ORBIT_BASE_URL": bed.server.base_url, "ORBIT_SECRET_KEY": bed.server.secret_key,
               "ORBIT_CLIENT_ID": bed.server.publishable_key}
        proc = await asyncio.create_subprocess_exec(*PEERBOT, "orbit", "call", "bob", "--json", env=env,
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 40)
        call_id = await answering
    summary = json.loads(out)
    assert proc.returncode == 0, err.decode()
    assert summary["exit_status"] == 0 and summary["call_id"] == call_id
    assert summary["audio_seconds_received"] > 1  # bob's tone arrived before he hung up
    assert "Traceback" not in err.decode()
