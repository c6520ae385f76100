"""The Orbit REST clients: ``OrbitServer`` for a backend (secret key), ``OrbitUser`` for a participant (user token).

Settings come from the arguments first, then the environment (``ORBIT_SECRET_KEY``,
``ORBIT_BASE_URL``, ``ORBIT_CLIENT_ID``). There is no default host. Every failure is an
``OrbitError`` carrying ``status`` (0 when no usable answer came), ``code`` and ``message``:
``OrbitAuthenticationError`` for a 401 or 403, ``OrbitServerError`` for anything else. The
secret key and the tokens appear in none of them, nor in reprs or logs. A client used after
``aclose()`` raises ``ClientClosedError``.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from .._redact import redact
from .._rest import DEFAULT_MAX_BODY_BYTES
from ._http import Transport, require_credential, require_timeout, resolve_base_url
from .calls import Calls, UserCalls
from .events import OrbitEvents
from .routes import Auth
from .users import Users

__all__ = ["OrbitServer", "OrbitUser"]


class OrbitServer:
    """The backend client, as in the server SDK: ``orbit.users`` and ``orbit.calls``.

    ``timeout`` (seconds) bounds each whole request; an answer's body is read up to
    ``max_body_bytes`` (1 MiB), a longer one is an ``OrbitServerError``.

    ``async with OrbitServer() as orbit:`` or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        secret_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        key = require_credential(
            secret_key or os.environ.get("ORBIT_SECRET_KEY"),
            "Orbit secret key (pass secret_key= or set ORBIT_SECRET_KEY)",
        )
        self._t = Transport(
            resolve_base_url(base_url), key, Auth.SECRET_KEY, label="OrbitServer", timeout=require_timeout(timeout),
            max_body_bytes=max_body_bytes,
        )
        self.users = Users(self._t)
        self.calls = Calls(self._t)

    @property
    def base_url(self) -> str:
        """The server's origin (the routes add ``/api/v1``)."""
        return self._t.base_url

    @property
    def timeout(self) -> float:
        return self._t.timeout

    @property
    def is_closed(self) -> bool:
        return self._t.is_closed

    def __repr__(self) -> str:
        return f"OrbitServer(base_url={self.base_url!r}, secret_key={redact(self._t.credential)!r})"

    async def aclose(self) -> None:
        await self._t.aclose()

    async def __aenter__(self) -> OrbitServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class OrbitUser:
    """A participant's client: the calls routes with its own token (``X-Client-Id`` is the publishable key).

    ``events()`` opens the participant's event WebSocket with the same settings.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        client_id: str | None = None,
        timeout: float = 10.0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._t = Transport(
            resolve_base_url(base_url),
            require_credential(token, "a user token (from users.create_token)"),
            Auth.USER_TOKEN,
            label="OrbitUser",
            client_id=require_credential(
                client_id or os.environ.get("ORBIT_CLIENT_ID"),
                "the publishable key (pass client_id= or set ORBIT_CLIENT_ID)",
            ),
            timeout=require_timeout(timeout),
            max_body_bytes=max_body_bytes,
        )
        self.calls = UserCalls(self._t)

    @property
    def base_url(self) -> str:
        return self._t.base_url

    @property
    def client_id(self) -> str:
        """The publishable key (not a secret)."""
        return self._t.client_id or ""

    @property
    def token(self) -> str:
        return self._t.credential

    def set_token(self, token: str) -> None:
        """Use a fresh token from now on (after the old one expired)."""
        self._t.credential = require_credential(token, "a user token")

    def events(self, on_token_expired: Callable[[], Awaitable[str]] | None = None, **options: Any) -> OrbitEvents:
        """The event WebSocket for this user; ``options`` are :class:`OrbitEvents`' keyword arguments.

        A fresh token from ``on_token_expired`` is also used for this client's REST calls.
        """

        if on_token_expired is None:
            return OrbitEvents(self.base_url, self.token, self.client_id, **options)
        fetch_token = on_token_expired

        async def refresh() -> str:
            token = await fetch_token()
            self.set_token(token)
            return token

        return OrbitEvents(self.base_url, self.token, self.client_id, on_token_expired=refresh, **options)

    def __repr__(self) -> str:
        return f"OrbitUser(base_url={self.base_url!r}, client_id={self.client_id!r}, token={redact(self.token)!r})"

    async def aclose(self) -> None:
        await self._t.aclose()

    async def __aenter__(self) -> OrbitUser:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
