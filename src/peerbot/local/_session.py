"""A session's settings as the local Orga server keeps them: read from JSON, rendered back."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ..errors import ConfigurationError
from ..orga.params import SessionParams
from ._fields import finite_number

# Fields a ``session.update`` may change; the ``calls`` params may also set ``history``.
SESSION_UPDATE_FIELDS = ("model", "voice", "temperature", "instructions", "modalities", "return_transcription")
CALL_PARAM_FIELDS = SESSION_UPDATE_FIELDS + ("history",)


def new_id(prefix: str) -> str:
    """A random id such as ``conv_3f9a…``."""
    return f"{prefix}_{secrets.token_hex(12)}"


def _checked(key: str, value: Any) -> Any:
    # JSON types are checked here because SessionParams trusts Python callers.
    if key in ("voice", "model") and isinstance(value, str):
        return value
    if key == "temperature" and finite_number(value) is not None:
        return finite_number(value)
    if key == "instructions" and isinstance(value, str):
        return value
    if key in ("return_transcription", "history") and isinstance(value, bool):
        return value
    if key == "modalities" and isinstance(value, list) and all(isinstance(m, str) for m in value):
        return tuple(value)
    raise ConfigurationError(f"{key} has the wrong type: {type(value).__name__}")


def apply_fields(
    base: SessionParams, fields: Mapping[str, Any], *, allowed: tuple[str, ...] = CALL_PARAM_FIELDS
) -> SessionParams:
    """``base`` with ``fields`` applied; raises ``ConfigurationError`` for a bad type or value.

    Unknown keys are ignored (a newer client may send more), and ``null`` keeps the current value
    except for ``instructions``, where it clears them.
    """
    changes: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in allowed:
            continue
        if value is None:
            if key == "instructions":
                changes[key] = None
            continue
        changes[key] = _checked(key, value)
    return replace(base, **changes)  # SessionParams.__post_init__ validates the values


def session_object(session_id: str, params: SessionParams) -> dict[str, Any]:
    """The ``session`` object of ``session.created`` / ``session.updated``."""
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": params.model,
        "voice": params.voice,
        "temperature": params.temperature,
        "instructions": params.instructions,
        "modalities": list(params.modalities),
        "return_transcription": params.return_transcription,
    }
