"""Orbit's settings and its face of the REST transport: routes, headers, and Orbit's typed errors.

Shared by the backend client (secret key) and the participant client (user token). A 401 or 403
is an ``OrbitAuthenticationError``, every other failure an ``OrbitServerError``. Neither
credential ever appears in a message or a log line: the server's own text is scrubbed too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from .._rest import DEFAULT_MAX_BODY_BYTES, MalformedResponse, Reply, Request, RestTransport, require_timeout
from ..errors import ConfigurationError, OrbitAuthenticationError, OrbitError, OrbitServerError
from . import routes
from .routes import Auth, Route

__all__ = ["Transport", "require_credential", "require_id", "require_timeout", "resolve_base_url", "shown_url"]

T = TypeVar("T")
_MESSAGE_CHARS = 500  # of a server's own error message


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


def require_id(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {type(value).__name__}")
    return value


# --- the transport ---------------------------------------------------------------------


class Transport:
    """One credential over the shared REST transport; ``request`` sends on a route and parses the JSON answer."""

    def __init__(
        self,
        base_url: str,
        credential: str,
        auth: Auth,
        *,
        label: str,
        client_id: str | None = None,
        timeout: float = 10.0,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.credential = credential
        self.auth = auth
        self.client_id = client_id
        self._rest = RestTransport(
            base_url, _OrbitFailures(), label=label, timeout=timeout, max_body_bytes=max_body_bytes
        )
        self.base_url = self._rest.shown_base_url  # what messages, logs and reprs show

    @property
    def timeout(self) -> float:
        return self._rest.timeout

    async def aclose(self) -> None:
        await self._rest.aclose()

    @property
    def is_closed(self) -> bool:
        return self._rest.is_closed

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
        return await self._rest.call(
            route, route.url(**(path or {})), parse, name=route.name, credential=self.credential,
            headers=self._headers(route, acting_user), params=params, json_body=json_body,
        )

    def _headers(self, route: Route, acting_user: str | None) -> dict[str, str]:
        if self.auth is Auth.USER_TOKEN:
            return {routes.CLIENT_ID_HEADER: self.client_id or ""}
        if route.acting_user:
            return {routes.ACTING_USER_HEADER: require_id(acting_user, "acting_user")}
        return {}


def status_error(message: str, *, status: int, code: str) -> OrbitError:
    """The Orbit error for an HTTP status: 401 and 403 are authentication errors, the rest server errors."""
    kind = OrbitAuthenticationError if status in (401, 403) else OrbitServerError
    return kind(message, status=status, code=code)


class _OrbitFailures:
    """Orbit's typed errors for each failure of the transport."""

    def timed_out(self, request: Request, seconds: float) -> OrbitServerError:
        return OrbitServerError(
            f"Orbit API timed out after {seconds:g} s waiting for {request.method} {request.url}", code="timeout"
        )

    def unreachable(self, request: Request, reason: str) -> OrbitServerError:
        return OrbitServerError(
            f"Orbit API server is unreachable at {request.method} {request.url}: {reason}", code="unreachable"
        )

    connection_failed = unreachable

    def refused(self, request: Request, reply: Reply, scrub: Callable[[str], str]) -> OrbitError:
        """The server's ``{"error": {"code", "message"}}``, or a stand-in when it sent something else."""
        try:
            data = reply.json()
        except MalformedResponse:
            data = None
        error = data.get("error") if isinstance(data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str) and isinstance(error.get("message"), str):
            return status_error(scrub(error["message"][:_MESSAGE_CHARS]), status=reply.status,
                                code=error["code"][:_MESSAGE_CHARS])
        snippet = scrub(reply.snippet())
        message = f"Orbit API returned {reply.status} for {request.name}" + (f": {snippet}" if snippet else "")
        return status_error(message, status=reply.status, code="http_error")

    def malformed(self, request: Request, reply: Reply, problem: MalformedResponse) -> OrbitServerError:
        return OrbitServerError(
            f"Orbit response to {request.name} ({reply.status}) {problem.predicate}", code="bad_response"
        )
