"""Who an Orbit request acts as: the apps' key pairs, user tokens, and the checks of each route.

A backend sends an app's secret key (and, on the calls routes, the acting user in
``X-App-User-Id``); a participant sends a user token with the app's publishable key in
``X-Client-Id``. Refusals are ``ApiError``\\ s: 400 for a missing acting user, 401 for a wrong or
expired credential, 403 for the right kind of credential in the wrong place.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from aiohttp import web

from ..errors import ConfigurationError
from ..orbit import routes
from ..orbit.models import Token
from ..orbit.routes import Auth, Route
from ._json_api import ApiError, bearer
from ._orbit_state import Directory
from .tokens import TokenClaims, _TokenRefused, issue_token, key_id, looks_like_token, verify_token


def generate_secret_key() -> str:
    """A fresh random secret key, ``sk_test_…``."""
    return "sk_test_" + secrets.token_urlsafe(24)


def generate_publishable_key() -> str:
    """A fresh random publishable key, ``pk_test_…``."""
    return "pk_test_" + secrets.token_urlsafe(16)


def key_pairs(
    secret_keys: Iterable[str] | None, publishable_keys: Iterable[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (secret, publishable) keys, one pair per app; a missing side is generated."""
    secret = tuple(dict.fromkeys(secret_keys or ()))
    public = tuple(dict.fromkeys(publishable_keys or ()))
    if secret and public and len(secret) != len(public):
        raise ConfigurationError("secret_keys and publishable_keys pair up one to one: give as many of each")
    secret = secret or tuple(generate_secret_key() for _ in public or (None,))
    public = public or tuple(generate_publishable_key() for _ in secret)
    for key in (*secret, *public):
        if not isinstance(key, str) or not key.isascii() or not key or key != key.strip() or "." in key:
            raise ConfigurationError("keys must be non-empty ASCII strings without spaces or dots")
    return secret, public


@dataclass(frozen=True)
class Actor:
    """Who a request acts as: the user (``None`` on the users routes) and the app's key id."""

    user_id: str | None
    key_id: str

    @property
    def acting(self) -> str:
        """The acting user's id (the calls routes always have one)."""
        assert self.user_id is not None
        return self.user_id


class OrbitAuth:
    """Checks credentials against the apps' keys and signs user tokens (with a per-process secret)."""

    def __init__(self, secret_keys: tuple[str, ...], publishable_keys: tuple[str, ...], users: Directory) -> None:
        self._secret_keys = secret_keys
        self._apps = {key_id(sk): pk for sk, pk in zip(secret_keys, publishable_keys)}
        self._users = users
        self._token_secret = secrets.token_bytes(32)  # tokens die with the server, by design

    def authenticate(self, request: web.Request, route: Route) -> Actor:
        """The actor of ``request`` on ``route``, or an ``ApiError``."""
        credential = bearer(request)
        app = self._secret_key_id(credential)
        if app is not None:
            user_id = None
            if route.acting_user:
                acting = request.headers.get(routes.ACTING_USER_HEADER, "").strip()
                if not acting:
                    raise ApiError(
                        400, "missing_acting_user", f"send the acting user's id in {routes.ACTING_USER_HEADER}"
                    )
                user_id = self._users.active(acting).id
            return Actor(user_id, app)
        if Auth.USER_TOKEN not in route.auth:
            if looks_like_token(credential):
                raise ApiError(403, "secret_key_required", "a user token cannot be used here; send the secret key")
            raise ApiError(401, "invalid_secret_key", "invalid secret key")
        claims = self.verify_user_token(credential, request.headers.get(routes.CLIENT_ID_HEADER))
        named = request.headers.get(routes.ACTING_USER_HEADER)
        if named and named != claims.subject:
            raise ApiError(403, "acting_user_mismatch", f"a user token acts as its own user, not as {named[:64]!r}")
        return Actor(claims.subject, claims.key_id)

    def verify_user_token(self, token: str, client_id: str | None) -> TokenClaims:
        """The claims of a valid user token of an active user, sent with its app's publishable key."""
        if not token.isascii():  # a query string may carry anything
            raise ApiError(401, "invalid_token", "invalid user token")
        if self._secret_key_id(token) is not None:
            raise ApiError(401, "invalid_token", "that is the secret key, not a user token: keep it on the backend")
        try:
            claims = verify_token(self._token_secret, token)
        except _TokenRefused as exc:
            if exc.expired:
                raise ApiError(401, "token_expired", "the user token has expired; request a new one") from None
            raise ApiError(401, "invalid_token", "invalid user token") from None
        if not client_id:
            raise ApiError(401, "missing_client_id", f"send the publishable key ({routes.CLIENT_ID_HEADER}, client_id)")
        if not client_id.isascii() or not hmac.compare_digest(client_id, self._apps.get(claims.key_id, "")):
            raise ApiError(403, "client_id_mismatch", "the publishable key is not of the app that issued the token")
        try:
            user = self._users.get(claims.subject)
        except ApiError:
            raise ApiError(401, "invalid_token", "the token's user does not exist") from None
        if not user.is_active:
            raise ApiError(401, "user_inactive", "the token's user is deactivated")
        return claims

    def issue_token(self, user_id: str, ttl: int, app: str) -> Token:
        """A user token for ``user_id`` of app ``app`` (a key id), valid ``ttl`` seconds."""
        now = time.time()
        token = issue_token(self._token_secret, user_id, ttl, key_id=app, now=now)
        return Token(token, datetime.fromtimestamp(now + ttl, timezone.utc))

    def _secret_key_id(self, credential: str) -> str | None:
        for key in self._secret_keys:
            if hmac.compare_digest(credential, key):  # both ASCII: bearer() checks
                return key_id(key)
        return None
