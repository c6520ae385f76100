"""Orbit test bed: a local Orbit server and users with tokens, made through the backend client."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from peerbot.local.orbit_server import LocalOrbitServer
from peerbot.orbit import OrbitServer


@dataclass
class Participant:
    """What a participant needs: its user id and the keyword arguments of call()/answer()."""

    user_id: str
    token: str
    base_url: str
    client_id: str

    @property
    def kwargs(self) -> dict[str, str]:
        return {"token": self.token, "base_url": self.base_url, "client_id": self.client_id}


@dataclass
class OrbitBed:
    server: LocalOrbitServer
    backend: OrbitServer

    async def participant(self, name: str, ttl: int = 3600) -> Participant:
        user = await self.backend.users.create(external_id=name, display_name=name.title())
        token = await self.backend.users.create_token(user.id, ttl=ttl)
        return Participant(user.id, token.token, self.server.base_url, self.server.publishable_key)

    async def fresh_token(self, user_id: str, ttl: int = 3600) -> str:
        return (await self.backend.users.create_token(user_id, ttl=ttl)).token


@contextlib.asynccontextmanager
async def orbit_bed(**server_options) -> AsyncIterator[OrbitBed]:
    async with LocalOrbitServer(**server_options) as server:
        async with OrbitServer(server.secret_key, server.base_url) as backend:
            yield OrbitBed(server, backend)
