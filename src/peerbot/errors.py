"""Every exception peerbot raises, in one hierarchy.

::

    PeerbotError
    ├── ConfigurationError            (also ValueError) a bad setting, raised before any request
    │   └── InvalidIceServerError     an iceServers entry that is not a usable STUN/TURN server
    ├── SessionStateError             (also RuntimeError) used before start, or entered twice
    │   └── ClientClosedError         a signalling client used after aclose()
    ├── OrgaAIError                   status, code, message
    │   ├── OrgaAIAuthenticationError 401 / 403: the API key or ephemeral token was refused
    │   └── OrgaAIServerError         any other status, timeout, unreachable, malformed response
    ├── OrbitError                    status, code, message
    │   ├── OrbitAuthenticationError  401 / 403: a key or token refused, or not allowed to do this
    │   └── OrbitServerError          any other status, timeout, unreachable, malformed response
    ├── PeerConnectionError           the WebRTC connection could not be set up or was lost
    │   ├── SdpError
    │   ├── IceFailedError
    │   └── SessionEndedError         reason
    ├── MediaError
    │   └── AudioDeviceError
    └── CallNotConnectedError         outcome: rejected, missed, no_answer, cancelled, ended, no_call
        └── NoCallError               (also TimeoutError) answer(): no call came within ring_timeout

Signalling errors carry the HTTP ``status`` (0 when no usable answer came) and a ``code``;
engine errors say which stage of the WebRTC flow failed. Messages never contain secrets.
"""

from __future__ import annotations

__all__ = [
    "AudioDeviceError",
    "CallNotConnectedError",
    "ClientClosedError",
    "ConfigurationError",
    "IceFailedError",
    "InvalidIceServerError",
    "MediaError",
    "NoCallError",
    "OrbitAuthenticationError",
    "OrbitError",
    "OrbitServerError",
    "OrgaAIAuthenticationError",
    "OrgaAIError",
    "OrgaAIServerError",
    "PeerConnectionError",
    "PeerbotError",
    "SdpError",
    "SessionEndedError",
    "SessionStateError",
]


class PeerbotError(Exception):
    """Base class of all peerbot errors."""


class ConfigurationError(PeerbotError, ValueError):
    """A setting is missing or invalid; raised before any request is made."""


class InvalidIceServerError(ConfigurationError):
    """An ``iceServers`` entry is not a usable STUN/TURN server; the message names the field.

    Raised for settings (``ice_servers=``, ``--ice-server``); a server that sends such an entry gets
    its API's server error instead.
    """


class SessionStateError(PeerbotError, RuntimeError):
    """A session was used in the wrong state: before ``async with`` started it, or entered twice."""


class ClientClosedError(SessionStateError):
    """A signalling client (``OrgaClient``, ``OrbitServer``, ``OrbitUser``, ``OrbitEvents``) was used after
    ``aclose()``: make a new one."""


class _SignallingError(PeerbotError):
    """What both APIs' errors carry: ``status`` (0 when no usable answer came), ``code`` and ``message``."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


# --- Orga signalling -----------------------------------------------------------------


class OrgaAIError(_SignallingError):
    """An Orga API call failed. ``status`` is the HTTP status (0 when no response came)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "ORGA_ERROR") -> None:
        super().__init__(message, status=status, code=code)


class OrgaAIAuthenticationError(OrgaAIError):
    """The API key or ephemeral token was refused (401, or 403 for a credential in the wrong place)."""

    def __init__(self, message: str, *, status: int = 401, code: str = "AUTHENTICATION_ERROR") -> None:
        super().__init__(message, status=status, code=code)


class OrgaAIServerError(OrgaAIError):
    """Any other failure: non-2xx status, timeout, network failure, or a malformed response."""

    def __init__(self, message: str, *, status: int = 0, code: str = "SERVER_ERROR") -> None:
        super().__init__(message, status=status, code=code)


# --- Orbit signalling ----------------------------------------------------------------


class OrbitError(_SignallingError):
    """An Orbit API call or the event WebSocket failed, with ``status``, the server's ``code`` and ``message``."""

    def __init__(self, message: str, *, status: int = 0, code: str = "orbit_error") -> None:
        super().__init__(message, status=status, code=code)


class OrbitAuthenticationError(OrbitError):
    """401 or 403: the secret key or user token was refused (or expired), or the user may not do this."""

    def __init__(self, message: str, *, status: int = 401, code: str = "unauthorized") -> None:
        super().__init__(message, status=status, code=code)


class OrbitServerError(OrbitError):
    """Any other failure: non-2xx status, timeout, network failure, or a malformed response."""

    def __init__(self, message: str, *, status: int = 0, code: str = "server_error") -> None:
        super().__init__(message, status=status, code=code)


# --- Engine and media ----------------------------------------------------------------


class PeerConnectionError(PeerbotError):
    """The WebRTC connection could not be set up or was lost."""


class SdpError(PeerConnectionError):
    """A session description could not be parsed or applied."""


class IceFailedError(PeerConnectionError):
    """ICE found no working candidate pair (wrong TURN credentials, unreachable peer...)."""


class SessionEndedError(PeerConnectionError):
    """The session ended without the application asking: ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MediaError(PeerbotError):
    """A media source or sink could not be opened or failed."""


class AudioDeviceError(MediaError):
    """An audio device is missing, or the audio stack (PortAudio) is not installed."""


class CallNotConnectedError(PeerbotError):
    """An Orbit call never reached media: ``outcome`` is ``rejected``, ``missed``, ``no_answer``,
    ``cancelled`` or ``ended`` (the other party hung up during set-up)."""

    def __init__(self, outcome: str, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class NoCallError(CallNotConnectedError, TimeoutError):
    """``peerbot.orbit.answer()`` waited ``ring_timeout`` seconds and no call came (outcome ``no_call``).
    Also a ``TimeoutError``, which ``answer()`` raised before."""

    def __init__(self, message: str) -> None:
        super().__init__("no_call", message)
