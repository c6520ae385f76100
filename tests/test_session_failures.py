"""How sessions end when things go wrong: a vanished server, bad answers, bad credentials, leaks."""

from __future__ import annotations

import asyncio
import gc
import os
import re
import signal
import sys
import threading

import pytest
from aiohttp import web

from peerbot import orga
from peerbot.errors import OrgaAIAuthenticationError, SdpError, SessionEndedError
from peerbot.media import Tone
from peerbot.orga import OrgaClient, routes

from conftest import USER_EMAIL


@pytest.fixture
async def server_process():
    """``peerbot serve`` in its own process, so the test can kill it like a crash would."""
    key = "orga_test_vanishing_key"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerbot.cli.main", "serve", "--port", "0", "--api-key", key,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    base_url = re.search(r"(http://\S+)", line).group(1)
    yield proc, {"api_key": key, "base_url": base_url, "user_email": USER_EMAIL}
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_the_session_reports_the_reason_when_the_server_hangs_up(orga_server, orga_kwargs):
    # Without reconnecting, which would rebuild the call (tests/test_reconnect.py): the reason is the subject.
    async with orga.connect(Tone(), reconnect=False, **orga_kwargs) as session:
        await asyncio.wait_for(session.audio_frames().__anext__(), 10)
        await asyncio.wait_for(orga_server.calls[session.conversation_id].close(), 10)
        reason = await asyncio.wait_for(session.closed(), 10)
    assert "closed" in reason or "silent" in reason


async def _fake_orga(answer: dict) -> tuple[web.AppRunner, str]:
    """An Orga look-alike whose calls endpoint returns ``answer``: for answers ours never sends."""

    async def secrets_(request):
        return web.json_response({"ephemeral_token": "tok_fake_0123456789"})

    async def ice(request):
        return web.json_response({"iceServers": []})

    async def calls(request):
        return web.json_response({"answer": answer, "conversation_id": "conv_fake"})

    app = web.Application()
    for route, handler in ((routes.CLIENT_SECRETS, secrets_), (routes.ICE_CONFIG, ice), (routes.CALLS, calls)):
        app.router.add_route(route.method, route.path, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.mark.parametrize("sdp", ["garbage", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"])
async def test_malformed_answer_sdp_raises_sdp_error_and_leaves_nothing_open(sdp):
    runner, base_url = await _fake_orga({"sdp": sdp, "type": "answer"})
    try:
        session = orga.connect(Tone(), api_key="orga_fake_key_1", base_url=base_url, user_email=USER_EMAIL)
        with pytest.raises(SdpError):
            async with session:
                pass
        assert session.state == "failed" and session._client.is_closed
    finally:
        await runner.cleanup()


async def test_expired_token_is_refused_with_an_authentication_error():
    from peerbot.local.orga_server import LocalOrgaServer

    async with LocalOrgaServer(token_ttl=1) as server:
        async with OrgaClient(server.api_key, USER_EMAIL, server.base_url) as client:
            token = await client.fetch_ephemeral_token()
            await asyncio.sleep(2.1)
            with pytest.raises(OrgaAIAuthenticationError, match="expired") as info:
                await client.fetch_ice_servers(token)
    assert info.value.status == 401


async def test_api_key_used_as_a_token_is_refused_with_403(orga_server):
    async with OrgaClient(orga_server.api_key, USER_EMAIL, orga_server.base_url) as client:
        with pytest.raises(OrgaAIAuthenticationError) as info:
            await client.fetch_ice_servers(orga_server.api_key)
    assert info.value.status == 403
    assert orga_server.api_key not in str(info.value)


def _open_fds() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/fd"))


async def test_nothing_leaks_across_100_sequential_sessions(orga_server, orga_kwargs):
    async def one_session() -> None:
        async with orga.connect(Tone(), **orga_kwargs) as session:
            await asyncio.wait_for(session.audio_frames().__anext__(), 10)

    for _ in range(3):  # warm-up: lazy imports, thread pools, codec tables
        await one_session()
    await asyncio.sleep(0.5)
    gc.collect()
    fds, threads, tasks = _open_fds(), threading.active_count(), len(asyncio.all_tasks())
    for _ in range(100):
        await one_session()
    for _ in range(20):  # closing aiortc transports finishes a few loop turns later
        await asyncio.sleep(0.1)
        gc.collect()
        if _open_fds() <= fds and len(asyncio.all_tasks()) <= tasks:
            break
    print(f"after 100 sessions: fds {fds}->{_open_fds()}, threads {threads}->{threading.active_count()},"
          f" tasks {tasks}->{len(asyncio.all_tasks())}, live server calls {len(orga_server.calls)}")
    assert _open_fds() <= fds
    assert len(asyncio.all_tasks()) <= tasks
    assert threading.active_count() <= threads + 2  # the default executor may grow by a worker
    assert len(orga_server.calls) == 0


async def test_killed_server_ends_the_session_within_10_s_with_a_reason(server_process):
    proc, kwargs = server_process
    # Without reconnecting: this is about noticing the vanished server (reconnects: tests/test_reconnect.py).
    async with orga.connect(Tone(), reconnect=False, **kwargs) as session:
        frames = session.audio_frames()
        await asyncio.wait_for(frames.__anext__(), 10)  # a failure, not a hang, if no audio comes
        proc.send_signal(signal.SIGKILL)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        reason = await asyncio.wait_for(session.closed(), 15)
        noticed_after = loop.time() - killed_at
        with pytest.raises(SessionEndedError, match="silent"):
            async for _ in frames:
                pass
    assert "silent" in reason and session.state == "failed"
    assert noticed_after < 10
    print(f"vanished server noticed after {noticed_after:.1f} s: {reason}")
