"""OrgaClient against a real HTTP server on loopback that misbehaves on demand.

The server (aiohttp) serves the routes from ``peerbot.orga.routes``, records every request it
gets, and answers as the official API does unless a test tells a route to misbehave.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web

from peerbot.errors import ConfigurationError, OrgaAIAuthenticationError, OrgaAIError, OrgaAIServerError
from peerbot.orga import routes
from peerbot.orga.client import OrgaClient, SessionConfig
from peerbot.orga.params import SessionParams
from peerbot.orga.routes import Route

API_KEY = "sk_live_APIKEYSECRET_0123456789abcdef"
TOKEN = "eph_TOKENSECRET_abcdefghijklmnopqrstuv"
TURN_CREDENTIAL = "turn_CREDSECRET_0433deadbeef"
SECRET_MARKERS = ("APIKEYSECRET", "TOKENSECRET", "CREDSECRET")
EMAIL = "dev+bot@example.com"
OFFER_SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
ANSWER_SDP = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=answer\r\nt=0 0\r\n"
CANDIDATE = {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# --- the misbehaving server ------------------------------------------------------------


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]
    body: Any


class FakeOrgaServer:
    """Serves every route in ``routes.ROUTES``; ``misbehave(route, handler)`` overrides one."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.overrides: dict[Route, Handler] = {}
        self.release = asyncio.Event()  # set at teardown so slow handlers finish
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        for route in routes.ROUTES:
            app.router.add_route(route.method, route.path, self._handler(route))
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        self.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def misbehave(self, route: Route, handler: Handler) -> None:
        self.overrides[route] = handler

    def _handler(self, route: Route) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read()
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
            self.requests.append(
                Received(
                    request.method, request.path, dict(request.query), request.query_string, dict(request.headers), body
                )
            )
            return await self.overrides.get(route, DEFAULT_HANDLERS[route])(request)

        return handle


def json_reply(body: Any, status: int = 200) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handle


def text_reply(text: str, status: int = 200, content_type: str = "text/html") -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        return web.Response(text=text, status=status, content_type=content_type)

    return handle


def echo_credential_reply(status: int) -> Handler:
    """An error whose message quotes the Authorization header back, as careless servers do."""

    async def handle(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        return web.json_response({"error": {"message": f"credential {auth} rejected"}}, status=status)

    return handle


def echo_credential_html_reply(status: int) -> Handler:
    """A non-JSON error page that quotes the Authorization header back."""

    async def handle(request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        return web.Response(text=f"<p>denied: {auth}</p>", status=status, content_type="text/html")

    return handle


def slow_reply(server: FakeOrgaServer, seconds: float = 5.0) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            await asyncio.wait_for(server.release.wait(), seconds)
        except TimeoutError:
            pass
        return web.json_response({"ephemeral_token": TOKEN})

    return handle


DEFAULT_HANDLERS: dict[Route, Handler] = {
    routes.CLIENT_SECRETS: json_reply({"ephemeral_token": TOKEN, "expires_in": 60}),
    routes.ICE_CONFIG: json_reply(
        {
            "iceServers": [
                {"urls": "stun:stun.example.org:3478"},
                {"urls": ["turn:turn.example.org:3478"], "username": "6b4c", "credential": TURN_CREDENTIAL},
            ]
        }
    ),
    routes.CALLS: json_reply({"answer": {"sdp": ANSWER_SDP, "type": "answer"}, "conversation_id": "conv_42"}),
}


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORGA_API_KEY", "ORGA_USER_EMAIL", "ORGA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def server() -> AsyncIterator[FakeOrgaServer]:
    fake = FakeOrgaServer()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def client(server: FakeOrgaServer) -> AsyncIterator[OrgaClient]:
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        yield orga


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secrets(*texts: str) -> None:
    for text in texts:
        for marker in SECRET_MARKERS:
            assert marker not in text, f"secret {marker!r} leaked into: {text!r}"


# --- configuration ---------------------------------------------------------------------


async def test_missing_api_key_raises_configuration_error_before_any_request(server: FakeOrgaServer) -> None:
    with pytest.raises(ConfigurationError, match="ORGA_API_KEY"):
        OrgaClient(user_email=EMAIL, base_url=server.url)
    assert server.requests == []


async def test_missing_email_raises_configuration_error_before_any_request(server: FakeOrgaServer) -> None:
    with pytest.raises(ConfigurationError, match="ORGA_USER_EMAIL"):
        OrgaClient(api_key=API_KEY, base_url=server.url)
    assert server.requests == []


@pytest.mark.parametrize("bad_email", ["no-at-sign", "user@host", "@example.com", "user@.", "a b@example.com"])
async def test_email_not_like_x_at_y_dot_z_is_refused_before_any_request(
    server: FakeOrgaServer, bad_email: str
) -> None:
    with pytest.raises(ConfigurationError, match="not a valid email"):
        OrgaClient(api_key=API_KEY, user_email=bad_email, base_url=server.url)
    assert server.requests == []


async def test_swapped_key_and_email_error_does_not_print_the_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        OrgaClient(api_key=EMAIL, user_email=API_KEY)
    assert_no_secrets(str(caught.value), repr(caught.value))


@pytest.mark.parametrize("timeout", [0, -1.0])
async def test_non_positive_timeout_is_a_configuration_error(timeout: float) -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        OrgaClient(api_key=API_KEY, user_email=EMAIL, timeout=timeout)


async def test_base_url_without_http_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="base URL"):
        OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url="ftp://example.org")


async def test_environment_supplies_key_email_and_base_url(
    server: FakeOrgaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGA_API_KEY", API_KEY)
    monkeypatch.setenv("ORGA_USER_EMAIL", EMAIL)
    monkeypatch.setenv("ORGA_BASE_URL", server.url + "/")
    async with OrgaClient() as orga:
        assert await orga.fetch_ephemeral_token() == TOKEN
    (seen,) = server.requests
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.query == {"email": EMAIL}


async def test_arguments_take_precedence_over_environment(
    server: FakeOrgaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORGA_API_KEY", "sk_env_key_not_this_one_000000")
    monkeypatch.setenv("ORGA_USER_EMAIL", "env@example.org")
    monkeypatch.setenv("ORGA_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        await orga.fetch_ephemeral_token()
    (seen,) = server.requests
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.query == {"email": EMAIL}


async def test_base_url_defaults_to_orga_cloud() -> None:
    orga = OrgaClient(api_key=API_KEY, user_email=EMAIL)
    try:
        assert orga.base_url == routes.DEFAULT_BASE_URL
    finally:
        await orga.aclose()


async def test_async_with_closes_the_http_client(server: FakeOrgaServer) -> None:
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url) as orga:
        assert not orga.is_closed
    assert orga.is_closed


# --- request shape ---------------------------------------------------------------------


async def test_fetch_ephemeral_token_posts_api_key_and_url_encoded_email(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    token = await client.fetch_ephemeral_token()

    assert token == TOKEN
    (seen,) = server.requests
    assert (seen.method, seen.path) == (routes.CLIENT_SECRETS.method, routes.CLIENT_SECRETS.path)
    # A raw '+' would decode to a space on the server; httpx leaves '@' as is, which is legal in a query.
    assert seen.raw_query.startswith("email=dev%2Bbot") and "+" not in seen.raw_query
    assert seen.query == {"email": EMAIL}
    assert seen.headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body == {}


async def test_fetch_ephemeral_token_sends_expires_in_when_given(client: OrgaClient, server: FakeOrgaServer) -> None:
    await client.fetch_ephemeral_token(expires_in=30)
    assert server.requests[0].body == {"expires_in": 30}


async def test_fetch_ice_servers_uses_the_token_and_normalises_urls_to_lists(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    servers = await client.fetch_ice_servers(TOKEN)

    assert servers == [
        {"urls": ["stun:stun.example.org:3478"]},
        {"urls": ["turn:turn.example.org:3478"], "username": "6b4c", "credential": TURN_CREDENTIAL},
    ]
    (seen,) = server.requests
    assert (seen.method, seen.path) == (routes.ICE_CONFIG.method, routes.ICE_CONFIG.path)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_get_session_config_fetches_token_then_ice_servers_with_that_token(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    config = await client.get_session_config()

    assert config.ephemeral_token == TOKEN
    assert [s["urls"] for s in config.ice_servers] == [["stun:stun.example.org:3478"], ["turn:turn.example.org:3478"]]
    assert [(r.method, r.path) for r in server.requests] == [
        (routes.CLIENT_SECRETS.method, routes.CLIENT_SECRETS.path),
        (routes.ICE_CONFIG.method, routes.ICE_CONFIG.path),
    ]
    assert server.requests[1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert config.to_json() == {"ephemeralToken": TOKEN, "iceServers": config.ice_servers}


async def test_create_call_posts_offer_candidates_and_default_params(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    answer, conversation_id = await client.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE])

    assert answer == {"sdp": ANSWER_SDP, "type": "answer"}
    assert conversation_id == "conv_42"
    (seen,) = server.requests
    assert (seen.method, seen.path) == (routes.CALLS.method, routes.CALLS.path)
    assert seen.headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.body == {
        "offer": {"sdp": OFFER_SDP, "type": "offer", "candidates": [CANDIDATE]},
        "params": {
            "voice": "alloy",
            "model": "orga-1-beta",
            "temperature": 0.5,
            "return_transcription": False,
            "instructions": None,
            "modalities": ["audio", "video"],
            "history": True,
        },
    }


async def test_create_call_accepts_an_offer_object_and_a_partial_params_dict(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    offer = SimpleNamespace(sdp=OFFER_SDP, type="offer")  # shaped like aiortc's RTCSessionDescription

    await client.create_call(TOKEN, offer, [], {"voice": "ash", "modalities": ["audio"]})

    body = server.requests[0].body
    assert body["offer"] == {"sdp": OFFER_SDP, "type": "offer", "candidates": []}
    assert body["params"]["voice"] == "ash"
    assert body["params"]["modalities"] == ["audio"]
    assert body["params"]["model"] == "orga-1-beta"  # untouched defaults still sent


async def test_create_call_sends_session_params_as_given(client: OrgaClient, server: FakeOrgaServer) -> None:
    params = SessionParams(voice="nova", temperature=0.2, instructions="Be brief.", return_transcription=True)

    await client.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE], params)

    assert server.requests[0].body["params"] == params.to_json()


@pytest.mark.parametrize(
    ("offer", "params", "match"),
    [
        ({"sdp": OFFER_SDP, "type": "offer"}, {"voice": "robot"}, "unknown voice"),
        ({"sdp": OFFER_SDP, "type": "offer"}, {"temperature": 3}, "temperature"),
        ({"sdp": OFFER_SDP, "type": "offer"}, {"colour": "blue"}, "unknown session parameter"),
        ({"sdp": OFFER_SDP, "type": "answer"}, None, "needs an SDP offer"),
        ({"type": "offer"}, None, "non-empty 'sdp'"),
    ],
)
async def test_create_call_refuses_bad_offer_or_params_before_any_request(
    client: OrgaClient, server: FakeOrgaServer, offer: dict[str, Any], params: dict[str, Any] | None, match: str
) -> None:
    with pytest.raises(ConfigurationError, match=match):
        await client.create_call(TOKEN, offer, [CANDIDATE], params)
    assert server.requests == []


async def test_empty_token_is_refused_before_any_request(client: OrgaClient, server: FakeOrgaServer) -> None:
    with pytest.raises(ConfigurationError, match="ephemeral token"):
        await client.fetch_ice_servers("")
    assert server.requests == []


# --- HTTP errors -----------------------------------------------------------------------


async def test_401_on_client_secrets_is_an_authentication_error_with_the_server_message(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    server.misbehave(routes.CLIENT_SECRETS, json_reply({"error": {"message": "Invalid API key"}}, status=401))

    with pytest.raises(OrgaAIAuthenticationError) as caught:
        await client.fetch_ephemeral_token()

    error = caught.value
    assert (error.status, error.code) == (401, "AUTHENTICATION_ERROR")
    assert "API key" in error.message and "Invalid API key" in error.message
    assert routes.CLIENT_SECRETS.path in error.message


async def test_403_is_an_authentication_error_saying_the_credential_was_in_the_wrong_place(
    client: OrgaClient, server: FakeOrgaServer
) -> None:
    server.misbehave(routes.ICE_CONFIG, json_reply({"message": "invalid credential context"}, status=403))

    with pytest.raises(OrgaAIAuthenticationError) as caught:
        await client.fetch_ice_servers(TOKEN)

    error = caught.value
    assert error.status == 403
    assert "wrong place" in error.message
    assert "takes the ephemeral token, not the API key" in error.message
    assert "invalid credential context" in error.message


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (500, {"error": {"message": "database on fire"}}, "database on fire"),
        (400, {"message": "offer.sdp is required"}, "offer.sdp is required"),
        (502, {"error": "bad gateway upstream"}, "bad gateway upstream"),
    ],
)
async def test_other_non_2xx_is_a_server_error_with_status_and_server_message(
    client: OrgaClient, server: FakeOrgaServer, status: int, body: dict[str, Any], expected: str
) -> None:
    server.misbehave(routes.CALLS, json_reply(body, status=status))

    with pytest.raises(OrgaAIServerError) as caught:
        await client.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE])

    error = caught.value
    assert not isinstance(error, OrgaAIAuthenticationError)
    assert (error.status, error.code) == (status, "SERVER_ERROR")
    assert str(status) in error.message and expected in error.message


async def test_non_2xx_with_html_body_quotes_a_short_snippet(client: OrgaClient, server: FakeOrgaServer) -> None:
    server.misbehave(routes.CLIENT_SECRETS, text_reply("<h1>Service Unavailable</h1>" + "x" * 5000, status=503))

    with pytest.raises(OrgaAIServerError) as caught:
        await client.fetch_ephemeral_token()

    assert caught.value.status == 503
    assert "Service Unavailable" in caught.value.message
    assert len(caught.value.message) < 400


async def test_slow_server_times_out_as_server_error_naming_the_endpoint(server: FakeOrgaServer) -> None:
    server.misbehave(routes.CLIENT_SECRETS, slow_reply(server))
    loop = asyncio.get_running_loop()

    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url, timeout=0.2) as orga:
        started = loop.time()
        with pytest.raises(OrgaAIServerError) as caught:
            await orga.fetch_ephemeral_token()
        waited = loop.time() - started

    error = caught.value
    assert (error.status, error.code) == (0, "SERVER_ERROR")
    assert "timed out after 0.2 s" in error.message
    assert f"POST {server.url}{routes.CLIENT_SECRETS.path}" in error.message
    assert waited < 3.0  # gave up long before the server's 5 s


async def test_create_call_times_out_as_server_error(server: FakeOrgaServer) -> None:
    server.misbehave(routes.CALLS, slow_reply(server))

    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url, timeout=0.2) as orga:
        with pytest.raises(OrgaAIServerError, match=r"timed out after 0\.2 s .*/v1/realtime/calls"):
            await orga.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE])


async def test_closed_port_is_an_unreachable_server_error_with_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}"

    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=url) as orga:
        with pytest.raises(OrgaAIServerError) as caught:
            await orga.fetch_ephemeral_token()

    error = caught.value
    assert (error.status, error.code) == (0, "SERVER_ERROR")
    assert "unreachable" in error.message
    assert f"{url}{routes.CLIENT_SECRETS.path}" in error.message
    assert EMAIL not in error.message  # the query stays out of messages
    assert_no_secrets(str(error), repr(error))


async def test_unresolvable_host_is_a_server_error_naming_the_host() -> None:
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url="http://orga.invalid", timeout=3) as orga:
        with pytest.raises(OrgaAIServerError) as caught:
            await orga.fetch_ephemeral_token()

    assert "orga.invalid" in caught.value.message
    assert_no_secrets(str(caught.value))


async def test_base_url_credentials_are_hidden_from_messages_and_repr() -> None:
    url = f"http://admin:pwSECRET@127.0.0.1:{closed_port()}"

    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=url) as orga:
        with pytest.raises(OrgaAIServerError) as caught:
            await orga.fetch_ephemeral_token()

    assert "pwSECRET" not in caught.value.message
    assert "pwSECRET" not in repr(orga)


# --- malformed 2xx responses -----------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "reply", "expected"),
    [
        (routes.CLIENT_SECRETS, text_reply("<html>ok</html>"), "is not JSON"),
        (routes.CLIENT_SECRETS, json_reply(["ephemeral_token"]), "not a JSON object"),
        (routes.CLIENT_SECRETS, json_reply({"token": TOKEN}), "missing the field 'ephemeral_token'"),
        (routes.CLIENT_SECRETS, json_reply({"ephemeralToken": TOKEN}), "missing the field 'ephemeral_token'"),
        (routes.ICE_CONFIG, json_reply({"ice_servers": []}), "missing the field 'iceServers'"),
        (routes.ICE_CONFIG, json_reply({"iceServers": [{"username": "u"}]}), "iceServers[0].urls"),
        (routes.ICE_CONFIG, json_reply({"iceServers": [{"urls": ["stun:a", 7]}]}), "iceServers[0].urls"),
        (routes.ICE_CONFIG, json_reply({"iceServers": [{"urls": "turn:a", "credential": 5}]}), "credential must be"),
        (routes.ICE_CONFIG, json_reply({"iceServers": ["stun:a"]}), "iceServers[0] is not an object"),
        (routes.CALLS, json_reply({"conversation_id": "c1"}), "missing the field 'answer'"),
        (routes.CALLS, json_reply({"answer": {"type": "answer"}, "conversation_id": "c1"}), "field 'answer.sdp'"),
        (routes.CALLS, json_reply({"answer": {"sdp": ANSWER_SDP, "type": "offer"}, "conversation_id": "c1"}), "answer.type"),
        (routes.CALLS, json_reply({"answer": {"sdp": ANSWER_SDP, "type": "answer"}}), "field 'conversation_id'"),
    ],
)
async def test_malformed_success_response_is_a_server_error_naming_the_field(
    client: OrgaClient, server: FakeOrgaServer, route: Route, reply: Handler, expected: str
) -> None:
    server.misbehave(route, reply)

    with pytest.raises(OrgaAIServerError) as caught:
        await call_route(client, route)

    assert expected in caught.value.message
    assert route.path in caught.value.message
    assert caught.value.status == 200


async def call_route(client: OrgaClient, route: Route) -> object:
    if route is routes.CLIENT_SECRETS:
        return await client.fetch_ephemeral_token()
    if route is routes.ICE_CONFIG:
        return await client.fetch_ice_servers(TOKEN)
    return await client.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE])


# --- secrets ---------------------------------------------------------------------------


async def test_repr_of_client_shows_only_a_redacted_key(client: OrgaClient) -> None:
    text = repr(client)
    assert_no_secrets(text)
    assert "sk_live_" in text and EMAIL in text


async def test_repr_of_session_config_redacts_token_and_turn_credential(client: OrgaClient) -> None:
    config = await client.get_session_config()
    text = repr(config)
    assert_no_secrets(text, str(config))
    assert "turn:turn.example.org:3478" in text
    assert isinstance(config, SessionConfig)


@pytest.mark.parametrize("route", routes.ROUTES, ids=lambda r: r.path.rsplit("/", 1)[-1])
@pytest.mark.parametrize(
    "misbehaviour",
    ["401-echo", "403-echo", "500-echo", "html-echo", "missing-field", "ok"],
)
async def test_secrets_never_reach_errors_or_debug_logs(
    client: OrgaClient,
    server: FakeOrgaServer,
    caplog: pytest.LogCaptureFixture,
    route: Route,
    misbehaviour: str,
) -> None:
    replies: dict[str, Handler] = {
        "401-echo": echo_credential_reply(401),
        "403-echo": echo_credential_reply(403),
        "500-echo": echo_credential_reply(500),
        "html-echo": echo_credential_html_reply(502),
        "missing-field": json_reply({"unrelated": True}),
    }
    if misbehaviour in replies:
        server.misbehave(route, replies[misbehaviour])
    caplog.set_level(logging.DEBUG)

    error: OrgaAIError | None = None
    try:
        await call_route(client, route)
    except OrgaAIError as exc:
        error = exc

    assert (error is None) == (misbehaviour == "ok")
    if misbehaviour.endswith("echo"):
        assert error is not None and "Bearer " in error.message  # the server's words kept, the secret redacted
    texts = [caplog.text, repr(client)]
    if error is not None:
        texts += [str(error), repr(error), error.message]
    assert_no_secrets(*texts)
    assert "Authorization: Bearer" in caplog.text  # the request was logged, redacted
    assert len(server.requests) == 1


async def test_timeout_and_unreachable_errors_leak_no_secrets_into_logs(
    server: FakeOrgaServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.misbehave(routes.ICE_CONFIG, slow_reply(server))
    messages: list[str] = []

    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=server.url, timeout=0.2) as orga:
        with pytest.raises(OrgaAIServerError) as slow:
            await orga.fetch_ice_servers(TOKEN)
        messages += [str(slow.value), repr(slow.value)]
    async with OrgaClient(api_key=API_KEY, user_email=EMAIL, base_url=f"http://127.0.0.1:{closed_port()}") as orga:
        with pytest.raises(OrgaAIServerError) as refused:
            await orga.create_call(TOKEN, {"sdp": OFFER_SDP, "type": "offer"}, [CANDIDATE])
        messages += [str(refused.value), repr(refused.value)]

    assert "timed out" in messages[0] and "unreachable" in messages[2]
    assert_no_secrets(caplog.text, *messages)
