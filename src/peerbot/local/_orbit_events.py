"""The Orbit event WebSocket: ``GET /api/v1/ws?token=…&client_id=…[&since=<seq>]``.

The token is checked before the upgrade (401 as JSON), except an expired one: that connection is
upgraded and closed with 4001, so a client refreshes its token the same way as when it expires
mid-connection. Each user may hold ``max_per_user`` connections (429 past that).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import WSCloseCode, web

from ..orbit import routes
from ._fields import sequence_number
from ._json_api import ApiError
from ._orbit_auth import OrbitAuth
from ._orbit_hub import EventHub
from .tokens import TokenClaims


class EventSockets:
    """The live event WebSockets and the route that opens them."""

    def __init__(self, auth: OrbitAuth, hub: EventHub, *, max_per_user: int = 8) -> None:
        self._auth = auth
        self._hub = hub
        self._max_per_user = max_per_user
        self._live: dict[web.WebSocketResponse, tuple[str, web.BaseRequest]] = {}

    def count(self, user_id: str) -> int:
        """How many event WebSockets ``user_id`` has open."""
        return sum(1 for user, _ in self._live.values() if user == user_id)

    def drop(self, user_id: str | None = None) -> int:
        """Cut WebSockets (a user's, or all) without a closing handshake, as a network drop would."""
        dropped = [req for user, req in self._live.values() if user_id in (None, user)]
        for request in dropped:
            if request.transport is not None:
                request.transport.abort()
        return len(dropped)

    async def close_user(self, user_id: str, code: int, message: bytes) -> None:
        """Close every WebSocket of ``user_id`` with ``code``; later events wait for the next connection."""
        for ws, (owner, _) in list(self._live.items()):
            if owner == user_id:
                await self._hub.detach(owner, ws)
                await ws.close(code=code, message=message)

    async def close_all(self) -> None:
        """Close every WebSocket with 1001 (going away)."""
        await asyncio.gather(
            *(ws.close(code=WSCloseCode.GOING_AWAY, message=b"server stopping") for ws in list(self._live)),
            return_exceptions=True,
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """The route handler."""
        token = request.query.get("token", "")
        if not token:
            raise ApiError(401, "missing_credentials", "send ?token=<user token>&client_id=<publishable key>")
        since = sequence_number(request.query.get("since"))
        ws = web.WebSocketResponse(heartbeat=20.0, timeout=2.0)  # timeout: the closing handshake, so stop() is prompt
        if not ws.can_prepare(request).ok:
            raise ApiError(400, "websocket_required", "this route upgrades to a WebSocket")
        try:
            claims = self._auth.verify_user_token(token, request.query.get("client_id"))
        except ApiError as exc:
            if exc.code != "token_expired":
                raise
            await ws.prepare(request)
            await ws.close(code=routes.CLOSE_TOKEN_EXPIRED, message=b"token expired")
            return ws
        if self.count(claims.subject) >= self._max_per_user:
            raise ApiError(429, "too_many_connections", f"a user may hold {self._max_per_user} event connections")
        await ws.prepare(request)
        await self._serve(request, ws, claims, since)
        return ws

    async def _serve(self, request: web.Request, ws: web.WebSocketResponse, claims: TokenClaims,
                     since: int | None) -> None:
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
