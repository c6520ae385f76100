"""Where an Orga command talks: the real Orga when ``ORGA_API_KEY`` is set, else the embedded server."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

LOCAL_USER_EMAIL = "peerbot@localhost.localdomain"


@dataclass
class OrgaTarget:
    """Keyword arguments for ``peerbot.orga.connect`` and, when local, the server itself."""

    connect_kwargs: dict[str, Any] = field(default_factory=dict)
    server: Any = None  # LocalOrgaServer when embedded

    @property
    def description(self) -> str:
        if self.server is None:
            return f"Orga at {os.environ.get('ORGA_BASE_URL', 'https://api.orga-ai.com')}"
        return f"the embedded Orga-compatible server at {self.server.base_url}"


@contextlib.asynccontextmanager
async def orga_target(*, local: bool | None = None, **server_options: Any) -> AsyncIterator[OrgaTarget]:
    """Yield an ``OrgaTarget``; with ``local=None`` the choice follows ``ORGA_API_KEY``."""
    if local is None:
        local = not os.environ.get("ORGA_API_KEY")
    if not local:
        yield OrgaTarget()
        return
    from ..local.orga_server import LocalOrgaServer

    async with LocalOrgaServer(**server_options) as server:
        yield OrgaTarget(
            connect_kwargs={"api_key": server.api_key, "base_url": server.base_url, "user_email": LOCAL_USER_EMAIL},
            server=server,
        )
