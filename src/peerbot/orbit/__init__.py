"""Orbit calls signalling: the backend REST client, the participant client and its event WebSocket."""

from ..errors import OrbitAuthenticationError, OrbitError, OrbitServerError
from . import routes
from .call import OrbitCall, answer, call
from .client import OrbitServer, OrbitUser
from .events import OrbitEvent, OrbitEvents
from .models import Call, MetricsSample, Recording, Token, TurnCredentials, User

__all__ = [
    "Call", "MetricsSample", "OrbitAuthenticationError", "OrbitCall", "OrbitError", "OrbitEvent", "OrbitEvents",
    "OrbitServer", "OrbitServerError", "OrbitUser", "Recording", "Token", "TurnCredentials", "User", "answer", "call",
    "routes",
]
