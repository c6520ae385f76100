"""``peerbot orbit``, ``peerbot serve --orbit`` and the answering bot, run as a user would: subprocesses.

Without ORBIT_* the commands start their own local server; with ORBIT_* they are pointed at a
server started in the test, which then plays the other party.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from peerbot import orbit
from peerbot.errors import CallNotConnectedError
from peerbot.media import Tone, decode_audio

from media_checks import dominant_frequency, rms
from orbit_bed import orbit_bed

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ANSWERING_BOT = Path(__file__).resolve().parent.parent / "bots" / "answering_bot.py"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}  # force the local server


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PEERBOT, *args], capture_output=True, text=True, timeout=timeout, env=ENV)


def env_for(server) -> dict[str, str]:
    """What a backend needs to reach ``server``."""
    return {**ENV, "ORBIT_BASE_URL": server.base_url, "ORBIT_SECRET_KEY": server.secret_key,
            "ORBIT_CLIENT_ID": server.publishable_key}


async def run_async(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    """A subprocess that does not block the loop serving the test's Orbit server."""
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


def heard_hz(out: str) -> float:
    return float(re.search(r"strongest at (\d+) Hz", out).group(1))


@pytest.fixture
async def bed():
    async with orbit_bed(ring_timeout=2) as bed:
        yield bed


def test_orbit_call_without_settings_reaches_a_local_echo_user_and_hears_its_own_tone():
    result = run("orbit", "call", "alice", "--duration", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    print(out)
    assert "local Orbit-compatible server" in out
    assert re.search(r"connected in \d+ ms: call call_\w+ \(voice\) with alice", out)
    assert "hung up after --duration 4 s" in out
    assert float(re.search(r"received: ([\d.]+) s of audio", out).group(1)) > 3
    assert abs(heard_hz(out) - 440) < 10  # our tone, back through the echo user
    assert re.search(r"server: +call call_\w+ ended", out)


def test_orbit_answer_without_settings_takes_a_demo_call_and_hears_it():
    result = run("orbit", "answer", "--duration", "3", "--source", "tone:660")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "ORBIT_BASE_URL=http://127.0.0.1:" in out and "ORBIT_SECRET_KEY=sk_" in out
    assert re.search(r"answered after [\d.]+ s: call call_\w+ \(voice\) with demo-caller", out)
    assert abs(heard_hz(out) - 660) < 10  # the demo caller plays our tone back


def test_serve_orbit_prints_where_it_listens_serves_and_stops_on_sigterm():
    proc = subprocess.Popen([*PEERBOT, "serve", "--orbit", "--port", "0"], stdout=subprocess.PIPE, text=True, env=ENV)
    first, second = proc.stdout.readline(), proc.stdout.readline()
    try:
        assert first.startswith("Orbit-compatible server on http://127.0.0.1:")
        settings = dict(re.findall(r"(ORBIT_\w+)=(\S+)", second))
        assert settings["ORBIT_SECRET_KEY"].startswith("sk_test_") and settings["ORBIT_CLIENT_ID"].startswith("pk_")
        assert httpx.get(settings["ORBIT_BASE_URL"] + "/healthz").json()["status"] == "ok"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
    assert proc.returncode == 0


async def test_rejected_call_is_one_clear_line_and_exit_1(bed):
    bob = await bed.participant("bob")

    async def reject_next() -> None:
        async with orbit.OrbitUser(bob.base_url, bob.token, bob.client_id) as user:
            async with user.events() as events:
                incoming = await events.wait_for("call:incoming", timeout=30)
                await user.calls.reject(incoming.call_id)

    rejecting = asyncio.create_task(reject_next())
    code, out, err = await run_async(*PEERBOT, "orbit", "call", "bob", env=env_for(bed.server))
    await rejecting
    assert code == 1, err
    assert "Call not connected (rejected): bob rejected the call" in out
    assert "Traceback" not in err


async def test_unanswered_call_is_missed_with_exit_1(bed):
    await bed.participant("bob")  # exists, never answers; the server gives up after 2 s
    code, out, err = await run_async(*PEERBOT, "orbit", "call", "bob", env=env_for(bed.server))
    assert code == 1, err
    assert "Call not connected (missed): bob did not answer" in out
    assert "Traceback" not in err


async def test_calling_an_unknown_user_is_a_one_line_error_and_exit_2(bed):
    code, out, err = await run_async(*PEERBOT, "orbit", "call", "nobody", env=env_for(bed.server))
    assert code == 2
    assert err.strip() == "peerbot: error: no Orbit user 'nobody' (looked for it as an external id and as a user id)"


def test_ctrl_c_while_waiting_for_a_call_cancels_cleanly():
    proc = subprocess.Popen([*PEERBOT, "orbit", "answer", "--no-demo"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    for line in proc.stdout:
        if "Waiting for a call" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert "Call cancelled before it connected (interrupted)" in out
    assert "Traceback" not in err


async def test_answer_started_just_after_a_missed_call_waits_for_the_next_live_call(bed):
    caller = await bed.participant("carol")
    bot = await bed.backend.users.create("peerbot", "peerbot")  # the user `orbit answer` acts as
    with pytest.raises(CallNotConnectedError) as missed:  # nobody answers: missed after 2 s
        async with orbit.call(bot.id, Tone(440), ring_timeout=10, **caller.kwargs):
            pass
    assert missed.value.outcome in ("missed", "no_answer")
    proc = await asyncio.create_subprocess_exec(*PEERBOT, "orbit", "answer", "--duration", "2", "--json",
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                env=env_for(bed.server))
    try:
        while b"Waiting for a call" not in await asyncio.wait_for(proc.stderr.readline(), 30):
            pass
        await asyncio.sleep(1.0)  # had it taken the missed call it would have exited 2 by now
        assert proc.returncode is None
        async with orbit.call(bot.id, Tone(440), ring_timeout=10, **caller.kwargs) as live:
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary["call_id"] == live.call_id and summary["audio_seconds_received"] > 1


async def test_answering_bot_greets_a_caller_and_records_them(bed, tmp_path):
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(ANSWERING_BOT), "--max-calls", "1", "--record-dir", str(tmp_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_for(bed.server))
    try:
        first = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        assert first.startswith("answering calls to answering-bot"), first
        caller = await bed.participant("carol")
        bot = await bed.backend.users.get_by_external_id("answering-bot")
        async with orbit.call(bot.id, Tone(550), **caller.kwargs) as call:
            chunks, total = [], 0
            async for frame in call.audio_frames(sample_rate=16000, channels=1):
                chunks.append(frame.data[0])
                total += frame.samples
                if total >= 3 * 16000:
                    break
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
    heard = np.concatenate(chunks)
    print(f"\ncaller heard the greeting at {rms(heard):.0f} RMS; bot said:\n{out.decode()}")
    assert rms(heard) > 300  # the spoken greeting, not silence
    assert proc.returncode == 0, err.decode()
    assert f"call {call.call_id}: " in out.decode() and "ended: the other party hung up (hangup)" in out.decode()
    recording = decode_audio(tmp_path / f"{call.call_id}.wav", 16000)[0]
    assert len(recording) / 16000 > 2
    assert abs(dominant_frequency(recording[-16000:], 16000) - 550) < 10  # the caller's tone was recorded
