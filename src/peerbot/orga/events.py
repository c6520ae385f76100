"""Typed data-channel events of an Orga realtime session.

Five server event types are known; anything else is passed through as ``UnknownEvent``, and a
message that is not a JSON object with a ``type`` becomes an ``ErrorEvent``: never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .._rest import MalformedResponse, read_json


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


@dataclass(frozen=True)
class CallRecreated(Event):
    """Not from the server: peerbot re-created the call after the connection was lost (type
    ``peerbot.call_recreated``); ``conversation_id`` is the new conversation's."""

    conversation_id: str
    previous_conversation_id: str | None
    outage_seconds: float


SESSION_CREATED = "session.created"
SESSION_UPDATED = "session.updated"
CONVERSATION_CREATED = "conversation.created"
INPUT_TRANSCRIPTION_COMPLETED = "conversation.item.input_audio_transcription.completed"
RESPONSE_OUTPUT_ITEM_DONE = "response.output_item.done"


def _text(raw: dict[str, Any], *keys: str) -> str:
    # Servers disagree on the field name (the protocol notes list the variants).
    for key in keys:
        value = raw.get(key)
        if isinstance(value, str):
            return value
    return ""


def _session(raw: dict[str, Any]) -> dict[str, Any] | None:
    session = raw.get("session")
    if session is None:
        return {}
    return session if isinstance(session, dict) else None


def _conversation_id(raw: dict[str, Any]) -> str | None:
    conversation = raw.get("conversation")
    value = conversation.get("id") if isinstance(conversation, dict) else None
    return value if isinstance(value, str) and value else None


def parse_event(message: str | bytes) -> Event:
    """Decode one data-channel message into a typed event, never raising.

    Not JSON (nesting too deep, a huge number, NaN, not UTF-8 included), no string ``type``, or a
    known type with a field of the wrong shape: an :class:`ErrorEvent` saying which. Strings are
    kept as they came (lone surrogates, control characters): whoever prints them makes them safe.
    """
    try:
        return _parse(message)
    except Exception as exc:  # a case the checks below missed must still not end an events() loop
        return ErrorEvent("error", {}, error=f"message could not be decoded ({type(exc).__name__})",
                          data=message if isinstance(message, (str, bytes)) else "")


def _parse(message: str | bytes) -> Event:
    if not isinstance(message, (str, bytes)):
        return ErrorEvent("error", {}, error=f"message is {type(message).__name__}, not text or bytes")
    try:
        raw = read_json(message, "data-channel message")
    except MalformedResponse as exc:  # e.g. "not JSON (data-channel message, nested too deeply)"
        return ErrorEvent("error", {}, error=str(exc), data=message)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return ErrorEvent("error", raw if isinstance(raw, dict) else {}, error="message has no string 'type'", data=message)
    kind = raw["type"]
    if kind in (SESSION_CREATED, SESSION_UPDATED):
        session = _session(raw)
        if session is None:
            return ErrorEvent("error", raw, error=f"{kind} has a 'session' that is not an object", data=message)
        return (SessionCreated if kind == SESSION_CREATED else SessionUpdated)(kind, raw, session=session)
    if kind == CONVERSATION_CREATED:
        conversation_id = _conversation_id(raw)
        if conversation_id is None:
            return ErrorEvent("error", raw, error=f"{kind} has no string 'conversation.id'", data=message)
        return ConversationCreated(kind, raw, conversation_id=conversation_id)
    if kind == INPUT_TRANSCRIPTION_COMPLETED:
        return InputTranscriptionCompleted(kind, raw, transcript=_text(raw, "transcript", "text", "message"))
    if kind == RESPONSE_OUTPUT_ITEM_DONE:
        return ResponseOutputItemDone(kind, raw, text=_text(raw, "text", "message", "transcript"))
    return UnknownEvent(kind, raw)


def session_update_message(**fields: Any) -> str:
    """The client → server ``session.update`` message (keyed ``event``, not ``type``)."""
    data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items() if v is not None}
    return json.dumps({"event": "session.update", "data": data})
