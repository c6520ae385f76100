"""The Orga realtime API client: client-secrets, ice-config and calls over HTTP.

``OrgaClient`` trades the long-lived API key for a short-lived ephemeral token, fetches the
ICE servers, and posts the SDP offer to open a call. Every failure is a typed error from
:mod:`peerbot.errors`; neither the API key nor the token ever appears in a message, a repr or
a log line (see :func:`peerbot._redact.redact`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import certifi
import httpx

from .._redact import redact
from ..errors import ConfigurationError, OrgaAIAuthenticationError, OrgaAIServerError
from . import routes
from .params import SessionParams
from .routes import Auth, Route

__all__ = ["OrgaClient", "SessionConfig"]

logger = logging.getLogger(__name__)

# The Node SDK's check: something, an @, something, a dot, something; no whitespace.
_EMAIL_PATTERN = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")
_BODY_SNIPPET_CHARS = 200

T = TypeVar("T")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~15 ms; sessions are set up often (load tests), so load it once.
    return ssl.create_default_context(cafile=certifi.where())


class _MalformedResponse(ValueError):
    """A 2xx response lacks a field or holds a wrong type; turned into ``OrgaAIServerError``."""


@dataclass(frozen=True)
class SessionConfig:
    """What a WebRTC client needs to join: the ephemeral token and the ICE servers."""

    ephemeral_token: str = field(repr=False)
    ice_servers: list[dict[str, Any]] = field(repr=False)

    def __repr__(self) -> str:
        servers = [_redact_ice_server(server) for server in self.ice_servers]
        return f"SessionConfig(ephemeral_token={redact(self.ephemeral_token)!r}, ice_servers={servers!r})"

    def to_json(self) -> dict[str, Any]:
        """The camelCase object the official client SDKs expect from a session-config endpoint."""
        return {"ephemeralToken": self.ephemeral_token, "iceServers": [dict(s) for s in self.ice_servers]}


class OrgaClient:
    """An async client of the Orga realtime API.

    Arguments come first, then the environment (``ORGA_API_KEY``, ``ORGA_USER_EMAIL``,
    ``ORGA_BASE_URL``). ``timeout`` (seconds) bounds each whole request, answer included.
    Use it as ``async with OrgaClient() as client:`` or call :meth:`aclose` when done.
    """

    def __init__(
        self,
        api_key: str | None = None,
        user_email: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._api_key = _require_api_key(api_key or os.environ.get("ORGA_API_KEY"))
        self._user_email = _require_email(user_email or os.environ.get("ORGA_USER_EMAIL"))
        self._base_url = _require_base_url(base_url or os.environ.get("ORGA_BASE_URL") or routes.DEFAULT_BASE_URL)
        # What messages and logs show: the base URL without any user:password@ part.
        self._shown_base_url = str(httpx.URL(self._base_url).copy_with(userinfo=b""))
        self._timeout = _require_timeout(timeout)
        self._http = httpx.AsyncClient(base_url=self._base_url, timeout=self._timeout, verify=_tls_context())

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> OrgaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._http.is_closed

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash (nor any ``user:password@`` part)."""
        return self._shown_base_url

    @property
    def user_email(self) -> str:
        """The user email sent with each client-secrets request."""
        return self._user_email

    @property
    def timeout(self) -> float:
        """The most seconds any one request may take."""
        return self._timeout

    def __repr__(self) -> str:
        return (
            f"OrgaClient(base_url={self._shown_base_url!r}, user_email={self._user_email!r}, "
            f"api_key={redact(self._api_key)!r}, timeout={self._timeout})"
        )

    # --- endpoints -------------------------------------------------------------------

    async def fetch_ephemeral_token(self, expires_in: int | None = None) -> str:
        """Trade the API key for a short-lived ephemeral token (``POST client-secrets``)."""
        body: dict[str, Any] = {} if expires_in is None else {"expires_in": expires_in}
        token = await self._call(
            routes.CLIENT_SECRETS,
            self._api_key,
            lambda data: _require_str(data, "ephemeral_token"),
            params={"email": self._user_email},
            json_body=body,
        )
        logger.debug("Orga: fetched ephemeral token %s", redact(token))
        return token

    async def fetch_ice_servers(self, token: str) -> list[dict[str, Any]]:
        """Fetch the STUN/TURN servers (``GET ice-config``); each entry's ``urls`` is a list."""
        servers = await self._call(
            routes.ICE_CONFIG, _require_token(token), lambda data: _parse_ice_servers(data.get("iceServers"))
        )
        logger.debug("Orga: fetched %d ICE server(s)", len(servers))
        return servers

    async def get_session_config(self) -> SessionConfig:
        """Fetch an ephemeral token, then the ICE servers it unlocks."""
        token = await self.fetch_ephemeral_token()
        return SessionConfig(ephemeral_token=token, ice_servers=await self.fetch_ice_servers(token))

    async def create_call(
        self,
        token: str,
        offer: Mapping[str, Any] | Any,
        candidates: Sequence[Mapping[str, Any]] = (),
        params: SessionParams | Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, str], str]:
        """Post the SDP offer (``POST calls``); return the answer ``{sdp, type}`` and the conversation id.

        ``offer`` is a dict or an object with ``sdp`` and ``type`` (aiortc's
        ``RTCSessionDescription``). ``candidates`` are the gathered ICE candidates as
        ``{"candidate", "sdpMid", "sdpMLineIndex"}`` dicts. ``params`` default to the SDK's.
        """
        token = _require_token(token)
        body = {
            "offer": {"sdp": _offer_sdp(offer), "type": "offer", "candidates": [dict(c) for c in candidates]},
            "params": _params_json(params),
        }
        answer, conversation_id = await self._call(routes.CALLS, token, _parse_call, json_body=body)
        logger.debug("Orga: call created, conversation %s", conversation_id)
        return answer, conversation_id

    # --- transport -------------------------------------------------------------------

    async def _call(
        self,
        route: Route,
        credential: str,
        parse: Callable[[dict[str, Any]], T],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> T:
        """Send one request on ``route``, check it, and ``parse`` its JSON object."""
        response = await self._send(route, credential, params=params, json_body=json_body)
        self._raise_for_status(route, response, credential)
        data = _json_object(response, route)
        try:
            return parse(data)
        except _MalformedResponse as exc:
            raise OrgaAIServerError(
                f"Orga API response to {route.method} {route.path} {exc}", status=response.status_code
            ) from None

    async def _send(
        self,
        route: Route,
        credential: str,
        *,
        params: Mapping[str, str] | None,
        json_body: Any,
    ) -> httpx.Response:
        """Send one request; map timeouts and network failures to ``OrgaAIServerError``."""
        # The query (the user's email) stays out of messages and logs.
        url = f"{self._shown_base_url}{route.path}"
        logger.debug("Orga: %s %s (Authorization: Bearer %s)", route.method, url, redact(credential))
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.request(
                    route.method,
                    route.path,
                    params=params,
                    json=json_body,
                    headers={"Authorization": f"Bearer {credential}"},
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise OrgaAIServerError(
                f"Orga API timed out after {self._timeout:g} s waiting for {route.method} {url}"
            ) from exc
        except httpx.ConnectError as exc:
            raise OrgaAIServerError(
                f"Orga API server is unreachable at {url}: {self._scrub(str(exc), credential) or type(exc).__name__}"
            ) from exc
        except httpx.TransportError as exc:
            raise OrgaAIServerError(
                f"Orga API connection failed during {route.method} {url}: "
                f"{type(exc).__name__} {self._scrub(str(exc), credential)}".rstrip()
            ) from exc
        logger.debug("Orga: %s %s -> %d", route.method, route.path, response.status_code)
        return response

    def _raise_for_status(self, route: Route, response: httpx.Response, credential: str) -> None:
        """Map a non-2xx response to the typed error the official SDKs raise."""
        status = response.status_code
        if 200 <= status < 300:
            return
        detail = self._scrub(_server_message(response), credential)
        where = f"{route.method} {route.path}"
        suffix = f": {detail}" if detail else ""
        if status == 401:
            raise OrgaAIAuthenticationError(
                f"Orga API refused the {_credential_name(route)} ({status}) at {where}{suffix}", status=status
            )
        if status == 403:
            raise OrgaAIAuthenticationError(
                f"Orga API returned 403 Forbidden at {where}: a credential was used in the wrong place "
                f"(this route takes the {_credential_name(route)}, not the {_other_credential_name(route)}){suffix}",
                status=status,
            )
        raise OrgaAIServerError(f"Orga API returned {status} at {where}{suffix}", status=status)

    def _scrub(self, text: str, credential: str) -> str:
        """Redact the API key and the token in text from elsewhere (a server's message, an OS error)."""
        for secret in {self._api_key, credential}:
            text = text.replace(secret, redact(secret))
        return text


# --- validation of arguments ---------------------------------------------------------


def _require_api_key(api_key: str | None) -> str:
    if not api_key or not api_key.strip():
        raise ConfigurationError("Orga API key is required: pass api_key= or set ORGA_API_KEY")
    return api_key.strip()


def _require_email(email: str | None) -> str:
    if not email:
        raise ConfigurationError("Orga user email is required: pass user_email= or set ORGA_USER_EMAIL")
    if not _EMAIL_PATTERN.match(email):
        # Shown redacted: a swapped api_key/user_email pair would otherwise print the key.
        raise ConfigurationError(
            f"Orga user email {redact(email)!r} is not a valid email address (expected x@y.z)"
        )
    return email


def _require_base_url(base_url: str) -> str:
    parsed = httpx.URL(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigurationError(f"Orga base URL must be an http(s) URL with a host, got {base_url!r}")
    return base_url.rstrip("/")


def _require_timeout(timeout: float) -> float:
    if not timeout or timeout <= 0:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def _require_token(token: str) -> str:
    if not isinstance(token, str) or not token:
        raise ConfigurationError("an ephemeral token is required (from fetch_ephemeral_token())")
    return token


def _offer_sdp(offer: Mapping[str, Any] | Any) -> str:
    """The SDP of an offer given as a dict or as an object with ``sdp`` and ``type``."""
    if isinstance(offer, Mapping):
        sdp, kind = offer.get("sdp"), offer.get("type", "offer")
    else:
        sdp, kind = getattr(offer, "sdp", None), getattr(offer, "type", "offer")
    if kind != "offer":
        raise ConfigurationError(f"create_call needs an SDP offer, got type {kind!r}")
    if not isinstance(sdp, str) or not sdp:
        raise ConfigurationError("create_call needs an offer with a non-empty 'sdp'")
    return sdp


def _params_json(params: SessionParams | Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``params`` object: the SDK's defaults, overridden and validated."""
    if params is None:
        return SessionParams().to_json()
    if isinstance(params, SessionParams):
        return params.to_json()
    values = dict(params)
    if "modalities" in values and values["modalities"] is not None:
        values["modalities"] = tuple(values["modalities"])
    try:
        return SessionParams(**values).to_json()
    except TypeError as exc:
        raise ConfigurationError(f"unknown session parameter(s) in {sorted(values)}: {exc}") from exc


# --- reading responses ---------------------------------------------------------------


def _json_object(response: httpx.Response, route: Route) -> dict[str, Any]:
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        content_type = response.headers.get("content-type", "no content-type")
        raise OrgaAIServerError(
            f"Orga API response to {route.method} {route.path} is not JSON ({content_type})",
            status=response.status_code,
        ) from exc
    if not isinstance(data, dict):
        raise OrgaAIServerError(
            f"Orga API response to {route.method} {route.path} is not a JSON object (got {type(data).__name__})",
            status=response.status_code,
        )
    return data


def _require_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise _missing(name)
    return value


def _parse_ice_servers(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _missing("iceServers")
    return [_parse_ice_server(entry, index) for index, entry in enumerate(value)]


def _parse_ice_server(entry: Any, index: int) -> dict[str, Any]:
    """One ICE server, with ``urls`` always a list of strings."""
    if not isinstance(entry, dict):
        raise _malformed(f"iceServers[{index}] is not an object")
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise _malformed(f"iceServers[{index}].urls must be a string or a non-empty list of strings")
    server: dict[str, Any] = {"urls": urls}
    for key in ("username", "credential"):
        if entry.get(key) is not None:
            if not isinstance(entry[key], str):
                raise _malformed(f"iceServers[{index}].{key} must be a string")
            server[key] = entry[key]
    return server


def _parse_call(data: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The ``calls`` response: the SDP answer and the conversation id, both required."""
    answer = data.get("answer")
    if not isinstance(answer, dict):
        raise _missing("answer")
    sdp = answer.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise _missing("answer.sdp")
    if answer.get("type") != "answer":
        raise _malformed(f"answer.type must be 'answer', got {answer.get('type')!r}")
    return {"sdp": sdp, "type": "answer"}, _require_str(data, "conversation_id")


def _missing(name: str) -> _MalformedResponse:
    return _MalformedResponse(f"is missing the field {name!r}")


def _malformed(problem: str) -> _MalformedResponse:
    return _MalformedResponse(f"is malformed: {problem}")


def _server_message(response: httpx.Response) -> str:
    """The server's own explanation: ``{"error": {"message"}}``, ``{"error": "…"}``, ``{"message"}``, or text."""
    try:
        data = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text.strip()[:_BODY_SNIPPET_CHARS]
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"]
    if isinstance(error, str):
        return error
    message = data.get("message")
    return message if isinstance(message, str) else ""


def _credential_name(route: Route) -> str:
    return "API key" if route.auth is Auth.API_KEY else "ephemeral token"


def _other_credential_name(route: Route) -> str:
    return "ephemeral token" if route.auth is Auth.API_KEY else "API key"


def _redact_ice_server(server: Mapping[str, Any]) -> dict[str, Any]:
    """An ICE server entry fit for a repr: the TURN credential shown redacted."""
    shown = dict(server)
    if "credential" in shown:
        shown["credential"] = redact(shown["credential"])
    return shown
