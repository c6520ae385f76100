"""The shared REST transport under OrgaClient, OrbitServer and OrbitUser, against a real loopback HTTP server
that answers with hostile bodies: huge, endless, deeply nested, huge integers, NaN, not UTF-8.

Every one must end as the client's typed server error (``OrgaAIServerError`` / ``OrbitServerError``),
quickly, without reading an oversized body to its end, and without leaking a credential.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from peerbot.errors import (
    ClientClosedError,
    ConfigurationError,
    OrbitAuthenticationError,
    OrbitError,
    OrbitServerError,
    OrgaAIAuthenticationError,
    OrgaAIServerError,
    SessionStateError,
)
from peerbot.orbit import OrbitServer, OrbitUser
from peerbot.orbit import routes as orbit_routes
from peerbot.orga import routes as orga_routes
from peerbot.orga.client import OrgaClient

API_KEY = "sk_live_APIKEYSECRET_0123456789abcdef"
TOKEN = "eph_TOKENSECRET_abcdefghijklmnopqrstuv"
SECRET_KEY = "sk_test_ORBITSECRET_0123456789"
EMAIL = "bot@example.com"
MIB = 1 << 20

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HostileServer:
    """Answers every Orga and Orbit route with ``handler``; counts the body bytes it managed to send."""

    handler: Handler | None = None
    sent: int = 0
    requests: int = 0
    url: str = ""
    runner: web.AppRunner | None = field(default=None, repr=False)

    async def start(self) -> None:
        app = web.Application()
        for route in orga_routes.ROUTES:
            app.router.add_route(route.method, route.path, self._handle)
        for route in orbit_routes.REST_ROUTES:
            app.router.add_route(route.method, route.template, self._handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self.handler is not None
        self.requests += 1
        return await self.handler(request)


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    hostile = HostileServer()
    await hostile.start()
    try:
        yield hostile
    finally:
        assert hostile.runner is not None
        await hostile.runner.cleanup()


def body_reply(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type=content_type)

    return handle


def endless_reply(server: HostileServer, total: int = 200 * MIB, *, declare_length: bool = True) -> Handler:
    """A 200 MB JSON string, written in 64 KiB chunks for as long as the client keeps reading."""

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Type": "application/json"}
        if declare_length:
            headers["Content-Length"] = str(total)
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        chunk = b"a" * 65536
        try:
            await response.write(b'"')
            while server.sent < total:
                await response.write(chunk)
                server.sent += len(chunk)
        except (ConnectionError, RuntimeError):  # the client hung up: what we wanted
            pass
        return response

    return handle


HOSTILE_BODIES = {
    "deep-nesting": b"[" * 200_000 + b"]" * 200_000,
    "deep-object": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "huge-integer": b'{"ephemeral_token": "t", "ttl": ' + b"9" * 5000 + b"}",
    "nan": b'{"ephemeral_token": "t", "ttl": NaN, "expires_in": NaN}',
    "infinity": b'{"ephemeral_token": "t", "ttl": Infinity}',
    "overflowing-float": b'{"ephemeral_token": "t", "ttl": 1e999}',
    "not-utf8": b'{"ephemeral_token": "\xff\xfe"}',
    "empty": b"",
}


async def orga_fetch(server: HostileServer, **options: object) -> OrgaAIServerError:
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url, **options) as orga:
        with pytest.raises(OrgaAIServerError) as caught:
            await orga.fetch_ephemeral_token()
    return caught.value


async def orbit_fetch(server: HostileServer, **options: object) -> OrbitError:
    async with OrbitServer(SECRET_KEY, server.url, **options) as orbit:
        with pytest.raises(OrbitError) as caught:
            await orbit.calls.get_turn_credentials("usr_1")
    return caught.value


# --- hostile 2xx bodies ----------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(HOSTILE_BODIES))
async def test_hostile_json_body_is_an_orga_server_error_naming_the_route(server: HostileServer, kind: str) -> None:
    server.handler = body_reply(HOSTILE_BODIES[kind])

    error = await orga_fetch(server)

    assert not isinstance(error, OrgaAIAuthenticationError)
    assert error.status == 200 and error.code == "SERVER_ERROR"
    assert orga_routes.CLIENT_SECRETS.path in error.message
    assert "APIKEYSECRET" not in str(error)


@pytest.mark.parametrize("kind", sorted(set(HOSTILE_BODIES) - {"empty"}))
async def test_hostile_json_body_is_an_orbit_server_error_with_code_bad_response(
    server: HostileServer, kind: str
) -> None:
    server.handler = body_reply(HOSTILE_BODIES[kind])

    error = await orbit_fetch(server)

    assert type(error) is OrbitServerError
    assert (error.status, error.code) == (0, "bad_response")
    assert "calls.getTurnCredentials" in error.message


async def test_the_reason_of_a_hostile_body_is_said_in_the_message(server: HostileServer) -> None:
    reasons = {}
    for kind, expected in [("deep-nesting", "nested too deeply"), ("huge-integer", "number is too large"),
                           ("nan", "NaN where a number is expected"), ("not-utf8", "not UTF-8"),
                           ("overflowing-float", "where a number is expected")]:
        server.handler = body_reply(HOSTILE_BODIES[kind])
        reasons[kind] = (await orga_fetch(server)).message
        assert expected in reasons[kind], reasons[kind]


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_a_200_mb_body_is_refused_after_the_cap_without_being_read(
    server: HostileServer, declare_length: bool
) -> None:
    server.handler = endless_reply(server, declare_length=declare_length)
    loop = asyncio.get_running_loop()
    started = loop.time()

    error = await orga_fetch(server, timeout=30)

    assert "larger than" in error.message and error.status == 200
    assert MIB // 2 < server.sent < 32 * MIB  # the 1 MiB cap plus what socket buffers took, not 200 MB
    assert loop.time() - started < 10


async def test_the_body_cap_is_an_argument_for_both_clients(server: HostileServer) -> None:
    server.handler = body_reply(b'{"ephemeral_token": "' + b"t" * 5000 + b'"}')
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        assert await orga.fetch_ephemeral_token() == "t" * 5000

    small = await orga_fetch(server, max_body_bytes=1000)
    orbit_small = await orbit_fetch(server, max_body_bytes=1000)

    assert "larger than 1000 bytes" in small.message
    assert orbit_small.code == "bad_response" and "larger than 1000 bytes" in orbit_small.message
    with pytest.raises(ConfigurationError, match="max_body_bytes"):
        OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url, max_body_bytes=0)


async def test_an_endless_error_body_still_gives_the_status_error_with_a_short_snippet(
    server: HostileServer,
) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=502, headers={"Content-Type": "text/html"})
        await response.prepare(request)
        try:
            await response.write(b"<h1>Bad gateway</h1>")
            while server.sent < 200 * MIB:
                await response.write(b"x" * 65536)
                server.sent += 65536
        except (ConnectionError, RuntimeError):
            pass
        return response

    server.handler = handle

    error = await orga_fetch(server, timeout=30)

    assert error.status == 502 and "Bad gateway" in error.message and len(error.message) < 400
    assert server.sent < 32 * MIB


@pytest.mark.parametrize("kind", ["deep-nesting", "huge-integer", "nan", "not-utf8"])
async def test_hostile_error_bodies_still_map_the_status(server: HostileServer, kind: str) -> None:
    server.handler = body_reply(HOSTILE_BODIES[kind], status=503)
    orga_error = await orga_fetch(server)
    server.handler = body_reply(HOSTILE_BODIES[kind], status=401)
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        with pytest.raises(OrgaAIAuthenticationError) as refused:
            await orga.fetch_ephemeral_token()
    orbit_error = await orbit_fetch(server)

    assert orga_error.status == 503 and refused.value.status == 401
    assert isinstance(orbit_error, OrbitAuthenticationError) and orbit_error.status == 401
    assert orbit_error.code == "http_error"


# --- Orbit: the error hierarchy --------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "kind"),
    [(401, OrbitAuthenticationError), (403, OrbitAuthenticationError), (400, OrbitServerError),
     (404, OrbitServerError), (409, OrbitServerError), (500, OrbitServerError)],
)
async def test_orbit_401_and_403_are_authentication_errors_and_other_statuses_server_errors(
    server: HostileServer, status: int, kind: type[OrbitError]
) -> None:
    async def handle(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        return web.json_response({"error": {"code": f"c{status}", "message": f"no: {auth}"}}, status=status)

    server.handler = handle

    error = await orbit_fetch(server)

    assert type(error) is kind
    assert (error.status, error.code) == (status, f"c{status}")
    assert "ORBITSECRET" not in error.message and "Bearer" in error.message
    assert f"status={status}" in repr(error) and "ORBITSECRET" not in repr(error)


# --- a closed client -------------------------------------------------------------------


async def test_clients_used_after_aclose_raise_client_closed_error_before_any_request(
    server: HostileServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.handler = body_reply(b'{"ephemeral_token": "t"}')
    caplog.set_level(logging.DEBUG)
    orga = OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url)
    orbit = OrbitServer(SECRET_KEY, server.url)
    user = OrbitUser(server.url, TOKEN, "pk_test_x")
    for client in (orga, orbit, user):
        await client.aclose()

    failures: list[SessionStateError] = []
    for call in (orga.fetch_ephemeral_token(), orbit.users.list(), user.calls.get_turn_credentials()):
        with pytest.raises(ClientClosedError) as caught:
            await call
        failures.append(caught.value)

    assert [str(f).split(" ", 1)[0] for f in failures] == ["OrgaClient", "OrbitServer", "OrbitUser"]
    assert all("aclose()" in str(f) and isinstance(f, SessionStateError) for f in failures)
    assert server.requests == 0 and "Authorization" not in caplog.text  # nothing was sent


async def test_a_bad_timeout_is_a_configuration_error_for_both_clients() -> None:
    for timeout in (0, -1, float("nan"), float("inf"), True):
        with pytest.raises(ConfigurationError, match="timeout"):
            OrgaClient(api_key=API_KEY, user_email=EMAIL, timeout=timeout)
        with pytest.raises(ConfigurationError, match="timeout"):
            OrbitServer(SECRET_KEY, "http://127.0.0.1:9", timeout=timeout)


@pytest.mark.parametrize("expires_in", [0, -5, 1.5, float("nan"), True, "60"])
async def test_a_bad_expires_in_is_a_configuration_error_before_any_request(
    server: HostileServer, expires_in: object
) -> None:
    server.handler = body_reply(b'{"ephemeral_token": "t"}')
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        with pytest.raises(ConfigurationError, match="expires_in"):
            await orga.fetch_ephemeral_token(expires_in=expires_in)  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="candidates"):
            await orga.create_call(TOKEN, {"sdp": "v=0", "type": "offer"}, ["candidate:1 1 udp"])  # type: ignore[list-item]
        assert server.requests == 0
        assert await orga.fetch_ephemeral_token(expires_in=60) == "t" and server.requests == 1
