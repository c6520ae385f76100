"""``OrbitServer.users``: create (upsert on external_id), read, update and deactivate app users; issue tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import ConfigurationError
from . import routes
from ._http import Transport, require_id
from .models import Token, User, items


def validate_ttl(ttl: Any) -> int:
    """A token lifetime in whole seconds, 1 to 86400."""
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= routes.MAX_TOKEN_TTL:
        raise ConfigurationError(f"ttl must be a whole number of seconds from 1 to {routes.MAX_TOKEN_TTL}, got {ttl!r}")
    return ttl


def _metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise ConfigurationError(f"metadata must be a mapping, got {type(metadata).__name__}")
    return dict(metadata)


class Users:
    """The users routes; every call needs the secret key."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create(self, external_id: str, display_name: str, metadata: Mapping[str, Any] | None = None) -> User:
        """Create a user, or update the one that already has ``external_id`` (idempotent)."""
        body: dict[str, Any] = {
            "external_id": require_id(external_id, "external_id"),
            "display_name": require_id(display_name, "display_name"),
        }
        if metadata is not None:
            body["metadata"] = _metadata(metadata)
        return await self._t.request(routes.USERS_CREATE, User.from_json, json_body=body)

    async def list(self, active_only: bool | None = None) -> list[User]:
        """Every user, or only the active (``True``) or the deactivated (``False``) ones."""
        params = None if active_only is None else {"active_only": "true" if active_only else "false"}
        return await self._t.request(
            routes.USERS_LIST, lambda data: [User.from_json(u) for u in items(data, "users")], params=params
        )

    async def get(self, user_id: str) -> User:
        return await self._t.request(routes.USERS_GET, User.from_json, path={"user_id": require_id(user_id, "user_id")})

    async def get_by_external_id(self, external_id: str) -> User:
        return await self._t.request(
            routes.USERS_GET_BY_EXTERNAL_ID,
            User.from_json,
            path={"external_id": require_id(external_id, "external_id")},
        )

    async def update(
        self, user_id: str, *, display_name: str | None = None, metadata: Mapping[str, Any] | None = None
    ) -> User:
        """Change the display name and/or replace the metadata; fields left ``None`` stay as they are."""
        body: dict[str, Any] = {}
        if display_name is not None:
            body["display_name"] = require_id(display_name, "display_name")
        if metadata is not None:
            body["metadata"] = _metadata(metadata)
        return await self._t.request(
            routes.USERS_UPDATE, User.from_json, path={"user_id": require_id(user_id, "user_id")}, json_body=body
        )

    async def deactivate(self, user_id: str) -> User:
        """Soft-delete: the user keeps its history but can no longer call, be called or use its tokens."""
        return await self._t.request(
            routes.USERS_DEACTIVATE, User.from_json, path={"user_id": require_id(user_id, "user_id")}
        )

    async def create_token(self, user_id: str, ttl: int = routes.DEFAULT_TOKEN_TTL) -> Token:
        """A short-lived token for a participant (``ttl`` seconds, 1 to 86400; checked before any request)."""
        body = {"ttl": validate_ttl(ttl)}
        return await self._t.request(
            routes.USERS_CREATE_TOKEN, Token.from_json, path={"user_id": require_id(user_id, "user_id")}, json_body=body
        )
