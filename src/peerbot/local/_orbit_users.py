"""The Orbit users routes (backend only): upsert, list, get, update, deactivate, create a token."""

from __future__ import annotations

from aiohttp import web

from ..orbit import routes
from ._fields import MAX_METADATA_BYTES, metadata, text
from ._json_api import ApiError, read_json_object
from ._orbit_auth import Actor, OrbitAuth
from ._orbit_events import EventSockets
from ._orbit_state import Directory

_FLAGS = {"true": True, "1": True, "false": False, "0": False}


class UsersApi:
    """Handlers of the users routes, over the app's ``Directory``."""

    def __init__(self, users: Directory, auth: OrbitAuth, sockets: EventSockets, *,
                 max_metadata_bytes: int = MAX_METADATA_BYTES) -> None:
        self._users = users
        self._auth = auth
        self._sockets = sockets
        self._max_metadata = max_metadata_bytes

    async def create(self, request: web.Request, actor: Actor) -> web.Response:
        body = await read_json_object(request)
        user, created = self._users.upsert(
            text(body, "external_id"), text(body, "display_name"), metadata(body, "metadata", self._max_metadata)
        )
        return web.json_response(user.to_json(), status=201 if created else 200)

    async def list(self, request: web.Request, actor: Actor) -> web.Response:
        raw = request.query.get("active_only")
        if raw is not None and raw.lower() not in _FLAGS:
            raise ApiError(400, "invalid_query", "active_only must be true or false")
        users = self._users.list(None if raw is None else _FLAGS[raw.lower()])
        return web.json_response({"users": [u.to_json() for u in users]})

    async def get(self, request: web.Request, actor: Actor) -> web.Response:
        return web.json_response(self._users.get(request.match_info["user_id"]).to_json())

    async def get_by_external_id(self, request: web.Request, actor: Actor) -> web.Response:
        return web.json_response(self._users.get_by_external_id(request.match_info["external_id"]).to_json())

    async def update(self, request: web.Request, actor: Actor) -> web.Response:
        user_id = request.match_info["user_id"]
        self._users.get(user_id)
        body = await read_json_object(request)
        display_name = text(body, "display_name", required=False)
        user = self._users.update(user_id, display_name, metadata(body, "metadata", self._max_metadata))
        return web.json_response(user.to_json())

    async def deactivate(self, request: web.Request, actor: Actor) -> web.Response:
        user = self._users.deactivate(request.match_info["user_id"])
        await self._sockets.close_user(user.id, routes.CLOSE_FORBIDDEN, b"user deactivated")
        return web.json_response(user.to_json())

    async def create_token(self, request: web.Request, actor: Actor) -> web.Response:
        user = self._users.active(request.match_info["user_id"])
        body = await read_json_object(request, optional=True)
        ttl = body.get("ttl", routes.DEFAULT_TOKEN_TTL)
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= routes.MAX_TOKEN_TTL:
            raise ApiError(400, "invalid_ttl", f"ttl must be whole seconds from 1 to {routes.MAX_TOKEN_TTL}")
        return web.json_response(self._auth.issue_token(user.id, ttl, actor.key_id).to_json(), status=201)
