"""Where an Orbit command talks: the real Orbit when ``ORBIT_SECRET_KEY`` is set, else a local server.

Either way the bot is an app user, upserted through the backend client, with a token that is
renewed when it expires. With the local server, ``peerbot.local.demo_user`` stands in for the far side.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError, OrbitServerError
from ..orbit import OrbitServer, User

TOKEN_TTL = 3600


@dataclass
class OrbitTarget:
    """A user on an Orbit server: keyword arguments for ``peerbot.orbit.call``/``answer`` and,
    when local, the server itself."""

    backend: OrbitServer
    user: User
    token: str
    client_id: str | None = None  # None: OrbitUser reads ORBIT_CLIENT_ID
    server: Any = None  # LocalOrbitServer when local

    @property
    def description(self) -> str:
        if self.server is None:
            return f"Orbit at {self.backend.base_url}"
        return f"the local Orbit-compatible server at {self.server.base_url}"

    @property
    def call_kwargs(self) -> dict[str, Any]:
        return {"token": self.token, "client_id": self.client_id, "base_url": self.backend.base_url,
                "on_token_expired": self.fresh_token}

    async def fresh_token(self) -> str:
        self.token = (await self.backend.users.create_token(self.user.id, ttl=TOKEN_TTL)).token
        return self.token

    async def as_user(self, external_id: str) -> OrbitTarget:
        """Another user of the same app (upserted), e.g. the far side of a local demo."""
        return await _signed_in(self.backend, external_id, self.client_id, self.server)

    async def find_user(self, who: str) -> User:
        """A user by external id, else by Orbit user id."""
        for lookup in (self.backend.users.get_by_external_id, self.backend.users.get):
            try:
                return await lookup(who)
            except OrbitServerError as exc:
                if exc.status != 404:
                    raise
        raise ConfigurationError(f"no Orbit user {who!r} (looked for it as an external id and as a user id)")


async def _signed_in(backend: OrbitServer, external_id: str, client_id: str | None, server: Any) -> OrbitTarget:
    user = await backend.users.create(external_id, external_id)
    token = await backend.users.create_token(user.id, ttl=TOKEN_TTL)
    return OrbitTarget(backend, user, token.token, client_id, server)


@contextlib.asynccontextmanager
async def orbit_target(name: str, *, local: bool | None = None, **server_options: Any) -> AsyncIterator[OrbitTarget]:
    """Yield the bot user ``name`` on Orbit or, with ``local`` (``None``: when ``ORBIT_SECRET_KEY``
    is unset), on a ``LocalOrbitServer(**server_options)`` started here."""
    if local is None:
        local = not os.environ.get("ORBIT_SECRET_KEY")
    if not local:
        async with OrbitServer() as backend:
            yield await _signed_in(backend, name, None, None)
        return
    from ..local.orbit_server import LocalOrbitServer

    async with LocalOrbitServer(**server_options) as server, OrbitServer(server.secret_key, server.base_url) as backend:
        yield await _signed_in(backend, name, server.publishable_key, server)
