"""The calls routes, in two faces: ``Calls`` for a backend acting for a user, ``UserCalls`` for a participant.

Both send the same requests; the backend names the acting user in ``X-App-User-Id``, the
participant acts as the user its token was issued for.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..errors import ConfigurationError
from . import routes
from ._http import Transport, require_id
from .models import Call, CallType, MetricsSample, Recording, Token, TurnCredentials, items

T = TypeVar("T")


def _call_type(value: Any) -> str:
    if not isinstance(value, str) or value not in routes.CALL_TYPES:
        raise ConfigurationError(f"call type must be 'voice' or 'video', got {value!r}")
    return value


def _sdp(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError("sdp must be a non-empty string")
    return value


def _metric(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ConfigurationError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def candidate_json(candidate: Any, sdp_mid: str | None, sdp_mline_index: int | None) -> dict[str, Any]:
    """The ``ice-candidates`` body from a candidate line, a ``{"candidate", "sdpMid", "sdpMLineIndex"}``
    mapping, or an object with ``candidate``/``sdpMid``/``sdpMLineIndex`` attributes."""
    if isinstance(candidate, Mapping):
        line = candidate.get("candidate")
        sdp_mid = candidate.get("sdpMid", sdp_mid)
        sdp_mline_index = candidate.get("sdpMLineIndex", sdp_mline_index)
    elif isinstance(candidate, str):
        line = candidate
    else:
        line = getattr(candidate, "candidate", None)
        sdp_mid = getattr(candidate, "sdpMid", sdp_mid)
        sdp_mline_index = getattr(candidate, "sdpMLineIndex", sdp_mline_index)
    if not isinstance(line, str):  # "" is allowed: end of candidates
        raise ConfigurationError("candidate must be an ICE candidate line (a string)")
    if sdp_mid is not None and not isinstance(sdp_mid, str):
        raise ConfigurationError(f"sdp_mid must be a string, got {type(sdp_mid).__name__}")
    if sdp_mline_index is not None and (
        isinstance(sdp_mline_index, bool) or not isinstance(sdp_mline_index, int) or sdp_mline_index < 0
    ):
        raise ConfigurationError(f"sdp_mline_index must be an integer >= 0, got {sdp_mline_index!r}")
    body: dict[str, Any] = {"candidate": line}
    if sdp_mid is not None:
        body["sdpMid"] = sdp_mid
    if sdp_mline_index is not None:
        body["sdpMLineIndex"] = sdp_mline_index
    return body


def _ignore(data: Any) -> None:
    return None


class _CallRequests:
    """Every calls route; ``acting`` is the backend's acting user, ``None`` for a participant."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def _on_call(
        self, route: routes.Route, call_id: str, acting: str | None, parse: Callable[[Any], T], body: Any = None
    ) -> T:
        return await self._t.request(
            route, parse, path={"call_id": require_id(call_id, "call_id")}, acting_user=acting, json_body=body
        )

    async def _initiate(self, callee_id: str, type: str, acting: str | None) -> Call:
        body = {"callee_id": require_id(callee_id, "callee_id"), "type": _call_type(type)}
        return await self._t.request(routes.CALLS_INITIATE, Call.from_json, acting_user=acting, json_body=body)

    async def _webrtc_token(self, acting: str | None) -> Token:
        return await self._t.request(routes.CALLS_WEBRTC_TOKEN, Token.from_json, acting_user=acting)

    async def _turn_credentials(self, acting: str | None) -> TurnCredentials:
        return await self._t.request(routes.CALLS_TURN_CREDENTIALS, TurnCredentials.from_json, acting_user=acting)

    async def _metrics(self, call_id: str, values: Mapping[str, Any], acting: str | None) -> MetricsSample:
        body = {name: _metric(name, value) for name, value in values.items()}
        return await self._on_call(routes.CALLS_SUBMIT_METRICS, call_id, acting, MetricsSample.from_json, body)

    async def _get_metrics(self, call_id: str, acting: str | None) -> list[MetricsSample]:
        return await self._on_call(
            routes.CALLS_GET_METRICS,
            call_id,
            acting,
            lambda data: [MetricsSample.from_json(s) for s in items(data, "samples")],
        )

    async def _recordings(self, call_id: str, acting: str | None) -> list[Recording]:
        return await self._on_call(
            routes.CALLS_LIST_RECORDINGS,
            call_id,
            acting,
            lambda data: [Recording.from_json(r) for r in items(data, "recordings")],
        )


class Calls(_CallRequests):
    """``OrbitServer.calls``: the backend acts for ``acting_user`` (sent as ``X-App-User-Id``)."""

    async def initiate(self, callee_id: str, type: CallType, acting_user: str) -> Call:
        """Ring ``callee_id`` on behalf of ``acting_user``; the callee gets ``call:incoming``."""
        return await self._initiate(callee_id, type, require_id(acting_user, "acting_user"))

    async def accept(self, call_id: str, acting_user: str) -> Call:
        return await self._on_call(routes.CALLS_ACCEPT, call_id, require_id(acting_user, "acting_user"), Call.from_json)

    async def reject(self, call_id: str, acting_user: str) -> Call:
        return await self._on_call(routes.CALLS_REJECT, call_id, require_id(acting_user, "acting_user"), Call.from_json)

    async def end(self, call_id: str, acting_user: str) -> Call:
        return await self._on_call(routes.CALLS_END, call_id, require_id(acting_user, "acting_user"), Call.from_json)

    async def get_webrtc_token(self, acting_user: str) -> Token:
        return await self._webrtc_token(require_id(acting_user, "acting_user"))

    async def get_turn_credentials(self, acting_user: str) -> TurnCredentials:
        return await self._turn_credentials(require_id(acting_user, "acting_user"))

    async def submit_offer(self, call_id: str, sdp: str, acting_user: str) -> None:
        await self._on_call(
            routes.CALLS_SUBMIT_OFFER, call_id, require_id(acting_user, "acting_user"), _ignore, {"sdp": _sdp(sdp)}
        )

    async def submit_answer(self, call_id: str, sdp: str, acting_user: str) -> None:
        await self._on_call(
            routes.CALLS_SUBMIT_ANSWER, call_id, require_id(acting_user, "acting_user"), _ignore, {"sdp": _sdp(sdp)}
        )

    async def add_ice_candidate(
        self,
        call_id: str,
        candidate: Any,
        sdp_mid: str | None = None,
        sdp_mline_index: int | None = None,
        *,
        acting_user: str,
    ) -> None:
        body = candidate_json(candidate, sdp_mid, sdp_mline_index)
        await self._on_call(
            routes.CALLS_ADD_ICE_CANDIDATE, call_id, require_id(acting_user, "acting_user"), _ignore, body
        )

    async def submit_metrics(
        self, call_id: str, bitrate: float, packet_loss: float, jitter: float, rtt: float, acting_user: str
    ) -> MetricsSample:
        values = {"bitrate": bitrate, "packet_loss": packet_loss, "jitter": jitter, "rtt": rtt}
        return await self._metrics(call_id, values, require_id(acting_user, "acting_user"))

    async def get_metrics(self, call_id: str, acting_user: str) -> list[MetricsSample]:
        return await self._get_metrics(call_id, require_id(acting_user, "acting_user"))

    async def toggle_record(self, call_id: str, acting_user: str) -> Recording:
        """Start a recording, or stop the running one; returns the recording started or stopped."""
        return await self._on_call(
            routes.CALLS_TOGGLE_RECORD, call_id, require_id(acting_user, "acting_user"), Recording.from_json
        )

    async def list_recordings(self, call_id: str, acting_user: str) -> list[Recording]:
        return await self._recordings(call_id, require_id(acting_user, "acting_user"))


class UserCalls(_CallRequests):
    """``OrbitUser.calls``: a participant acting as the user of its own token."""

    async def initiate(self, callee_id: str, type: CallType = "video") -> Call:
        return await self._initiate(callee_id, type, None)

    async def accept(self, call_id: str) -> Call:
        return await self._on_call(routes.CALLS_ACCEPT, call_id, None, Call.from_json)

    async def reject(self, call_id: str) -> Call:
        return await self._on_call(routes.CALLS_REJECT, call_id, None, Call.from_json)

    async def end(self, call_id: str) -> Call:
        return await self._on_call(routes.CALLS_END, call_id, None, Call.from_json)

    async def get_webrtc_token(self) -> Token:
        return await self._webrtc_token(None)

    async def get_turn_credentials(self) -> TurnCredentials:
        return await self._turn_credentials(None)

    async def submit_offer(self, call_id: str, sdp: str) -> None:
        await self._on_call(routes.CALLS_SUBMIT_OFFER, call_id, None, _ignore, {"sdp": _sdp(sdp)})

    async def submit_answer(self, call_id: str, sdp: str) -> None:
        await self._on_call(routes.CALLS_SUBMIT_ANSWER, call_id, None, _ignore, {"sdp": _sdp(sdp)})

    async def add_ice_candidate(
        self, call_id: str, candidate: Any, sdp_mid: str | None = None, sdp_mline_index: int | None = None
    ) -> None:
        body = candidate_json(candidate, sdp_mid, sdp_mline_index)
        await self._on_call(routes.CALLS_ADD_ICE_CANDIDATE, call_id, None, _ignore, body)

    async def submit_metrics(
        self, call_id: str, bitrate: float, packet_loss: float, jitter: float, rtt: float
    ) -> MetricsSample:
        return await self._metrics(
            call_id, {"bitrate": bitrate, "packet_loss": packet_loss, "jitter": jitter, "rtt": rtt}, None
        )

    async def get_metrics(self, call_id: str) -> list[MetricsSample]:
        return await self._get_metrics(call_id, None)

    async def toggle_record(self, call_id: str) -> Recording:
        return await self._on_call(routes.CALLS_TOGGLE_RECORD, call_id, None, Recording.from_json)

    async def list_recordings(self, call_id: str) -> list[Recording]:
        return await self._recordings(call_id, None)
