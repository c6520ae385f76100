"""The Orbit calls lifecycle routes (initiate, accept, reject, end, the ring timer) and a call's
credentials (WebRTC token, TURN credentials)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiohttp import web

from ..ice_servers import IceServer
from ..orbit import routes
from ..orbit.models import TurnCredentials
from ._fields import text
from ._json_api import ApiError, read_json_object
from ._orbit_auth import Actor, OrbitAuth
from ._orbit_hub import EventHub
from ._orbit_state import CallBook, Directory
from .tokens import turn_rest_credentials


class TurnSettings:
    """What ``turn-credentials`` hands out: fixed ICE servers, then TURN REST credentials if configured."""

    def __init__(self, ice_servers: Sequence[IceServer], turn_urls: Sequence[str], turn_secret: str | None,
                 ttl: int) -> None:
        self.ice_servers = list(ice_servers)
        self.turn_urls = list(turn_urls)
        self.turn_secret = turn_secret
        self.ttl = ttl

    def for_user(self, user_id: str) -> TurnCredentials:
        servers = [IceServer(**s) for s in self.ice_servers]
        if self.turn_urls and self.turn_secret:
            username, credential = turn_rest_credentials(self.turn_secret, user_id, self.ttl)
            servers.append(IceServer(urls=list(self.turn_urls), username=username, credential=credential))
        return TurnCredentials(servers, self.ttl)


class CallsApi:
    """Handlers of a call's lifecycle; each state change is announced on the parties' event sockets."""

    def __init__(self, users: Directory, calls: CallBook, hub: EventHub, auth: OrbitAuth, turn: TurnSettings, *,
                 ring_timeout: float) -> None:
        self._users = users
        self._calls = calls
        self._hub = hub
        self._auth = auth
        self._turn = turn
        self.ring_timeout = ring_timeout
        self._ringing: dict[str, asyncio.Task[None]] = {}

    @property
    def ringing(self) -> frozenset[str]:
        """Ids of the calls whose ring timer runs."""
        return frozenset(self._ringing)

    def stop(self) -> None:
        """Stop every ring timer."""
        for task in self._ringing.values():
            task.cancel()
        self._ringing.clear()

    async def initiate(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        callee = self._users.active(text(body, "callee_id"))
        call_type = body.get("type")
        if not isinstance(call_type, str) or call_type not in routes.CALL_TYPES:
            raise ApiError(400, "invalid_request", "type must be 'voice' or 'video'")
        call = self._calls.create(actor.acting, callee.id, call_type)
        self._ringing[call.id] = asyncio.create_task(self._ring(call.id), name=f"ring-{call.id}")
        await self._hub.publish(call.callee_id, routes.CALL_INCOMING, call.to_json())
        return web.json_response(call.to_json(), status=201)

    async def accept(self, request: web.Request, actor: Actor) -> web.Response:
        call = self._calls.accept(request.match_info["call_id"], actor.acting)
        self._stop_ringing(call.id)
        await self._hub.publish(call.caller_id, routes.CALL_ACCEPTED, call.to_json())
        return web.json_response(call.to_json())

    async def reject(self, request: web.Request, actor: Actor) -> web.Response:
        call = self._calls.reject(request.match_info["call_id"], actor.acting)
        self._stop_ringing(call.id)
        await self._hub.publish(call.caller_id, routes.CALL_REJECTED, call.to_json())
        return web.json_response(call.to_json())

    async def end(self, request: web.Request, actor: Actor) -> web.Response:
        call, reason = self._calls.end(request.match_info["call_id"], actor.acting)
        self._stop_ringing(call.id)
        data = {"call_id": call.id, "reason": reason, "ended_by": actor.acting, "call": call.to_json()}
        await self._hub.publish(call.other_party(actor.acting), routes.CALL_ENDED, data)
        return web.json_response(call.to_json())

    async def webrtc_token(self, request: web.Request, actor: Actor) -> web.Response:
        token = self._auth.issue_token(actor.acting, routes.DEFAULT_TOKEN_TTL, actor.key_id)
        return web.json_response(token.to_json())

    async def turn_credentials(self, request: web.Request, actor: Actor) -> web.Response:
        return web.json_response(self._turn.for_user(actor.acting).to_json())

    async def _ring(self, call_id: str) -> None:
        await asyncio.sleep(self.ring_timeout)
        self._ringing.pop(call_id, None)
        call = self._calls.miss(call_id)
        if call is not None:
            data = {"call_id": call.id, "reason": routes.END_MISSED, "call": call.to_json()}
            for user_id in (call.caller_id, call.callee_id):
                await self._hub.publish(user_id, routes.CALL_ENDED, data)

    def _stop_ringing(self, call_id: str) -> None:
        task = self._ringing.pop(call_id, None)
        if task is not None:
            task.cancel()
