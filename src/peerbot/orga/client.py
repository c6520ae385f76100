"""The Orga realtime API client: client-secrets, ice-config and calls over HTTP.

``OrgaClient`` trades the long-lived API key for a short-lived ephemeral token, fetches the
ICE servers, and posts the SDP offer to open a call. Every failure is a typed error from
:mod:`peerbot.errors`; neither the API key nor the token ever appears in a message, a repr or
a log line (see :func:`peerbot._redact.redact`).
"""

from __future__ import annotations

import functools
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
from .._rest import (
    DEFAULT_MAX_BODY_BYTES, MalformedResponse, Reply, Request, RestTransport, missing, require_timeout,
    shown,
)
from ..errors import ConfigurationError, OrgaAIAuthenticationError, OrgaAIError, OrgaAIServerError
from ..ice_servers import IceServer, InvalidIceServer, parse_ice_servers
from . import routes
from .params import SessionParams
from .routes import Auth, Route

__all__ = ["OrgaClient", "SessionConfig"]

logger = logging.getLogger(__name__)

# The Node SDK's check: something, an @, something, a dot, something; no whitespace.
_MESSAGE_CHARS = 500  # of a server's own error message
_EMAIL_PATTERN = re.compile(r"^[^\s@]+@[^\s@]+\.[^\s@]+$")

T = TypeVar("T")


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Loading the CA bundle takes ~15 ms; sessions are set up often (load tests), so load it once.
    return ssl.create_default_context(cafile=certifi.where())


@dataclass(frozen=True)
class SessionConfig:
    """What a WebRTC client needs to join: the ephemeral token and the ICE servers."""

    ephemeral_token: str = field(repr=False)
    ice_servers: list[IceServer] = field(repr=False)

    def __repr__(self) -> str:
        servers = [_redact_ice_server(server) for server in self.ice_servers]
        return f"SessionConfig(ephemeral_token={redact(self.ephemeral_token)!r}, ice_servers={servers!r})"

    def to_json(self) -> dict[str, Any]:
        """The camelCase object the official client SDKs expect from a session-config endpoint."""
        return {"ephemeralToken": self.ephemeral_token, "iceServers": [dict(s) for s in self.ice_servers]}


class OrgaClient:
    """An async client of the Orga realtime API.

    Arguments come first, then the environment (``ORGA_API_KEY``, ``ORGA_USER_EMAIL``,
    ``ORGA_BASE_URL``). ``timeout`` (seconds) bounds each whole request, answer included;
    an answer's body is read up to ``max_body_bytes`` (1 MiB), a longer one is a server error.
    Use it as ``async with OrgaClient() as client:`` or call :meth:`aclose` when done; a
    closed client raises :class:`~peerbot.errors.ClientClosedError`.
    """

    def __init__(
        self,
        api_key: str | None = None,
        user_email: str | None = None,
        base_url: str | None = None,
        timeout: float = 10.0,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self._api_key = _require_api_key(api_key or os.environ.get("ORGA_API_KEY"))
        self._user_email = _require_email(user_email or os.environ.get("ORGA_USER_EMAIL"))
        base = _require_base_url(base_url or os.environ.get("ORGA_BASE_URL") or routes.DEFAULT_BASE_URL)
        self._rest = RestTransport(
            base, _OrgaFailures(), label="OrgaClient", timeout=require_timeout(timeout), secrets=(self._api_key,),
            max_body_bytes=max_body_bytes, verify=_tls_context(),
        )

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> OrgaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying HTTP connections."""
        await self._rest.aclose()

    @property
    def is_closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._rest.is_closed

    @property
    def base_url(self) -> str:
        """The API's base URL, without a trailing slash (nor any ``user:password@`` part)."""
        return self._rest.shown_base_url

    @property
    def user_email(self) -> str:
        """The user email sent with each client-secrets request."""
        return self._user_email

    @property
    def timeout(self) -> float:
        """The most seconds any one request may take."""
        return self._rest.timeout

    def __repr__(self) -> str:
        return (
            f"OrgaClient(base_url={self.base_url!r}, user_email={self._user_email!r}, "
            f"api_key={redact(self._api_key)!r}, timeout={self.timeout})"
        )

    # --- endpoints -------------------------------------------------------------------

    async def fetch_ephemeral_token(self, expires_in: int | None = None) -> str:
        """Trade the API key for a short-lived ephemeral token (``POST client-secrets``)."""
        body: dict[str, Any] = {} if expires_in is None else {"expires_in": _require_expires_in(expires_in)}
        token = await self._call(
            routes.CLIENT_SECRETS,
            self._api_key,
            lambda data: _require_str(data, "ephemeral_token"),
            params={"email": self._user_email},
            json_body=body,
        )
        logger.debug("Orga: fetched ephemeral token %s", redact(token))
        return token

    async def fetch_ice_servers(self, token: str) -> list[IceServer]:
        """Fetch the STUN/TURN servers (``GET ice-config``); each entry's ``urls`` is a list."""
        servers = await self._call(routes.ICE_CONFIG, _require_token(token), _parse_ice_config)
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
            "offer": {"sdp": _offer_sdp(offer), "type": "offer", "candidates": _candidates(candidates)},
            "params": _params_json(params),
        }
        answer, conversation_id = await self._call(routes.CALLS, token, _parse_call, json_body=body)
        logger.debug("Orga: call created, conversation %s", conversation_id)
        return answer, conversation_id

    async def _call(
        self,
        route: Route,
        credential: str,
        parse: Callable[[Mapping[str, Any]], T],
        *,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> T:
        """Send one request on ``route`` and ``parse`` its JSON object."""
        return await self._rest.call(
            route, route.path, lambda data: parse(_object(data)), name=f"{route.method} {route.path}",
            credential=credential, params=params, json_body=json_body,
        )


class _OrgaFailures:
    """Orga's typed errors for each failure of the transport, worded as the official SDKs' are."""

    def timed_out(self, request: Request, seconds: float) -> OrgaAIServerError:
        return OrgaAIServerError(f"Orga API timed out after {seconds:g} s waiting for {request.method} {request.url}")

    def unreachable(self, request: Request, reason: str) -> OrgaAIServerError:
        return OrgaAIServerError(f"Orga API server is unreachable at {request.url}: {reason}")

    def connection_failed(self, request: Request, reason: str) -> OrgaAIServerError:
        return OrgaAIServerError(f"Orga API connection failed during {request.method} {request.url}: {reason}")

    def refused(self, request: Request, reply: Reply, scrub: Callable[[str], str]) -> OrgaAIError:
        status = reply.status
        detail = scrub(_server_message(reply))
        suffix = f": {detail}" if detail else ""
        route: Route = request.route
        if status == 401:
            return OrgaAIAuthenticationError(
                f"Orga API refused the {_credential_name(route)} ({status}) at {request.name}{suffix}", status=status
            )
        if status == 403:
            return OrgaAIAuthenticationError(
                f"Orga API returned 403 Forbidden at {request.name}: a credential was used in the wrong place "
                f"(this route takes the {_credential_name(route)}, not the {_other_credential_name(route)}){suffix}",
                status=status,
            )
        return OrgaAIServerError(f"Orga API returned {status} at {request.name}{suffix}", status=status)

    def malformed(self, request: Request, reply: Reply, problem: MalformedResponse) -> OrgaAIServerError:
        return OrgaAIServerError(f"Orga API response to {request.name} {problem.predicate}", status=reply.status)


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


def _require_token(token: str) -> str:
    if not isinstance(token, str) or not token:
        raise ConfigurationError("an ephemeral token is required (from fetch_ephemeral_token())")
    return token


def _require_expires_in(expires_in: Any) -> int:
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        raise ConfigurationError(f"expires_in must be a positive whole number of seconds, got {shown(expires_in)}")
    return expires_in


def _candidates(candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(candidates, (str, bytes, Mapping)) or not all(isinstance(c, Mapping) for c in candidates):
        raise ConfigurationError('candidates must be a list of {"candidate", "sdpMid", "sdpMLineIndex"} mappings')
    return [dict(c) for c in candidates]


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


def _object(data: Any) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise MalformedResponse("not an object", predicate=f"is not a JSON object (got {shown(data)})")
    return data


def _require_str(data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise missing(name)
    return value


def _parse_ice_config(data: Mapping[str, Any]) -> list[IceServer]:
    servers = data.get("iceServers")
    if not isinstance(servers, list):
        raise missing("iceServers")
    try:
        return parse_ice_servers(servers)
    except InvalidIceServer as exc:
        raise MalformedResponse(str(exc)) from None


def _parse_call(data: Mapping[str, Any]) -> tuple[dict[str, str], str]:
    """The ``calls`` response: the SDP answer and the conversation id, both required."""
    answer = data.get("answer")
    if not isinstance(answer, dict):
        raise missing("answer")
    sdp = answer.get("sdp")
    if not isinstance(sdp, str) or not sdp:
        raise missing("answer.sdp")
    if answer.get("type") != "answer":
        raise MalformedResponse(f"answer.type must be 'answer', got {shown(answer.get('type'))}")
    return {"sdp": sdp, "type": "answer"}, _require_str(data, "conversation_id")


def _server_message(reply: Reply) -> str:
    """The server's own explanation: ``{"error": {"message"}}``, ``{"error": "…"}``, ``{"message"}``, or text."""
    try:
        data = reply.json()
    except MalformedResponse:
        return reply.snippet()
    if not isinstance(data, dict):
        return ""
    error = data.get("error")
    for message in (error.get("message") if isinstance(error, dict) else None, error, data.get("message")):
        if isinstance(message, str):
            return message[:_MESSAGE_CHARS]
    return ""


def _credential_name(route: Route) -> str:
    return "API key" if route.auth is Auth.API_KEY else "ephemeral token"


def _other_credential_name(route: Route) -> str:
    return "ephemeral token" if route.auth is Auth.API_KEY else "API key"


def _redact_ice_server(server: Mapping[str, Any]) -> dict[str, Any]:
    """An ICE server entry fit for a repr: the TURN credential shown redacted."""
    shown_server = dict(server)
    if "credential" in shown_server:
        shown_server["credential"] = redact(shown_server["credential"])
    return shown_server
