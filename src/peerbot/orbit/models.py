"""The objects on the Orbit wire, typed: users, tokens, calls, TURN credentials, metrics, recordings.

Each has ``from_json`` (raising :class:`~peerbot._rest.MalformedResponse` on a missing or mistyped field) and
``to_json``, so the client and the local server share one definition of every payload. Times are
ISO 8601 strings on the wire and timezone-aware ``datetime`` objects here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from .._redact import redact
from .._rest import MalformedResponse, shown
from ..ice_servers import IceServer, InvalidIceServer, parse_ice_servers

CallType = Literal["voice", "video"]
CallStatus = Literal["ringing", "accepted", "rejected", "ended", "missed"]
CALL_STATUSES = ("ringing", "accepted", "rejected", "ended", "missed")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- field readers ---------------------------------------------------------------------


def _object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise MalformedResponse(f"{what} is not a JSON object")
    return data


def _str(data: Mapping[str, Any], name: str, *, empty: bool = False) -> str:
    value = data.get(name)
    if not isinstance(value, str) or (not value and not empty):
        raise MalformedResponse(f"field {name!r} is missing or not a string")
    return value


def _number(data: Mapping[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponse(f"field {name!r} is missing or not a number")
    try:
        number = float(value)  # an int past 1e308 overflows
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise MalformedResponse(f"field {name!r} is not a finite number")
    return number


def _time(data: Mapping[str, Any], name: str, *, optional: bool = False) -> datetime | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise MalformedResponse(f"field {name!r} is missing or not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedResponse(f"field {name!r} is not an ISO 8601 time: {value[:40]!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _choice(data: Mapping[str, Any], name: str, choices: tuple[str, ...]) -> Any:
    value = _str(data, name)
    if value not in choices:
        raise MalformedResponse(f"field {name!r} is {shown(value)}, not one of {', '.join(choices)}")
    return value


def items(data: Any, key: str) -> list[Any]:
    """The list in ``{key: [...]}`` (or a bare list)."""
    if isinstance(data, list):
        return data
    value = _object(data, "the response").get(key)
    if not isinstance(value, list):
        raise MalformedResponse(f"field {key!r} is missing or not a list")
    return value


# --- the objects -----------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    """An app user, known by Orbit's ``id`` and by the application's ``external_id``."""

    id: str
    external_id: str
    display_name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    is_active: bool = True
    created_at: datetime = field(default_factory=utc_now)

    @classmethod
    def from_json(cls, data: Any) -> User:
        data = _object(data, "a user")
        metadata = data.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise MalformedResponse("field 'metadata' is not an object")
        active = data.get("is_active", True)
        if not isinstance(active, bool):
            raise MalformedResponse("field 'is_active' is not a boolean")
        return cls(
            id=_str(data, "id"),
            external_id=_str(data, "external_id"),
            display_name=_str(data, "display_name", empty=True),
            metadata=metadata,
            is_active=active,
            created_at=_time(data, "created_at"),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "display_name": self.display_name,
            "metadata": self.metadata,
            "is_active": self.is_active,
            "created_at": format_time(self.created_at),
        }


@dataclass(frozen=True)
class Token:
    """A short-lived user token (``users.createToken``, ``calls.getWebrtcToken``); shown redacted."""

    token: str = field(repr=False)
    expires_at: datetime

    def __repr__(self) -> str:
        return f"Token(token={redact(self.token)!r}, expires_at={self.expires_at.isoformat()!r})"

    @classmethod
    def from_json(cls, data: Any) -> Token:
        data = _object(data, "a token")
        return cls(token=_str(data, "token"), expires_at=_time(data, "expires_at"))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        return {"token": self.token, "expires_at": format_time(self.expires_at)}


@dataclass(frozen=True)
class Call:
    """A one-to-one call and where it stands: ``ringing`` → ``accepted`` → ``ended``, or
    ``rejected`` / ``missed`` straight from ``ringing``."""

    id: str
    caller_id: str
    callee_id: str
    type: CallType
    status: CallStatus
    created_at: datetime
    ended_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> Call:
        data = _object(data, "a call")
        return cls(
            id=_str(data, "id"),
            caller_id=_str(data, "caller_id"),
            callee_id=_str(data, "callee_id"),
            type=_choice(data, "type", ("voice", "video")),
            status=_choice(data, "status", CALL_STATUSES),
            created_at=_time(data, "created_at"),  # type: ignore[arg-type]
            ended_at=_time(data, "ended_at", optional=True),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "caller_id": self.caller_id,
            "callee_id": self.callee_id,
            "type": self.type,
            "status": self.status,
            "created_at": format_time(self.created_at),
        }
        if self.ended_at is not None:
            out["ended_at"] = format_time(self.ended_at)
        return out

    def other_party(self, user_id: str) -> str:
        """The caller for the callee and the callee for the caller."""
        return self.callee_id if user_id == self.caller_id else self.caller_id


@dataclass(frozen=True)
class TurnCredentials:
    """``calls.getTurnCredentials``: ICE servers in the W3C shape (``urls`` a list) and their lifetime."""

    ice_servers: list[IceServer] = field(repr=False)
    ttl: int

    def __repr__(self) -> str:
        shown = [{**s, "credential": redact(s["credential"])} if "credential" in s else s for s in self.ice_servers]
        return f"TurnCredentials(ice_servers={shown!r}, ttl={self.ttl})"

    @classmethod
    def from_json(cls, data: Any) -> TurnCredentials:
        data = _object(data, "the TURN credentials")
        servers = data.get("iceServers")
        if not isinstance(servers, list):
            raise MalformedResponse("field 'iceServers' is missing or not a list")
        try:
            ice_servers = parse_ice_servers(servers)
        except InvalidIceServer as exc:
            raise MalformedResponse(str(exc)) from None
        return cls(ice_servers=ice_servers, ttl=int(_number(data, "ttl")))

    def to_json(self) -> dict[str, Any]:
        return {"iceServers": [dict(s) for s in self.ice_servers], "ttl": self.ttl}


@dataclass(frozen=True)
class MetricsSample:
    """One quality report a party submitted for a call."""

    user_id: str
    bitrate: float
    packet_loss: float
    jitter: float
    rtt: float
    recorded_at: datetime

    @classmethod
    def from_json(cls, data: Any) -> MetricsSample:
        data = _object(data, "a metrics sample")
        return cls(
            user_id=_str(data, "user_id"),
            bitrate=_number(data, "bitrate"),
            packet_loss=_number(data, "packet_loss"),
            jitter=_number(data, "jitter"),
            rtt=_number(data, "rtt"),
            recorded_at=_time(data, "recorded_at"),  # type: ignore[arg-type]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "bitrate": self.bitrate,
            "packet_loss": self.packet_loss,
            "jitter": self.jitter,
            "rtt": self.rtt,
            "recorded_at": format_time(self.recorded_at),
        }


@dataclass(frozen=True)
class Recording:
    """One recording of a call: started by ``toggle_record``, stopped by the next toggle or the end."""

    id: str
    call_id: str
    started_by: str
    started_at: datetime
    stopped_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.stopped_at is None

    @classmethod
    def from_json(cls, data: Any) -> Recording:
        data = _object(data, "a recording")
        return cls(
            id=_str(data, "id"),
            call_id=_str(data, "call_id"),
            started_by=_str(data, "started_by"),
            started_at=_time(data, "started_at"),  # type: ignore[arg-type]
            stopped_at=_time(data, "stopped_at", optional=True),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "started_by": self.started_by,
            "started_at": format_time(self.started_at),
            "stopped_at": None if self.stopped_at is None else format_time(self.stopped_at),
            "active": self.active,
        }
