"""The Orga realtime API's routes: one table, used by the client and the local server alike."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Auth(Enum):
    """Which credential a route takes in ``Authorization: Bearer …``."""

    API_KEY = "api_key"
    EPHEMERAL_TOKEN = "ephemeral_token"


@dataclass(frozen=True)
class Route:
    """One endpoint: HTTP method, path under the base URL, and the credential it takes."""

    method: str
    path: str
    auth: Auth


CLIENT_SECRETS = Route("POST", "/v1/realtime/client-secrets", Auth.API_KEY)
ICE_CONFIG = Route("GET", "/v1/realtime/ice-config", Auth.EPHEMERAL_TOKEN)
CALLS = Route("POST", "/v1/realtime/calls", Auth.EPHEMERAL_TOKEN)

ROUTES = (CLIENT_SECRETS, ICE_CONFIG, CALLS)

DEFAULT_BASE_URL = "https://api.orga-ai.com"
DATA_CHANNEL_LABEL = "orga-realtime-client-events"
