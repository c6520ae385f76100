"""The Orbit event WebSocket's reader against a real loopback WebSocket server that sends junk.

Bad frames (not JSON, nested too deep, huge numbers, binary, a huge or negative ``seq``) are
skipped or kept without their ``seq``; the reader stays up, later events still arrive, and a
reconnect asks for a sane ``since=``. Wrong use and refusals are typed errors.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import WSCloseCode, web

from peerbot.errors import ClientClosedError, OrbitAuthenticationError, OrbitServerError, SessionStateError
from peerbot.orbit import OrbitEvents, routes

TOKEN = "tok_EVENTSECRET_0123456789"
CLIENT_ID = "pk_test_events"

JUNK_FRAMES = [
    "{not json",
    "[" * 100_000,
    '{"type": "call:offer", "data": ' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "}",
    '{"type": "call:offer", "seq": ' + "9" * 5000 + "}",
    '{"type": "call:offer", "data": {}, "seq": NaN}',
    '{"type": 5, "data": {}}',
    "[1, 2, 3]",
    "\udcff" * 3,  # lone surrogates: not encodable as UTF-8 text by a sane server, sent anyway
]


def frame(seq: int | str, call_id: str) -> str:
    return '{"type": "call:offer", "data": {"call_id": "%s"}, "seq": %s}' % (call_id, seq)


@dataclass
class JunkServer:
    """First connection: junk, good events, a huge seq, then a close; later connections: one more event."""

    close_code: int | None = None  # set: the first connection is closed with it straight away
    refuse_status: int | None = None  # set: the handshake is refused with it
    since: list[str | None] = field(default_factory=list)
    url: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(routes.EVENTS.template, self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse_status is not None:
            return web.json_response({"error": {"code": "nope", "message": "no"}}, status=self.refuse_status)
        self.since.append(request.query.get("since"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        if self.close_code is not None:
            await ws.close(code=self.close_code)
            return ws
        if len(self.since) == 1:
            await ws.send_str(frame(1, "first"))
            for junk in JUNK_FRAMES:
                await ws.send_bytes(junk.encode("utf-8", "surrogatepass"))  # as bytes too
                if junk.isascii():
                    await ws.send_str(junk)
            await ws.send_str(frame("9" * 4000, "huge-seq"))
            await ws.send_str(frame(-7, "negative-seq"))
            await ws.send_str(frame(2, "second"))
            await ws.close(code=WSCloseCode.GOING_AWAY)
        else:
            await ws.send_str(frame(2, "second"))  # replayed: dropped as a duplicate
            await ws.send_str(frame(3, "third"))
            await asyncio.sleep(5)
        return ws


@pytest.fixture
async def server() -> AsyncIterator[JunkServer]:
    junk = JunkServer()
    await junk.start()
    try:
        yield junk
    finally:
        assert junk.runner is not None
        await junk.runner.cleanup()


async def test_junk_frames_are_skipped_and_the_reader_survives_a_reconnect_with_a_sane_since(
    server: JunkServer,
) -> None:
    async with OrbitEvents(server.url, TOKEN, CLIENT_ID, backoff=0.01) as events:
        async with asyncio.timeout(5):
            received = [await anext(events) for _ in range(5)]

        assert [e.call_id for e in received] == ["first", "huge-seq", "negative-seq", "second", "third"]
        assert [e.seq for e in received] == [1, None, None, 2, 3]
        assert server.since == [None, "2"]  # not the 4000-digit one
        assert events.reconnects == 1 and events.connected


async def test_a_refused_handshake_is_an_authentication_error_for_401_and_403_and_a_server_error_else(
    server: JunkServer,
) -> None:
    outcomes = {}
    for status in (401, 403, 404, 500):
        server.refuse_status = status
        events = OrbitEvents(server.url, TOKEN, CLIENT_ID, max_retries=0)
        with pytest.raises((OrbitAuthenticationError, OrbitServerError)) as caught:
            await events.connect()
        outcomes[status] = type(caught.value)
        assert caught.value.status == status and "EVENTSECRET" not in str(caught.value)

    assert outcomes == {401: OrbitAuthenticationError, 403: OrbitAuthenticationError,
                        404: OrbitServerError, 500: OrbitServerError}


async def test_a_forbidden_close_ends_the_stream_with_an_authentication_error(server: JunkServer) -> None:
    server.close_code = routes.CLOSE_FORBIDDEN
    async with OrbitEvents(server.url, TOKEN, CLIENT_ID) as events:
        with pytest.raises(OrbitAuthenticationError) as caught:
            async with asyncio.timeout(5):
                await anext(events)
    assert (caught.value.status, caught.value.code) == (403, "forbidden")


async def test_events_used_before_connect_twice_or_after_aclose_raise_session_state_errors(
    server: JunkServer,
) -> None:
    events = OrbitEvents(server.url, TOKEN, CLIENT_ID)
    with pytest.raises(SessionStateError, match="before reading"):
        await anext(events)
    await events.connect()
    with pytest.raises(SessionStateError, match="already connected"):
        await events.connect()
    await events.aclose()

    with pytest.raises(ClientClosedError, match="closed"):
        await events.connect()
    with pytest.raises(ClientClosedError):
        await events.wait_for(routes.CALL_OFFER, timeout=1)
    assert json.dumps(server.since) == "[null]"  # the refused connect() made no connection
