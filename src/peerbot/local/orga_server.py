"""An Orga-compatible realtime server on aiohttp, answering calls with the echo assistant or the
voice agent.

It serves the three routes of ``peerbot.orga.routes`` (one table for client and server) plus
``GET /healthz``, with the real API's status codes: 401 for a missing, wrong or expired
credential, 403 for the right kind of credential in the wrong place, 400 for a bad body or
offer, 408 for a body that does not arrive in time, 413 for an oversized body, 429 past a
call cap. Errors are JSON: ``{"error": {"code": …, "message": …}}``.
Orga's browser SDK posts calls straight from the page, so, like the real API, it answers CORS
preflights and lets any origin read every response, errors included (the credential travels in
``Authorization``, never in a cookie).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from aiohttp import web

from .._redact import redact
from ..errors import ConfigurationError, SdpError
from ..ice_servers import IceServer, InvalidIceServer, parse_ice_servers
from ..orga.params import SessionParams
from ..orga.routes import CALLS, CLIENT_SECRETS, ICE_CONFIG, ROUTES, Auth, Route
from ._assistant_call import AssistantCall
from ._fields import finite_number
from ._json_api import ApiError, Handler, allow_any_origin, bearer, json_errors, preflight, read_json_object
from ._listener import Listener
from ._offer import InvalidCallRequest, merge_candidates, parse_call_request
from .echo_assistant import EchoCall
from .tokens import (
    TokenClaims,
    _TokenRefused,
    issue_token,
    key_id,
    looks_like_token,
    turn_rest_credentials,
    verify_token,
)
from .voice_agent import AgentCall, check_agent_settings

log = logging.getLogger(__name__)

API_KEY_PREFIX = "orga_local_"
DEFAULT_PORT = 8765
MAX_BODY_SIZE = 256 * 1024
MAX_TOKEN_TTL = 3600.0  # the default cap on a token's lifetime
DEFAULT_ECHO_DELAY = 0.2  # seconds before the echo assistant replays what it heard
MIN_EXPIRES_IN = 1.0  # a client's ``expires_in`` below this makes a token dead on arrival
DEMO_USER_EMAIL = "you@peerbot.local"
ASSISTANTS = ("echo", "agent")
_Handler = Handler
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # the SDK's own "x@y.z" check


def generate_api_key() -> str:
    """A fresh random API key, ``orga_local_…``."""
    return API_KEY_PREFIX + secrets.token_urlsafe(24)


class LocalOrgaServer(Listener):
    """An Orga-compatible server with an assistant on the far side of each call.

    ``async with LocalOrgaServer() as server:`` starts it on a free port; ``server.base_url``,
    ``server.api_key`` and ``server.user_email`` (any valid address is accepted; this one is a
    demo) are what a client needs. ``ice_servers`` (dicts in the ``iceServers`` shape) are
    handed to clients and used by the server's own peer connections; ``turn_urls`` with
    ``turn_secret`` adds TURN REST credentials to both. ``server.calls`` maps each live call's
    conversation id to its call: an ``EchoCall``, or an ``AgentCall`` with ``assistant="agent"``.

    ``assistant="echo"`` (the default) plays each caller's audio back after ``echo_delay``;
    ``assistant="agent"`` answers like a voice agent (``local.voice_agent``): it waits for
    ``endpointing`` seconds of silence after the caller's speech, thinks for ``think_time``, then
    says what it recognised, and stops when the caller talks over it unless ``barge_in=False``.

    Bounds, each refused with a JSON error: ``max_body_size`` bytes of body (413);
    ``max_calls`` live calls in all (429) and ``max_calls_per_token`` per ephemeral token (429);
    ``read_timeout`` seconds for a request head or body to arrive (the connection is dropped,
    or 408); an idle keep-alive connection is closed after ``idle_timeout`` (``read_timeout``,
    at least 15 s).

    ``reflect=True`` answers with a reflecting call instead of the echo (``engine.Peer(reflect=True)``): each
    caller's RTP goes straight back undecoded, so the server is not the bottleneck of a load test.
    ``reuse_port`` with one ``token_secret`` lets several processes serve one port (``peerbot serve
    --processes``): the kernel spreads the connections, and a token from one is good in all.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ice_servers: Sequence[Mapping[str, Any]] | None = None,
        api_keys: Iterable[str] | None = None,
        token_ttl: float = 60.0,
        max_token_ttl: float = MAX_TOKEN_TTL,
        echo_delay: float = DEFAULT_ECHO_DELAY,
        turn_urls: str | Sequence[str] | None = None,
        turn_secret: str | None = None,
        turn_ttl: float = 86400.0,
        connect_timeout: float = 30.0,
        answer_timeout: float = 9.0,
        max_body_size: int = MAX_BODY_SIZE,
        max_calls: int = 32,
        max_calls_per_token: int = 4,
        read_timeout: float = 10.0,
        user_email: str = DEMO_USER_EMAIL,
        reflect: bool = False,
        reuse_port: bool = False,
        token_secret: bytes | None = None,
        assistant: str = "echo",
        endpointing: float = 0.5,
        think_time: float = 0.7,
        barge_in: bool = True,
    ) -> None:
        if assistant not in ASSISTANTS:
            raise ConfigurationError(f"assistant must be one of {', '.join(ASSISTANTS)}, got {assistant!r}")
        if reflect and assistant != "echo":
            raise ConfigurationError("reflect sends the caller's RTP straight back: it has no assistant to choose")
        endpointing, think_time, barge_in = check_agent_settings(endpointing, think_time, barge_in)
        keys = tuple(dict.fromkeys(api_keys or ()))  # keeps the caller's order; the first is api_key
        if any(not isinstance(k, str) or not k or not k.isascii() or looks_like_token(k) for k in keys):
            raise ConfigurationError("API keys must be non-empty ASCII strings that do not look like tokens")
        if (turn_urls is None) != (turn_secret is None):
            raise ConfigurationError("turn_urls and turn_secret go together")
        if token_ttl <= 0 or max_token_ttl < token_ttl:
            raise ConfigurationError("token_ttl must be positive and at most max_token_ttl")
        if max_calls < 1 or max_calls_per_token < 1 or read_timeout <= 0:
            raise ConfigurationError("max_calls, max_calls_per_token and read_timeout must be positive")
        if not _EMAIL.match(user_email):
            raise ConfigurationError("user_email must be a valid email address")
        try:
            ice = parse_ice_servers(list(ice_servers or ()), "ice_servers")
        except InvalidIceServer as exc:
            raise ConfigurationError(str(exc)) from None
        super().__init__(host, port, read_timeout=read_timeout, reuse_port=reuse_port)
        self.user_email = user_email
        self.echo_delay = echo_delay
        self.reflect = reflect
        self.assistant = assistant
        self.endpointing = endpointing
        self.think_time = think_time
        self.barge_in = barge_in
        self.token_ttl = token_ttl
        self.max_token_ttl = max_token_ttl
        self._api_keys = keys or (generate_api_key(),)
        self._ice_servers = ice
        self._turn_urls = [turn_urls] if isinstance(turn_urls, str) else list(turn_urls or ())
        self._turn_secret = turn_secret
        self._turn_ttl = turn_ttl
        self._connect_timeout = connect_timeout
        self._answer_timeout = answer_timeout
        # Tokens die with the server, by design; server processes sharing a port share the secret.
        self._token_secret = token_secret or secrets.token_bytes(32)
        self._calls: dict[str, AssistantCall] = {}
        self._call_tokens: dict[str, str] = {}  # conversation id -> the token id that created it
        self._max_calls = max_calls
        self._max_calls_per_token = max_calls_per_token
        self._stopping = False
        self.app = self._make_app(max_body_size)

    def __repr__(self) -> str:
        return f"LocalOrgaServer(base_url={self.base_url if self._port else None!r}, api_key={redact(self.api_key)!r})"

    # --- public surface --------------------------------------------------------------

    @property
    def api_key(self) -> str:
        """The first configured API key (the generated one when none was given)."""
        return self._api_keys[0]

    @property
    def api_keys(self) -> tuple[str, ...]:
        """Every API key the server accepts."""
        return self._api_keys

    @property
    def calls(self) -> Mapping[str, AssistantCall]:
        """Live calls by conversation id (read-only view)."""
        return MappingProxyType(self._calls)

    async def start(self) -> None:
        """Start listening."""
        self._stopping = False
        await super().start()
        log.info("local Orga server on %s (API key %s)", self.base_url, redact(self.api_key))

    async def stop(self) -> None:
        """Close every call's peer connection, then stop listening."""
        self._stopping = True
        await asyncio.gather(*(call.close() for call in list(self._calls.values())), return_exceptions=True)
        await super().stop()

    # --- wiring ----------------------------------------------------------------------

    def _make_app(self, max_body_size: int) -> web.Application:
        app = self.new_app(max_body_size, [json_errors])
        handlers: dict[Route, Callable[[web.Request, Any], Awaitable[web.StreamResponse]]] = {
            CLIENT_SECRETS: self._client_secrets,
            ICE_CONFIG: self._ice_config,
            CALLS: self._create_call,
        }
        for route in ROUTES:
            app.router.add_route(route.method, route.path, self._authenticated(route, handlers[route]))
            app.router.add_route("OPTIONS", route.path, preflight([route.method], "Authorization, Content-Type"))
        app.router.add_get("/healthz", self._healthz)
        app.on_response_prepare.append(allow_any_origin)
        return app

    def _authenticated(
        self, route: Route, handler: Callable[[web.Request, Any], Awaitable[web.StreamResponse]]
    ) -> _Handler:
        check = self._check_api_key if route.auth is Auth.API_KEY else self._check_token

        async def authenticated(request: web.Request) -> web.StreamResponse:
            return await handler(request, check(bearer(request)))

        return authenticated

    def _is_api_key(self, credential: str) -> bool:
        return any(hmac.compare_digest(credential, key) for key in self._api_keys)  # both ASCII

    def _check_api_key(self, credential: str) -> str:
        if self._is_api_key(credential):
            return credential
        if looks_like_token(credential):
            raise ApiError(
                403, "invalid_credential_context", "an ephemeral token cannot be used here; send the API key"
            )
        raise ApiError(401, "invalid_api_key", "invalid API key")

    def _check_token(self, credential: str) -> TokenClaims:
        if self._is_api_key(credential):
            raise ApiError(403, "invalid_credential_context", "an API key cannot be used here; send an ephemeral token")
        try:
            return verify_token(self._token_secret, credential)
        except _TokenRefused as exc:
            if exc.expired:
                raise ApiError(401, "token_expired", "the ephemeral token has expired; request a new one") from None
            raise ApiError(401, "invalid_token", "invalid ephemeral token") from None

    def _ice_servers_for(self, user: str) -> list[IceServer]:
        servers = [IceServer(**s) for s in self._ice_servers]
        if self._turn_urls and self._turn_secret:
            username, credential = turn_rest_credentials(self._turn_secret, user, self._turn_ttl)
            servers.append(IceServer(urls=list(self._turn_urls), username=username, credential=credential))
        return servers

    def _forget(self, call: AssistantCall) -> None:
        self._calls.pop(call.conversation_id, None)
        self._call_tokens.pop(call.conversation_id, None)

    def _admit_call(self, token_id: str) -> None:
        if self._stopping:
            raise ApiError(503, "shutting_down", "the server is stopping")
        if len(self._calls) >= self._max_calls:
            raise ApiError(429, "too_many_calls", f"the server holds its maximum of {self._max_calls} live calls")
        if sum(1 for t in self._call_tokens.values() if t == token_id) >= self._max_calls_per_token:
            raise ApiError(429, "too_many_calls_for_token",
                           f"this token already has {self._max_calls_per_token} live calls; end one first")

    def _new_call(self, params: SessionParams, user: str) -> AssistantCall:
        ice_servers = self._ice_servers_for(user)
        if self.assistant == "agent":
            return AgentCall(params, ice_servers=ice_servers, endpointing=self.endpointing,
                             think_time=self.think_time, barge_in=self.barge_in,
                             connect_timeout=self._connect_timeout, on_closed=self._forget)
        return EchoCall(params, ice_servers=ice_servers, echo_delay=self.echo_delay,
                        connect_timeout=self._connect_timeout, on_closed=self._forget, reflect=self.reflect)

    # --- handlers --------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "calls": len(self._calls)})

    async def _client_secrets(self, request: web.Request, api_key: str) -> web.Response:
        email = request.query.get("email", "")
        if not _EMAIL.match(email):
            raise ApiError(401, "invalid_email", "'email' must be a valid email address")
        ttl = self.token_ttl
        expires_in = (await read_json_object(request, optional=True)).get("expires_in")
        if expires_in is not None:
            seconds = finite_number(expires_in)
            if seconds is None or seconds < MIN_EXPIRES_IN:
                # Above the cap it is shortened (a token is still usable); below a second it would be dead.
                raise ApiError(400, "invalid_request",
                               f"'expires_in' must be a number of seconds, at least {MIN_EXPIRES_IN:g}"
                               f" (longer ones are cut to {self.max_token_ttl:g})")
            ttl = min(seconds, self.max_token_ttl)
        token = issue_token(self._token_secret, email, ttl, key_id=key_id(api_key))
        return web.json_response({"ephemeral_token": token, "expires_in": int(ttl) if ttl == int(ttl) else ttl})

    async def _ice_config(self, request: web.Request, claims: TokenClaims) -> web.Response:
        return web.json_response({"iceServers": self._ice_servers_for(claims.subject)})

    async def _create_call(self, request: web.Request, claims: TokenClaims) -> web.Response:
        self._admit_call(claims.token_id)
        try:
            call_request = parse_call_request(await read_json_object(request))
            offer_sdp = merge_candidates(call_request.sdp, call_request.candidates)
        except InvalidCallRequest as exc:
            raise ApiError(400, exc.code, exc.message) from exc
        call = self._new_call(call_request.params, claims.subject)
        # Listed before answering, so that stop() also closes a call still being answered.
        self._calls[call.conversation_id] = call
        self._call_tokens[call.conversation_id] = claims.token_id
        try:
            answer_sdp = await asyncio.wait_for(call.answer(offer_sdp), self._answer_timeout)
        except SdpError as exc:
            await call.close()
            raise ApiError(400, "invalid_sdp", str(exc)) from exc
        except asyncio.TimeoutError as exc:
            await call.close()
            raise ApiError(504, "answer_timeout", "no answer within the time limit (ICE gathering stalled?)") from exc
        except BaseException:
            await call.close()
            raise
        log.info("call %s answered", call.conversation_id)
        return web.json_response(
            {"answer": {"sdp": answer_sdp, "type": "answer"}, "conversation_id": call.conversation_id}
        )
