"""The Orbit API's routes and event names: one table, used by the client and the local server alike.

Paths are templates under :data:`API_PREFIX` (``/api/v1``); aiohttp registers them as they are
and the client fills them with :meth:`Route.url`. The mapping is the project's own where public
material is silent; see ``protocol/orbit-calls.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote

API_PREFIX = "/api/v1"

ACTING_USER_HEADER = "X-App-User-Id"
CLIENT_ID_HEADER = "X-Client-Id"

# WebSocket close codes the server uses besides the standard ones.
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_FORBIDDEN = 4003

MAX_TOKEN_TTL = 86400
DEFAULT_TOKEN_TTL = 3600
CALL_TYPES = ("voice", "video")


class Auth(Enum):
    """Which credential a route takes in ``Authorization: Bearer …``."""

    SECRET_KEY = "secret_key"  # the backend's sk_…; the acting user in X-App-User-Id
    USER_TOKEN = "user_token"  # a participant's token from users.createToken, with X-Client-Id: pk_…


BACKEND = frozenset({Auth.SECRET_KEY})
BACKEND_OR_USER = frozenset({Auth.SECRET_KEY, Auth.USER_TOKEN})


@dataclass(frozen=True)
class Route:
    """One endpoint: the SDK method it serves, HTTP method, path template, accepted credentials.

    ``acting_user`` says whether a backend request names the user it acts for in
    ``X-App-User-Id`` (with a user token, the token's own user acts).
    """

    name: str
    method: str
    path: str
    auth: frozenset[Auth]
    acting_user: bool = False

    @property
    def template(self) -> str:
        """The full path template, ``/api/v1/…{placeholders}``, as the server registers it."""
        return API_PREFIX + self.path

    def url(self, **params: str) -> str:
        """The full path with each placeholder filled in, percent-encoded (``/`` included)."""
        return self.template.format(**{name: quote(value, safe="") for name, value in params.items()})


def _backend(name: str, method: str, path: str) -> Route:
    return Route(name, method, path, BACKEND)


def _call(name: str, method: str, path: str) -> Route:
    return Route(name, method, path, BACKEND_OR_USER, acting_user=True)


USERS_CREATE = _backend("users.create", "POST", "/users")
USERS_LIST = _backend("users.list", "GET", "/users")
USERS_GET = _backend("users.get", "GET", "/users/{user_id}")
USERS_GET_BY_EXTERNAL_ID = _backend("users.getByExternalId", "GET", "/users/by-external-id/{external_id}")
USERS_UPDATE = _backend("users.update", "PATCH", "/users/{user_id}")
USERS_DEACTIVATE = _backend("users.deactivate", "POST", "/users/{user_id}/deactivate")
USERS_CREATE_TOKEN = _backend("users.createToken", "POST", "/users/{user_id}/tokens")

CALLS_INITIATE = _call("calls.initiate", "POST", "/calls")
CALLS_ACCEPT = _call("calls.accept", "POST", "/calls/{call_id}/accept")
CALLS_REJECT = _call("calls.reject", "POST", "/calls/{call_id}/reject")
CALLS_END = _call("calls.end", "POST", "/calls/{call_id}/end")
CALLS_WEBRTC_TOKEN = _call("calls.getWebrtcToken", "GET", "/calls/webrtc-token")
CALLS_TURN_CREDENTIALS = _call("calls.getTurnCredentials", "GET", "/calls/turn-credentials")
CALLS_SUBMIT_OFFER = _call("calls.submitOffer", "POST", "/calls/{call_id}/offer")
CALLS_SUBMIT_ANSWER = _call("calls.submitAnswer", "POST", "/calls/{call_id}/answer")
CALLS_ADD_ICE_CANDIDATE = _call("calls.addIceCandidate", "POST", "/calls/{call_id}/ice-candidates")
CALLS_SUBMIT_METRICS = _call("calls.submitMetrics", "POST", "/calls/{call_id}/metrics")
CALLS_GET_METRICS = _call("calls.getMetrics", "GET", "/calls/{call_id}/metrics")
CALLS_TOGGLE_RECORD = _call("calls.toggleRecord", "POST", "/calls/{call_id}/recording")
CALLS_LIST_RECORDINGS = _call("calls.listRecordings", "GET", "/calls/{call_id}/recordings")

# The event WebSocket: GET /api/v1/ws?token=<user token>&client_id=<pk>[&since=<seq>], upgraded.
EVENTS = Route("events", "GET", "/ws", frozenset({Auth.USER_TOKEN}))

REST_ROUTES = (
    USERS_CREATE, USERS_LIST, USERS_GET, USERS_GET_BY_EXTERNAL_ID, USERS_UPDATE, USERS_DEACTIVATE,
    USERS_CREATE_TOKEN,
    CALLS_INITIATE, CALLS_ACCEPT, CALLS_REJECT, CALLS_END, CALLS_WEBRTC_TOKEN, CALLS_TURN_CREDENTIALS,
    CALLS_SUBMIT_OFFER, CALLS_SUBMIT_ANSWER, CALLS_ADD_ICE_CANDIDATE, CALLS_SUBMIT_METRICS, CALLS_GET_METRICS,
    CALLS_TOGGLE_RECORD, CALLS_LIST_RECORDINGS,
)
ROUTES = (*REST_ROUTES, EVENTS)

# --- events on the WebSocket: {"type": …, "data": {…}, "seq": n} -------------------------

CALL_INCOMING = "call:incoming"  # data: the call
CALL_ACCEPTED = "call:accepted"  # data: the call
CALL_REJECTED = "call:rejected"  # data: the call
CALL_ENDED = "call:ended"  # data: call_id, reason ("hangup", "cancelled", "missed"), call
CALL_OFFER = "call:offer"  # data: call_id, sdp, from_user_id
CALL_ANSWER = "call:answer"  # data: call_id, sdp, from_user_id
CALL_ICE_CANDIDATE = "call:ice-candidate"  # data: call_id, candidate, sdpMid, sdpMLineIndex, from_user_id

CALL_EVENTS = (CALL_INCOMING, CALL_ACCEPTED, CALL_REJECTED, CALL_ENDED, CALL_OFFER, CALL_ANSWER, CALL_ICE_CANDIDATE)

# Reasons in call:ended.
END_HANGUP = "hangup"  # a party ended an accepted call
END_CANCELLED = "cancelled"  # a party ended the call while it was still ringing
END_MISSED = "missed"  # nobody answered within the ring timeout
