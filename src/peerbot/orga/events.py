"""Typed data-channel events of an Orga realtime session.

Five server event types are known; anything else is passed through as ``UnknownEvent``, and a
message that is not a JSON object with a ``type`` becomes an ``ErrorEvent``: never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    """Base of all session events; ``raw`` is the decoded JSON object as received."""

    type: str
    raw: dict[str, Any] = field(repr=False, compare=False)


@dataclass(frozen=True)
class SessionCreated(Event):
    """``session.created``: the session's settings as the server applied them."""

    session: dict[str, Any]


@dataclass(frozen=True)
class SessionUpdated(Event):
    """``session.updated``: the server's acknowledgement of a ``session.update``."""

    session: dict[str, Any]


@dataclass(frozen=True)
class ConversationCreated(Event):
    """``conversation.created``: the conversation's id."""

    conversation_id: str


@dataclass(frozen=True)
class InputTranscriptionCompleted(Event):
    """``conversation.item.input_audio_transcription.completed``: what the user said."""

    transcript: str


@dataclass(frozen=True)
class ResponseOutputItemDone(Event):
    """``response.output_item.done``: the assistant's reply as text."""

    text: str


@dataclass(frozen=True)
class UnknownEvent(Event):
    """A well-formed event of a type peerbot does not know, passed through untouched."""


@dataclass(frozen=True)
class ErrorEvent(Event):
    """A message that could not be decoded; ``error`` says why and ``data`` holds what came."""

    error: str
    data: str | bytes = ""


SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
CONVERSATION_CREATED = "conversation.created"
INPUT_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
RESPONSE_OUTPUT_ITEM_DONE = "response.output_item.done"


def _text(raw: dict[str, Any], *keys: str) -> str:
    # Servers disagree on the field name (the protocol notes list the variants).
    for key in keys:
        if isinstance(raw.get(key), str):
            return raw[key]
    return ""


def parse_event(message: str | bytes) -> Event:
    """Decode one data-channel message into a typed event, never raising."""
    try:
        raw = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        return ErrorEvent("error", {}, error=f"malformed JSON: {exc}", data=message)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return ErrorEvent("error", raw if isinstance(raw, dict) else {}, error="message has no string 'type'", data=message)
    kind = raw["type"]
    if kind == SESSION_CREATED:
        return SessionCreated(kind, raw, session=raw.get("session") or {})
    if kind == SESSION_UPDATED:
        return SessionUpdated(kind, raw, session=raw.get("session") or {})
    if kind == CONVERSATION_CREATED:
        conversation = raw.get("conversation") or {}
        return ConversationCreated(kind, raw, conversation_id=str(conversation.get("id", "")))
    if kind == INPUT_TRANSCRIPTION_COMPLETED:
        return InputTranscriptionCompleted(kind, raw, transcript=_text(raw, "transcript", "text", "message"))
    if kind == RESPONSE_OUTPUT_ITEM_DONE:
        return ResponseOutputItemDone(kind, raw, text=_text(raw, "text", "message", "transcript"))
    return UnknownEvent(kind, raw)


def session_update_message(**fields: Any) -> str:
    """The client → server ``session.update`` message (keyed ``event``, not ``type``)."""
    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if v is not None}
    return json.dumps({"event": "session.update", "data": data})
