"""An Orbit-compatible signalling server on aiohttp: users, user tokens, calls and the event WebSocket.

Its handlers are registered from ``peerbot.orbit.routes`` (the client's table too), so the two
cannot drift. Users and calls live in memory and die with the server, as do the tokens (signed
with a per-process secret). Errors are JSON, ``{"error": {"code", "message"}}``: 400 for a
malformed body, 401 for a missing, wrong or expired credential, 403 for a publishable key that
does not match or a user who is not a party of the call, 404 for unknown ids, 408 for a body that
does not arrive in time, 409 for a call in the wrong state, 413 for an oversized body or
metadata, 429 past a cap.

The calls routes take either the secret key with ``X-App-User-Id`` or a user token with
``X-Client-Id``. The WebSocket closes with 4001 when its token expires; events for a user who is
not connected are kept ``event_buffer_ttl`` seconds for the next connection. Browser participants
call it from their own origin, so it answers CORS preflights and lets any origin read every
response, errors included (credentials travel in headers, never in cookies).

Here: configuration and wiring. Authentication is in ``_orbit_auth``, the handlers in
``_orbit_users``, ``_orbit_calls``, ``_orbit_call_data`` and ``_orbit_events``, the state in
``_orbit_state`` and ``_orbit_hub``, the field checks in ``_fields``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from aiohttp import web

from .._redact import redact
from ..errors import ConfigurationError
from ..ice_servers import InvalidIceServer, parse_ice_servers
from ..orbit import routes
from ..orbit.models import Call
from ..orbit.routes import Route
from ._fields import MAX_METADATA_BYTES
from ._json_api import allow_any_origin, json_errors, preflight
from ._listener import Listener
from ._orbit_auth import Actor, OrbitAuth, generate_publishable_key, generate_secret_key, key_pairs
from ._orbit_call_data import CallDataApi
from ._orbit_calls import CallsApi, TurnSettings
from ._orbit_events import EventSockets
from ._orbit_hub import EventHub
from ._orbit_state import CallBook, Directory
from ._orbit_users import UsersApi

__all__ = ["DEFAULT_PORT", "LocalOrbitServer", "generate_publishable_key", "generate_secret_key"]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8766
MAX_BODY_SIZE = 256 * 1024

_RouteHandler = Callable[[web.Request, Actor], Awaitable[web.StreamResponse]]
_CORS_HEADERS = ", ".join(("Authorization", "Content-Type", routes.CLIENT_ID_HEADER, routes.ACTING_USER_HEADER))


class LocalOrbitServer(Listener):
    """An Orbit-compatible signalling server for tests and local use.

    ``async with LocalOrbitServer() as server:`` starts it on a free port; ``server.base_url``,
    ``server.secret_key`` and ``server.publishable_key`` are what clients need. ``secret_keys``
    and ``publishable_keys`` pair up one to one (one app each); missing ones are generated.
    ``turn_urls`` with ``turn_secret`` add TURN REST credentials to ``turn-credentials``, after the
    fixed ``ice_servers``. ``ring_timeout`` seconds after it was initiated, an unanswered call is missed.

    Bounds, each refused with a JSON error: ``max_body_size`` bytes of body and
    ``max_metadata_bytes`` of a user's metadata as JSON (413); ``max_users`` users,
    ``max_calls`` calls kept (the oldest finished ones make room; 429 when all are live),
    ``max_live_calls_per_user`` ringing or accepted calls per user and
    ``max_connections_per_user`` event WebSockets per user (429); ``max_kept_events`` events
    kept per user for the next connection (the oldest go first); ``read_timeout`` seconds for
    a request head or body to arrive (the connection is dropped, or 408); an idle keep-alive
    connection is closed after ``idle_timeout`` (``read_timeout``, at least 15 s).
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
        max_metadata_bytes: int = MAX_METADATA_BYTES,
        max_users: int = 1000,
        max_calls: int = 1000,
        max_live_calls_per_user: int = 8,
        max_connections_per_user: int = 8,
        max_kept_events: int = 1000,
        read_timeout: float = 10.0,
    ) -> None:
        if (turn_urls is None) != (turn_secret is None):
            raise ConfigurationError("turn_urls and turn_secret go together")
        if ring_timeout <= 0 or event_buffer_ttl < 0 or read_timeout <= 0:
            raise ConfigurationError("ring_timeout and read_timeout must be positive, event_buffer_ttl not negative")
        caps = (max_metadata_bytes, max_users, max_calls, max_live_calls_per_user, max_connections_per_user,
                max_kept_events)
        if min(caps) < 1:
            raise ConfigurationError("every max_… bound must be at least 1")
        try:
            ice = parse_ice_servers(list(ice_servers or ()), "ice_servers")
        except InvalidIceServer as exc:
            raise ConfigurationError(str(exc)) from None
        super().__init__(host, port, read_timeout=read_timeout)
        self._secret_keys, self._publishable_keys = key_pairs(secret_keys, publishable_keys)
        users = Directory(max_users)
        self._calls = CallBook(max_calls, max_live_calls_per_user)
        self._users = users
        hub = EventHub(event_buffer_ttl, max_kept_events)
        auth = OrbitAuth(self._secret_keys, self._publishable_keys, users)
        self._sockets = EventSockets(auth, hub, max_per_user=max_connections_per_user)
        turn = TurnSettings(ice, [turn_urls] if isinstance(turn_urls, str) else list(turn_urls or ()), turn_secret,
                            int(turn_ttl))
        self._lifecycle = CallsApi(users, self._calls, hub, auth, turn, ring_timeout=float(ring_timeout))
        self.app = self._make_app(auth, max_body_size, UsersApi(users, auth, self._sockets,
                                                                max_metadata_bytes=max_metadata_bytes),
                                  CallDataApi(self._calls, hub))

    def __repr__(self) -> str:
        url = self.base_url if self._port else None
        return f"LocalOrbitServer(base_url={url!r}, secret_key={redact(self.secret_key)!r})"

    # --- public surface --------------------------------------------------------------

    @property
    def ring_timeout(self) -> float:
        """Seconds after which an unanswered call is missed."""
        return self._lifecycle.ring_timeout

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
        """Every app's secret key."""
        return self._secret_keys

    @property
    def publishable_keys(self) -> tuple[str, ...]:
        """Every app's publishable key, in the order of ``secret_keys``."""
        return self._publishable_keys

    @property
    def calls(self) -> Mapping[str, Call]:
        """Every call kept, by id, in its current state (read-only view)."""
        return MappingProxyType(self._calls.calls)

    @property
    def ringing(self) -> frozenset[str]:
        """Ids of the calls whose ring timer runs."""
        return self._lifecycle.ringing

    def connections(self, user_id: str) -> int:
        """How many event WebSockets ``user_id`` has open."""
        return self._sockets.count(user_id)

    async def drop_connections(self, user_id: str | None = None) -> int:
        """Cut event WebSockets (a user's, or all) without a closing handshake, as a network drop would."""
        return self._sockets.drop(user_id)

    async def start(self) -> None:
        """Start listening."""
        await super().start()
        log.info("local Orbit server on %s (secret key %s)", self.base_url, redact(self.secret_key))

    async def stop(self) -> None:
        """Stop the ring timers, close every event WebSocket (1001), then stop listening."""
        self._lifecycle.stop()
        await self._sockets.close_all()
        await super().stop()

    # --- wiring ----------------------------------------------------------------------

    def _make_app(self, auth: OrbitAuth, max_body_size: int, users: UsersApi, data: CallDataApi) -> web.Application:
        calls = self._lifecycle
        handlers: dict[Route, _RouteHandler] = {
            routes.USERS_CREATE: users.create,
            routes.USERS_LIST: users.list,
            routes.USERS_GET: users.get,
            routes.USERS_GET_BY_EXTERNAL_ID: users.get_by_external_id,
            routes.USERS_UPDATE: users.update,
            routes.USERS_DEACTIVATE: users.deactivate,
            routes.USERS_CREATE_TOKEN: users.create_token,
            routes.CALLS_INITIATE: calls.initiate,
            routes.CALLS_ACCEPT: calls.accept,
            routes.CALLS_REJECT: calls.reject,
            routes.CALLS_END: calls.end,
            routes.CALLS_WEBRTC_TOKEN: calls.webrtc_token,
            routes.CALLS_TURN_CREDENTIALS: calls.turn_credentials,
            routes.CALLS_SUBMIT_OFFER: data.offer,
            routes.CALLS_SUBMIT_ANSWER: data.answer,
            routes.CALLS_ADD_ICE_CANDIDATE: data.ice_candidate,
            routes.CALLS_SUBMIT_METRICS: data.submit_metrics,
            routes.CALLS_GET_METRICS: data.get_metrics,
            routes.CALLS_TOGGLE_RECORD: data.toggle_record,
            routes.CALLS_LIST_RECORDINGS: data.list_recordings,
        }
        app = self.new_app(max_body_size, [json_errors])
        methods: dict[str, list[str]] = {}
        for route in routes.REST_ROUTES:
            app.router.add_route(route.method, route.template, _authenticated(auth, route, handlers[route]))
            methods.setdefault(route.template, []).append(route.method)
        for template, allowed in methods.items():  # one preflight per path, naming all its methods
            app.router.add_route("OPTIONS", template, preflight(allowed, _CORS_HEADERS))
        app.router.add_route(routes.EVENTS.method, routes.EVENTS.template, self._sockets.handle)
        app.router.add_get("/healthz", self._healthz)
        app.on_response_prepare.append(allow_any_origin)
        return app

    async def _healthz(self, request: web.Request) -> web.Response:
        users, calls = len(self._users.list(None)), len(self._calls.calls)
        return web.json_response({"status": "ok", "users": users, "calls": calls})


def _authenticated(auth: OrbitAuth, route: Route, handler: _RouteHandler) -> Callable[[web.Request],
                                                                                      Awaitable[web.StreamResponse]]:
    async def authenticated(request: web.Request) -> web.StreamResponse:
        return await handler(request, auth.authenticate(request, route))

    return authenticated
