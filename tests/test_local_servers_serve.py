"""``peerbot serve`` as a user runs it: what it prints is enough to reach it once exported, the
Orbit server hosts a demo user ``alice`` who echoes every call, and SIGTERM always stops it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator

import httpx
import numpy as np
import pytest

from media_checks import dominant_frequency
from peerbot import orbit, orga
from peerbot.media import Tone
from peerbot.orga.routes import CALLS, CLIENT_SECRETS

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
SETTINGS = ("ORGA_", "ORBIT_")


@contextlib.asynccontextmanager
async def serving(*args: str, until: str = "export ") -> AsyncIterator[dict[str, str]]:
    """Run ``peerbot serve *args``; yield the variables its ``export`` line sets; SIGTERM it after."""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(SETTINGS)}
    proc = await asyncio.create_subprocess_exec(*PEERBOT, "serve", "--port", "0", *args, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    exports: dict[str, str] = {}
    try:
        lines = []
        while not lines or until not in lines[-1]:
            lines.append((await asyncio.wait_for(proc.stdout.readline(), 20)).decode())
            assert lines[-1], f"serve ended early: {(await proc.stderr.read()).decode()}"
            if lines[-1].startswith("export "):
                words = shlex.split(lines[-1])  # what a shell's eval would take
                exports = dict(word.split("=", 1) for word in words[1:])
        yield exports
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        code = await asyncio.wait_for(proc.wait(), 10)
        stopped_in = time.monotonic() - started
        err = (await proc.stderr.read()).decode()
    assert code == 0 and stopped_in < 5, (code, stopped_in, err)
    assert "Traceback" not in err, err


async def test_exporting_what_serve_prints_is_enough_for_orga_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving() as exports:
        assert set(exports) == {"ORGA_BASE_URL", "ORGA_API_KEY", "ORGA_USER_EMAIL"}
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        async with orga.connect(Tone(440)) as session:  # no arguments: the environment only
            pcm = []
            async for frame in session.audio_frames(sample_rate=16000, channels=1):
                pcm.append(frame.data.reshape(-1))
                if sum(p.size for p in pcm) >= 16000 * 1.5:
                    break
    heard = np.concatenate(pcm)[8000:]  # past the echo delay
    assert abs(dominant_frequency(heard, 16000) - 440) < 10


async def test_serve_with_a_configured_key_exports_the_rest_and_only_hints_at_the_key() -> None:
    async with serving("--api-key", "orga_test_configured_key_123", until="# ORGA_API_KEY") as exports:
        assert set(exports) == {"ORGA_BASE_URL", "ORGA_USER_EMAIL"}


async def test_sigterm_stops_serve_promptly_after_an_offer_aiortc_breaks_on() -> None:
    async with serving() as exports:
        async with httpx.AsyncClient(base_url=exports["ORGA_BASE_URL"], timeout=10) as http:
            token = (await http.post(CLIENT_SECRETS.path, params={"email": exports["ORGA_USER_EMAIL"]},
                                     headers={"Authorization": f"Bearer {exports['ORGA_API_KEY']}"})).json()
            sdp = ("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE \r\n"
                   "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:\r\na=sctp-port:5000\r\n")
            response = await http.post(CALLS.path, headers={"Authorization": f"Bearer {token['ephemeral_token']}"},
                                       json={"offer": {"type": "offer", "sdp": sdp}})
            assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_sdp"
    # serving() asserts the exit: code 0 within 5 s of SIGTERM, no traceback


async def call_alice_and_hear(exports: dict[str, str], hz: float) -> float:
    async with orbit.OrbitServer() as backend:
        bot = await backend.users.create("tester", "Tester")
        token = (await backend.users.create_token(bot.id)).token
        alice = await backend.users.get_by_external_id("alice")
    async with orbit.call(alice.id, Tone(hz), token=token, ring_timeout=10) as call:
        pcm = []
        async for frame in call.audio_frames(sample_rate=16000, channels=1):
            pcm.append(frame.data.reshape(-1))
            if sum(p.size for p in pcm) >= 16000 * 1.5:
                break
    return dominant_frequency(np.concatenate(pcm)[8000:], 16000)


async def test_serve_orbit_hosts_alice_who_echoes_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving("--orbit", until="# demo user") as exports:
        assert set(exports) == {"ORBIT_BASE_URL", "ORBIT_SECRET_KEY", "ORBIT_CLIENT_ID"}
        for name, value in exports.items():
            monkeypatch.setenv(name, value)
        for hz in (440.0, 660.0):  # one call after the other: she answers each
            assert abs(await call_alice_and_hear(exports, hz) - hz) < 10


async def test_serve_orbit_no_demo_has_no_alice(monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving("--orbit", "--no-demo") as exports:
        async with httpx.AsyncClient(base_url=exports["ORBIT_BASE_URL"]) as http:
            response = await http.get("/api/v1/users/by-external-id/alice",
                                      headers={"Authorization": f"Bearer {exports['ORBIT_SECRET_KEY']}"})
        assert response.status_code == 404 and re.match(r"^pk_", exports["ORBIT_CLIENT_ID"])
