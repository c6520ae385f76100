"""Credentials the local Orga server signs: ephemeral tokens and TURN REST passwords.

An ephemeral token is JWT-shaped (``header.payload.signature``, base64url, HS256) so that it can
never be mistaken for an API key, which is one opaque string without dots. The payload names the
API key only by a hash (``kid``), never by the key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

TOKEN_SCOPE = "ephemeral"
_HEADER = {"alg": "HS256", "typ": "JWT"}


class _TokenRefused(Exception):
    """A token was refused (server-internal: the servers answer 401). ``reason`` is
    ``"malformed"``, ``"bad_signature"`` or ``"expired"``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason

    @property
    def expired(self) -> bool:
        return self.reason == "expired"


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token says: who it was issued for, by which key, and until when."""

    subject: str
    key_id: str
    issued_at: float
    expires_at: float
    token_id: str


def key_id(api_key: str) -> str:
    """A short, non-reversible name for an API key, safe to embed in tokens and logs."""
    return "key_" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, signing_input: str) -> str:
    return _b64encode(hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest())


def issue_token(secret: bytes, subject: str, ttl: float = 60, *, key_id: str = "", now: float | None = None) -> str:
    """Sign a token for ``subject`` (the user's email) that expires ``ttl`` seconds from now."""
    issued = time.time() if now is None else now
    payload = {
        "scope": TOKEN_SCOPE,
        "sub": subject,
        "kid": key_id,
        "iat": round(issued, 3),
        # Fractional expiry (allowed by JWT's NumericDate) so that short test TTLs are exact.
        "exp": round(issued + ttl, 3),
        "jti": secrets.token_hex(8),
    }
    head = _b64encode(json.dumps(_HEADER, separators=(",", ":")).encode())
    body = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{_sign(secret, f'{head}.{body}')}"


def looks_like_token(credential: str) -> bool:
    """True for anything shaped like a token (three dot-separated parts), signed or not."""
    parts = credential.split(".")
    return len(parts) == 3 and all(parts)


def verify_token(secret: bytes, token: str, *, now: float | None = None) -> TokenClaims:
    """Check a token's signature, scope and expiry; raise ``_TokenRefused`` saying why if refused."""
    if not token.isascii() or not looks_like_token(token):  # compare_digest takes ASCII text only
        raise _TokenRefused("malformed", "not a token")
    head, body, signature = token.split(".")
    try:
        header = json.loads(_b64decode(head))
        payload = json.loads(_b64decode(body))
    except (ValueError, binascii.Error) as exc:
        raise _TokenRefused("malformed", "token parts are not base64url JSON") from exc
    if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(payload, dict):
        raise _TokenRefused("malformed", "unsupported token header or payload")
    # Signature first: nothing in an unauthenticated payload is trusted, its expiry included.
    if not hmac.compare_digest(signature, _sign(secret, f"{head}.{body}")):
        raise _TokenRefused("bad_signature", "token signature does not match")
    expires_at, issued_at = payload.get("exp"), payload.get("iat", 0)
    if payload.get("scope") != TOKEN_SCOPE or not isinstance(expires_at, (int, float)):
        raise _TokenRefused("malformed", "token is not an ephemeral token")
    if (time.time() if now is None else now) >= expires_at:
        raise _TokenRefused("expired", "token has expired")
    return TokenClaims(
        subject=str(payload.get("sub", "")),
        key_id=str(payload.get("kid", "")),
        issued_at=float(issued_at) if isinstance(issued_at, (int, float)) else 0.0,
        expires_at=float(expires_at),
        token_id=str(payload.get("jti", "")),
    )


def turn_rest_credentials(secret: str, user: str, ttl: float = 86400, *, now: float | None = None) -> tuple[str, str]:
    """``(username, credential)`` for a TURN server using the REST API scheme (coturn ``use-auth-secret``).

    The username is ``"<expiry epoch>:<user>"`` and the credential base64(HMAC-SHA1(secret, username)).
    """
    expiry = int((time.time() if now is None else now) + ttl)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")
