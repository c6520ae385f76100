"""An Orbit-compatible signalling server on aiohttp: users, user tokens, calls and the event WebSocket.

Its handlers are registered from ``peerbot.orbit.routes`` (the client's table too), so the two
cannot drift. Users and calls live in memory and die with the server, as do the tokens (signed
with a per-process secret). Errors are JSON, ``{"error": {"code", "message"}}``: 400 for a
malformed body, 401 for a missing, wrong or expired credential, 403 for a publishable key that
does not match or a user who is not a party of the call, 404 for unknown ids, 409 for a call in
the wrong state, 413 for an oversized body.

The calls routes take either the secret key with ``X-App-User-Id`` or a user token with
``X-Client-Id``. The WebSocket closes with 4001 when its token expires; events for a user who is
not connected are kept ``event_buffer_ttl`` seconds for the next connection. Browser participants
call it from their own origin, so it answers CORS preflights and lets any origin read every
response, errors included (credentials travel in headers, never in cookies).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from aiohttp import WSCloseCode, web

from .._redact import redact
from ..errors import ConfigurationError
from ..orbit import routes
from ..orbit.models import Call, MalformedResponse, Token, TurnCredentials
from ..orbit.routes import Auth, Route
from ._listener import Listener, serve_until_signal
from ._json_api import ApiError, allow_any_origin, bearer, json_errors, preflight, read_json_object
from ._orbit_hub import EventHub
from ._orbit_state import CallBook, Directory
from .tokens import (
    ExpiredTokenError,
    TokenClaims,
    TokenError,
    issue_token,
    key_id,
    looks_like_token,
    turn_rest_credentials,
    verify_token,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 8766
MAX_BODY_SIZE = 256 * 1024
_MAX_TEXT = 256


def generate_secret_key() -> str:
    return "sk_test_" + secrets.token_urlsafe(24)


def generate_publishable_key() -> str:
    return "pk_test_" + secrets.token_urlsafe(16)


@dataclass(frozen=True)
class Actor:
    """Who a request acts as: the user (``None`` on the users routes) and the app's key id."""

    user_id: str | None
    key_id: str


_RouteHandler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
_CORS_HEADERS = ", ".join(("Authorization", "Content-Type", routes.CLIENT_ID_HEADER, routes.ACTING_USER_HEADER))


class LocalOrbitServer(Listener):
    """An Orbit-compatible signalling server for tests and local use.

    ``async with LocalOrbitServer() as server:`` starts it on a free port; ``server.base_url``,
    ``server.secret_key`` and ``server.publishable_key`` are what clients need. ``secret_keys``
    and ``publishable_keys`` pair up one to one (one app each); missing ones are generated.
    ``turn_urls`` with ``turn_secret`` add TURN REST credentials to ``turn-credentials``, after the
    fixed ``ice_servers``. ``ring_timeout`` seconds after it was initiated, an unanswered call is missed.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        secret_keys: Iterable[str] | None = None,
        publishable_keys: Iterable[str] | None = None,
        ring_timeout: float = 30.0,
        turn_urls: str | Sequence[str] | None = None,
        turn_secret: str | None = None,
        ice_servers: Sequence[Mapping[str, Any]] | None = None,
        turn_ttl: int = 86400,
        event_buffer_ttl: float = 30.0,
        max_body_size: int = MAX_BODY_SIZE,
    ) -> None:
        if (turn_urls is None) != (turn_secret is None):
            raise ConfigurationError("turn_urls and turn_secret go together")
        if ring_timeout <= 0 or event_buffer_ttl < 0:
            raise ConfigurationError("ring_timeout must be positive and event_buffer_ttl not negative")
        super().__init__(host, port)
        self.ring_timeout = float(ring_timeout)
        self._secret_keys, self._publishable_keys = _key_pairs(secret_keys, publishable_keys)
        self._apps = {key_id(sk): pk for sk, pk in zip(self._secret_keys, self._publishable_keys)}
        self._ice_servers = _valid_ice_servers(ice_servers or ())
        self._turn_urls = [turn_urls] if isinstance(turn_urls, str) else list(turn_urls or ())
        self._turn_secret = turn_secret
        self._turn_ttl = int(turn_ttl)
        self._token_secret = secrets.token_bytes(32)  # tokens die with the server, by design
        self._users = Directory()
        self._calls = CallBook()
        self._hub = EventHub(event_buffer_ttl)
        self._ringing: dict[str, asyncio.Task[None]] = {}
        self._live: dict[web.WebSocketResponse, tuple[str, web.BaseRequest]] = {}
        self.app = self._make_app(max_body_size)

    def __repr__(self) -> str:
        url = self.base_url if self._port else None
        return f"LocalOrbitServer(base_url={url!r}, secret_key={redact(self.secret_key)!r})"

    # --- public surface --------------------------------------------------------------

    @property
    def secret_key(self) -> str:
        """The first app's secret key (a backend's ``ORBIT_SECRET_KEY``)."""
        return self._secret_keys[0]

    @property
    def publishable_key(self) -> str:
        """The first app's publishable key (a participant's ``client_id``)."""
        return self._publishable_keys[0]

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return self._secret_keys

    @property
    def publishable_keys(self) -> tuple[str, ...]:
        return self._publishable_keys

    @property
    def calls(self) -> Mapping[str, Call]:
        """Every call by id, in its current state (read-only view)."""
        return MappingProxyType(self._calls.calls)

    def connections(self, user_id: str) -> int:
        """How many event WebSockets ``user_id`` has open."""
        return sum(1 for user, _ in self._live.values() if user == user_id)

    async def drop_connections(self, user_id: str | None = None) -> int:
        """Cut event WebSockets (a user's, or all) without a closing handshake, as a network drop would."""
        dropped = [(ws, req) for ws, (user, req) in self._live.items() if user_id in (None, user)]
        for _, request in dropped:
            if request.transport is not None:
                request.transport.abort()
        return len(dropped)

    async def start(self) -> None:
        """Start listening."""
        await super().start()
        log.info("local Orbit server on %s (secret key %s)", self.base_url, redact(self.secret_key))

    async def stop(self) -> None:
        """Stop the ring timers, close every event WebSocket (1001), then stop listening."""
        for task in self._ringing.values():
            task.cancel()
        self._ringing.clear()
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping") for ws in list(self._live)),
            return_exceptions=True,
        )
        await super().stop()

    # --- wiring ----------------------------------------------------------------------

    def _make_app(self, max_body_size: int) -> web.Application:
        app = web.Application(client_max_size=max_body_size, middlewares=[json_errors])
        handlers: dict[Route, _RouteHandler] = {
            routes.USERS_CREATE: self._users_create,
            routes.USERS_LIST: self._users_list,
            routes.USERS_GET: self._users_get,
            routes.USERS_GET_BY_EXTERNAL_ID: self._users_get_by_external_id,
            routes.USERS_UPDATE: self._users_update,
            routes.USERS_DEACTIVATE: self._users_deactivate,
            routes.USERS_CREATE_TOKEN: self._users_create_token,
            routes.CALLS_INITIATE: self._calls_initiate,
            routes.CALLS_ACCEPT: self._calls_accept,
            routes.CALLS_REJECT: self._calls_reject,
            routes.CALLS_END: self._calls_end,
            routes.CALLS_WEBRTC_TOKEN: self._calls_webrtc_token,
            routes.CALLS_TURN_CREDENTIALS: self._calls_turn_credentials,
            routes.CALLS_SUBMIT_OFFER: self._calls_offer,
            routes.CALLS_SUBMIT_ANSWER: self._calls_answer,
            routes.CALLS_ADD_ICE_CANDIDATE: self._calls_ice_candidate,
            routes.CALLS_SUBMIT_METRICS: self._calls_submit_metrics,
            routes.CALLS_GET_METRICS: self._calls_get_metrics,
            routes.CALLS_TOGGLE_RECORD: self._calls_toggle_record,
            routes.CALLS_LIST_RECORDINGS: self._calls_list_recordings,
        }
        methods: dict[str, list[str]] = {}
        for route in routes.REST_ROUTES:
            app.router.add_route(route.method, route.template, self._authenticated(route, handlers[route]))
            methods.setdefault(route.template, []).append(route.method)
        for template, allowed in methods.items():  # one preflight per path, naming all its methods
            app.router.add_route("OPTIONS", template, preflight(allowed, _CORS_HEADERS))
        app.router.add_route(routes.EVENTS.method, routes.EVENTS.template, self._events)
        app.router.add_get("/healthz", self._healthz)
        app.on_response_prepare.append(allow_any_origin)
        return app

    def _authenticated(
        self, route: Route, handler: _RouteHandler
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def authenticated(request: web.Request) -> web.StreamResponse:
            return await handler(request, self._authenticate(request, route))

        return authenticated

    def _authenticate(self, request: web.Request, route: Route) -> Actor:
        credential = bearer(request)
        app = self._secret_key_id(credential)
        if app is not None:
            user_id = None
            if route.acting_user:
                acting = request.headers.get(routes.ACTING_USER_HEADER, "").strip()
                if not acting:
                    raise ApiError(
                        400, "missing_acting_user", f"send the acting user's id in {routes.ACTING_USER_HEADER}"
                    )
                user_id = self._users.active(acting).id
            return Actor(user_id, app)
        if Auth.USER_TOKEN not in route.auth:
            if looks_like_token(credential):
                raise ApiError(403, "secret_key_required", "a user token cannot be used here; send the secret key")
            raise ApiError(401, "invalid_secret_key", "invalid secret key")
        claims = self._verify_user_token(credential, request.headers.get(routes.CLIENT_ID_HEADER))
        acting = request.headers.get(routes.ACTING_USER_HEADER)
        if acting and acting != claims.subject:
            raise ApiError(403, "acting_user_mismatch", f"a user token acts as its own user, not as {acting!r}")
        return Actor(claims.subject, claims.key_id)

    def _secret_key_id(self, credential: str) -> str | None:
        """The app's key id when ``credential`` is one of the secret keys."""
        for key in self._secret_keys:
            if hmac.compare_digest(credential.encode(), key.encode()):
                return key_id(key)
        return None

    def _verify_user_token(self, token: str, client_id: str | None) -> TokenClaims:
        if self._secret_key_id(token) is not None:
            raise ApiError(401, "invalid_token", "that is the secret key, not a user token: keep it on the backend")
        try:
            claims = verify_token(self._token_secret, token)
        except ExpiredTokenError as exc:
            raise ApiError(401, "token_expired", "the user token has expired; request a new one") from exc
        except TokenError as exc:
            raise ApiError(401, "invalid_token", "invalid user token") from exc
        if not client_id:
            raise ApiError(401, "missing_client_id", f"send the publishable key ({routes.CLIENT_ID_HEADER}, client_id)")
        if not hmac.compare_digest(client_id.encode(), self._apps.get(claims.key_id, "").encode()):
            raise ApiError(403, "client_id_mismatch", "the publishable key is not of the app that issued the token")
        try:
            user = self._users.get(claims.subject)
        except ApiError:
            raise ApiError(401, "invalid_token", "the token's user does not exist") from None
        if not user.is_active:
            raise ApiError(401, "user_inactive", "the token's user is deactivated")
        return claims

    def _issue_token(self, user_id: str, ttl: int, app: str) -> Token:
        now = time.time()
        token = issue_token(self._token_secret, user_id, ttl, key_id=app, now=now)
        return Token(token, datetime.fromtimestamp(now + ttl, timezone.utc))

    async def _relay(self, call: Call, to_user: str, event_type: str, data: dict[str, Any]) -> bool:
        return await self._hub.publish(to_user, event_type, {"call_id": call.id, **data})

    # --- users -----------------------------------------------------------------------

    async def _users_create(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        user, created = self._users.upsert(
            _text(body, "external_id"), _text(body, "display_name"), _optional_object(body, "metadata")
        )
        return web.json_response(user.to_json(), status=201 if created else 200)

    async def _users_list(self, request: web.Request, actor: Actor) -> web.Response:
        raw = request.query.get("active_only")
        flags = {"true": True, "1": True, "false": False, "0": False}
        if raw is not None and raw.lower() not in flags:
            raise ApiError(400, "invalid_query", "active_only must be true or false")
        users = self._users.list(None if raw is None else flags[raw.lower()])
        return web.json_response({"users": [u.to_json() for u in users]})

    async def _users_get(self, request: web.Request, actor: Actor) -> web.Response:
        return web.json_response(self._users.get(request.match_info["user_id"]).to_json())

    async def _users_get_by_external_id(self, request: web.Request, actor: Actor) -> web.Response:
        return web.json_response(self._users.get_by_external_id(request.match_info["external_id"]).to_json())

    async def _users_update(self, request: web.Request, actor: Actor) -> web.Response:
        user_id = request.match_info["user_id"]
        self._users.get(user_id)
        body = await read_json_object(request)
        display_name = _text(body, "display_name", required=False)
        user = self._users.update(user_id, display_name, _optional_object(body, "metadata"))
        return web.json_response(user.to_json())

    async def _users_deactivate(self, request: web.Request, actor: Actor) -> web.Response:
        user = self._users.deactivate(request.match_info["user_id"])
        for ws, (owner, _) in list(self._live.items()):
            if owner == user.id:
                await self._hub.detach(owner, ws)
                await ws.close(code=routes.CLOSE_FORBIDDEN, message=b"user deactivated")
        return web.json_response(user.to_json())

    async def _users_create_token(self, request: web.Request, actor: Actor) -> web.Response:
        user = self._users.active(request.match_info["user_id"])
        body = await read_json_object(request, optional=True)
        ttl = body.get("ttl", routes.DEFAULT_TOKEN_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= routes.MAX_TOKEN_TTL:
            raise ApiError(400, "invalid_ttl", f"ttl must be whole seconds from 1 to {routes.MAX_TOKEN_TTL}")
        return web.json_response(self._issue_token(user.id, ttl, actor.key_id).to_json(), status=201)

    # --- calls: lifecycle ------------------------------------------------------------

    async def _calls_initiate(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        callee = self._users.active(_text(body, "callee_id"))
        call_type = body.get("type")
        if call_type not in routes.CALL_TYPES:
            raise ApiError(400, "invalid_request", "type must be 'voice' or 'video'")
        call = self._calls.create(_acting(actor), callee.id, call_type)
        self._ringing[call.id] = asyncio.create_task(self._ring(call.id), name=f"ring-{call.id}")
        await self._hub.publish(call.callee_id, routes.CALL_INCOMING, call.to_json())
        return web.json_response(call.to_json(), status=201)

    async def _calls_accept(self, request: web.Request, actor: Actor) -> web.Response:
        call = self._calls.accept(request.match_info["call_id"], _acting(actor))
        self._stop_ringing(call.id)
        await self._hub.publish(call.caller_id, routes.CALL_ACCEPTED, call.to_json())
        return web.json_response(call.to_json())

    async def _calls_reject(self, request: web.Request, actor: Actor) -> web.Response:
        call = self._calls.reject(request.match_info["call_id"], _acting(actor))
        self._stop_ringing(call.id)
        await self._hub.publish(call.caller_id, routes.CALL_REJECTED, call.to_json())
        return web.json_response(call.to_json())

    async def _calls_end(self, request: web.Request, actor: Actor) -> web.Response:
        user_id = _acting(actor)
        call, reason = self._calls.end(request.match_info["call_id"], user_id)
        self._stop_ringing(call.id)
        data = {"reason": reason, "ended_by": user_id, "call": call.to_json()}
        await self._relay(call, call.other_party(user_id), routes.CALL_ENDED, data)
        return web.json_response(call.to_json())

    async def _ring(self, call_id: str) -> None:
        await asyncio.sleep(self.ring_timeout)
        self._ringing.pop(call_id, None)
        call = self._calls.miss(call_id)
        if call is not None:
            data = {"reason": routes.END_MISSED, "call": call.to_json()}
            for user_id in (call.caller_id, call.callee_id):
                await self._relay(call, user_id, routes.CALL_ENDED, data)

    def _stop_ringing(self, call_id: str) -> None:
        task = self._ringing.pop(call_id, None)
        if task is not None:
            task.cancel()

    # --- calls: credentials ----------------------------------------------------------

    async def _calls_webrtc_token(self, request: web.Request, actor: Actor) -> web.Response:
        token = self._issue_token(_acting(actor), routes.DEFAULT_TOKEN_TTL, actor.key_id)
        return web.json_response(token.to_json())

    async def _calls_turn_credentials(self, request: web.Request, actor: Actor) -> web.Response:
        servers = [dict(s) for s in self._ice_servers]
        if self._turn_urls and self._turn_secret:
            username, credential = turn_rest_credentials(self._turn_secret, _acting(actor), self._turn_ttl)
            servers.append({"urls": list(self._turn_urls), "username": username, "credential": credential})
        return web.json_response(TurnCredentials(servers, self._turn_ttl).to_json())

    # --- calls: signalling relay -----------------------------------------------------

    async def _calls_offer(self, request: web.Request, actor: Actor) -> web.Response:
        return await self._relay_sdp(request, actor, "offer", routes.CALL_OFFER)

    async def _calls_answer(self, request: web.Request, actor: Actor) -> web.Response:
        return await self._relay_sdp(request, actor, "answer", routes.CALL_ANSWER)

    async def _relay_sdp(self, request: web.Request, actor: Actor, what: str, event_type: str) -> web.Response:
        user_id = _acting(actor)
        body = await read_json_object(request)
        sdp = body.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise ApiError(400, "invalid_request", "sdp must be a non-empty string")
        call = self._calls.signalling(request.match_info["call_id"], user_id, f"an {what}")
        data = {"sdp": sdp, "from_user_id": user_id}
        delivered = await self._relay(call, call.other_party(user_id), event_type, data)
        return web.json_response({"call_id": call.id, "delivered": delivered})

    async def _calls_ice_candidate(self, request: web.Request, actor: Actor) -> web.Response:
        user_id = _acting(actor)
        body = await read_json_object(request)
        candidate, mid, index = body.get("candidate"), body.get("sdpMid"), body.get("sdpMLineIndex")
        if not isinstance(candidate, str):
            raise ApiError(400, "invalid_request", "candidate must be a string")
        if mid is not None and not isinstance(mid, str):
            raise ApiError(400, "invalid_request", "sdpMid must be a string")
        if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
            raise ApiError(400, "invalid_request", "sdpMLineIndex must be an integer >= 0")
        call = self._calls.signalling(request.match_info["call_id"], user_id, "a candidate")
        data = {"candidate": candidate, "sdpMid": mid, "sdpMLineIndex": index, "from_user_id": user_id}
        delivered = await self._relay(call, call.other_party(user_id), routes.CALL_ICE_CANDIDATE, data)
        return web.json_response({"call_id": call.id, "delivered": delivered})

    # --- calls: quality and recordings -----------------------------------------------

    async def _calls_submit_metrics(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        values = {name: _metric(body, name) for name in ("bitrate", "packet_loss", "jitter", "rtt")}
        sample = self._calls.add_metrics(request.match_info["call_id"], _acting(actor), values)
        return web.json_response(sample.to_json(), status=201)

    async def _calls_get_metrics(self, request: web.Request, actor: Actor) -> web.Response:
        call_id = request.match_info["call_id"]
        samples = self._calls.metrics(call_id, _acting(actor))
        return web.json_response({"call_id": call_id, "samples": [s.to_json() for s in samples]})

    async def _calls_toggle_record(self, request: web.Request, actor: Actor) -> web.Response:
        recording = self._calls.toggle_recording(request.match_info["call_id"], _acting(actor))
        return web.json_response(recording.to_json())

    async def _calls_list_recordings(self, request: web.Request, actor: Actor) -> web.Response:
        call_id = request.match_info["call_id"]
        recordings = self._calls.recordings(call_id, _acting(actor))
        return web.json_response({"call_id": call_id, "recordings": [r.to_json() for r in recordings]})

    # --- the event WebSocket ---------------------------------------------------------

    async def _events(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        if not token:
            raise ApiError(401, "missing_credentials", "send ?token=<user token>&client_id=<publishable key>")
        since = _since(request.query.get("since"))
        ws = web.WebSocketResponse(heartbeat=20.0)
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "websocket_required", "this route upgrades to a WebSocket")
        try:
            claims = self._verify_user_token(token, request.query.get("client_id"))
        except ApiError as exc:
            if exc.code != "token_expired":
                raise
            # Expired: upgrade, then close with 4001 so the client refreshes its token like mid-connection.
            await ws.prepare(request)
            await ws.close(code=routes.CLOSE_TOKEN_EXPIRED, message=b"token expired")
            return ws
        await ws.prepare(request)
        await self._serve_events(request, ws, claims, since)
        return ws

    async def _serve_events(
        self, request: web.Request, ws: web.WebSocketResponse, claims: TokenClaims, since: int | None
    ) -> None:
        user_id = claims.subject
        expiring = asyncio.Event()

        async def close_at_expiry() -> None:
            await asyncio.sleep(max(0.0, claims.expires_at - time.time()))
            expiring.set()
            await self._hub.detach(user_id, ws)  # events from now on wait for the next connection
            await ws.close(code=routes.CLOSE_TOKEN_EXPIRED, message=b"token expired")

        self._live[ws] = (user_id, request)
        expiry = asyncio.create_task(close_at_expiry())
        try:
            if await self._hub.attach(user_id, ws, since):
                async for _ in ws:  # nothing is expected from the client; aiohttp answers pings
                    pass
        finally:
            self._live.pop(ws, None)
            await self._hub.detach(user_id, ws)
            if expiring.is_set():
                await asyncio.gather(expiry, return_exceptions=True)  # let the closing handshake finish
            else:
                expiry.cancel()

    async def _healthz(self, request: web.Request) -> web.Response:
        users, calls = len(self._users.list(None)), len(self._calls.calls)
        return web.json_response({"status": "ok", "users": users, "calls": calls})


# --- request fields --------------------------------------------------------------------


def _acting(actor: Actor) -> str:
    assert actor.user_id is not None  # the calls routes always have an acting user
    return actor.user_id


def _text(body: Mapping[str, Any], name: str, *, required: bool = True) -> Any:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > _MAX_TEXT:
        raise ApiError(400, "invalid_request", f"{name} must be a non-empty string of at most {_MAX_TEXT} characters")
    return value


def _optional_object(body: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise ApiError(400, "invalid_request", f"{name} must be an object")
    return value


def _metric(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ApiError(400, "invalid_request", f"{name} must be a number >= 0")
    return float(value)


def _since(raw: str | None) -> int | None:
    if raw is None:
        return None
    if not raw.isdigit():
        raise ApiError(400, "invalid_query", "since must be a sequence number (an integer >= 0)")
    return int(raw)


# --- configuration ---------------------------------------------------------------------


def _key_pairs(
    secret_keys: Iterable[str] | None, publishable_keys: Iterable[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (secret, publishable) keys, one pair per app; a missing side is generated."""
    secret = tuple(dict.fromkeys(secret_keys or ()))
    public = tuple(dict.fromkeys(publishable_keys or ()))
    if secret and public and len(secret) != len(public):
        raise ConfigurationError("secret_keys and publishable_keys pair up one to one: give as many of each")
    secret = secret or tuple(generate_secret_key() for _ in public or (None,))
    public = public or tuple(generate_publishable_key() for _ in secret)
    for key in (*secret, *public):
        if not isinstance(key, str) or not key or key != key.strip() or looks_like_token(key) or "." in key:
            raise ConfigurationError("keys must be non-empty strings without spaces or dots")
    return secret, public


def _valid_ice_servers(servers: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    try:
        return TurnCredentials.from_json({"iceServers": [dict(s) for s in servers], "ttl": 0}).ice_servers
    except (MalformedResponse, TypeError, ValueError) as exc:
        raise ConfigurationError(f"invalid ice_servers: {exc}") from None


# --- running it ------------------------------------------------------------------------


def _announce(server: LocalOrbitServer, generated_key: bool) -> None:
    print(f"Orbit-compatible server on {server.base_url}")
    # A generated key is useless once the process ends and there is no other way to learn it;
    # a configured one is only hinted at.
    shown = server.secret_key if generated_key else redact(server.secret_key)
    print(f"  ORBIT_BASE_URL={server.base_url}  ORBIT_SECRET_KEY={shown}  ORBIT_CLIENT_ID={server.publishable_key}",
          flush=True)


def serve(
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    on_ready: Callable[[LocalOrbitServer], None] | None = None,
    **options: Any,
) -> None:
    """Run a ``LocalOrbitServer`` until SIGINT or SIGTERM (blocking; for ``peerbot serve --orbit``).

    ``options`` are ``LocalOrbitServer``'s keyword arguments. ``on_ready`` is called once it
    listens; by default the base URL, the secret key and the publishable key are printed.
    """
    announce = on_ready or (lambda server: _announce(server, generated_key=not options.get("secret_keys")))
    asyncio.run(serve_until_signal(lambda: LocalOrbitServer(host, port, **options), announce))
