"""Orga AI realtime sessions: the REST client, typed events, and ``connect()``."""

from ..errors import OrgaAIAuthenticationError, OrgaAIError, OrgaAIServerError
from . import events
from .client import OrgaClient, SessionConfig
from .params import MODELS, VOICES, SessionParams
from .session import OrgaSession, connect

__all__ = [
    "MODELS", "VOICES", "OrgaAIAuthenticationError", "OrgaAIError", "OrgaAIServerError", "OrgaClient",
    "OrgaSession", "SessionConfig", "SessionParams", "connect", "events",
]
