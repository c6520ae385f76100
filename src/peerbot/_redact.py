"""Show secrets as a short, recognisable prefix and suffix only."""

from __future__ import annotations


def redact(secret: str | None) -> str:
    """Return ``sk_live_…9f``-style text for a secret, never the secret itself."""
    if not secret:
        return "<none>"
    if len(secret) <= 8:
        return "…"
    head = secret[: min(8, len(secret) // 4)]
    return f"{head}…{secret[-2:]}"
