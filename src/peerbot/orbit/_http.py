"""Sending one request on a route of the Orbit table, and turning every failure into ``OrbitServerError``.

Shared by the backend client (secret key) and the participant client (user token). Neither
credential ever appears in a message or a log line: the server's own text is scrubbed too.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from .._redact import redact
from ..errors import ConfigurationError, OrbitServerError
from . import routes
from .models import MalformedResponse
from .routes import Auth, Route

logger = logging.getLogger("peerbot.orbit")

T = TypeVar("T")
_SNIPPET_CHARS = 200


# --- settings --------------------------------------------------------------------------


def resolve_base_url(base_url: str | None) -> str:
    """The server's origin from the argument or ``ORBIT_BASE_URL``; a trailing ``/api/v1`` is dropped.

    There is no default host: the SDK's fixed host is not this project's to assume.
    """
    value = base_url or os.environ.get("ORBIT_BASE_URL")
    if not value:
        raise ConfigurationError("Orbit base URL is required: pass base_url= or set ORBIT_BASE_URL")
    parsed = httpx.URL(value)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"Orbit base URL must be an http(s) URL with a host, got {shown_url(value)!r}")
    value = value.rstrip("/")
    if value.endswith(routes.API_PREFIX):  # the SDK's own form, https://host/api/v1
        value = value[: -len(routes.API_PREFIX)]
    return value


def shown_url(url: str) -> str:
    """A URL fit for messages: no ``user:password@`` part, no query."""
    try:
        return str(httpx.URL(url).copy_with(userinfo=b"", query=None))
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"


def require_credential(value: str | None, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{what} is required")
    return value.strip()


def require_timeout(timeout: float) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def require_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {type(value).__name__}")
    return value


# --- the transport ---------------------------------------------------------------------


class Transport:
    """One httpx client, one credential; ``request`` sends on a route and parses the JSON answer."""

    def __init__(
        self, base_url: str, credential: str, auth: Auth, *, client_id: str | None = None, timeout: float = 10.0
    ) -> None:
        self.base_url = shown_url(base_url)  # what messages, logs and reprs show
        self.credential = credential
        self.auth = auth
        self.client_id = client_id
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def request(
        self,
        route: Route,
        parse: Callable[[Any], T],
        *,
        path: Mapping[str, str] | None = None,
        acting_user: str | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> T:
        """Send one request on ``route``; return ``parse(JSON body)`` (``None`` for an empty body)."""
        if self.auth not in route.auth:
            raise ConfigurationError(f"{route.name} cannot be called with a {self.auth.value.replace('_', ' ')}")
        url = route.url(**(path or {}))
        response = await self._send(route, url, self._headers(route, acting_user), json_body, params)
        if not 200 <= response.status_code < 300:
            raise self._status_error(route, response)
        data = self._json(route, response)
        try:
            return parse(data)
        except MalformedResponse as exc:
            raise OrbitServerError(
                f"Orbit response to {route.name} ({response.status_code}) is malformed: {exc}",
                status=0,
                code="bad_response",
            ) from None

    def _headers(self, route: Route, acting_user: str | None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.credential}"}
        if self.auth is Auth.USER_TOKEN:
            headers[routes.CLIENT_ID_HEADER] = self.client_id or ""
        elif route.acting_user:
            headers[routes.ACTING_USER_HEADER] = require_id(acting_user, "acting_user")
        return headers

    async def _send(
        self, route: Route, url: str, headers: dict[str, str], json_body: Any, params: Mapping[str, str] | None
    ) -> httpx.Response:
        where = f"{route.method} {self.base_url}{url}"
        logger.debug("Orbit: %s (%s, Bearer %s)", where, route.name, redact(self.credential))
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http.request(route.method, url, headers=headers, json=json_body, params=params)
        except (TimeoutError, httpx.TimeoutException):
            raise OrbitServerError(
                f"Orbit API timed out after {self.timeout:g} s waiting for {where}", status=0, code="timeout"
            ) from None
        except httpx.TransportError as exc:
            # Chained exceptions are dropped (from None): their text is not ours to vet.
            reason = self.scrub(str(exc)) or type(exc).__name__
            raise OrbitServerError(
                f"Orbit API server is unreachable at {where}: {reason}", status=0, code="unreachable"
            ) from None
        logger.debug("Orbit: %s -> %d", where, response.status_code)
        return response

    def _status_error(self, route: Route, response: httpx.Response) -> OrbitServerError:
        """The server's ``{"error": {"code", "message"}}``, or a stand-in when it sent something else."""
        status = response.status_code
        try:
            error = response.json().get("error")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            error = None
        if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
            return OrbitServerError(self.scrub(error["message"]), status=status, code=error["code"])
        snippet = self.scrub(response.text.strip()[:_SNIPPET_CHARS])
        message = f"Orbit API returned {status} for {route.name}" + (f": {snippet}" if snippet else "")
        return OrbitServerError(message, status=status, code="http_error")

    def _json(self, route: Route, response: httpx.Response) -> Any:
        if not response.content:
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            content_type = response.headers.get("content-type", "no content-type")
            raise OrbitServerError(
                f"Orbit response to {route.name} ({response.status_code}) is not JSON ({content_type})",
                status=0,
                code="bad_response",
            ) from None

    def scrub(self, text: str) -> str:
        """``text`` with the credential shown redacted."""
        return text.replace(self.credential, redact(self.credential)) if self.credential else text
