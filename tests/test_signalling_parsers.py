"""Property tests of every signalling parser: hostile input gives a typed value or MalformedResponse, never
another exception.

Covered: the shared JSON reader, the Orga response parsers and data-channel events, the Orbit models
and the Orbit event-WebSocket frames.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerbot._rest import MalformedResponse, read_json
from peerbot.orbit.events import parse_frame
from peerbot.orbit.models import Call, MetricsSample, Recording, Token, TurnCredentials, User
from peerbot.orga import events as ev
from peerbot.orga.client import _parse_call, _parse_ice_config

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
KEYS = ["type", "session", "conversation", "id", "transcript", "text", "message", "answer", "sdp",
        "conversation_id", "ephemeral_token", "iceServers", "urls", "username", "credential", "ttl", "token",
        "expires_at", "external_id", "display_name", "metadata", "is_active", "created_at", "caller_id",
        "callee_id", "status", "data", "seq", "user_id", "bitrate", "recorded_at", "call_id", "started_by",
        "started_at", "stopped_at", "packet_loss", "jitter", "rtt"]
# Objects with the fields the parsers look for, holding any JSON-ish value.
shaped = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=6),
    max_leaves=25,
)
EVENT_TYPES = [ev.SESSION_CREATED, ev.SESSION_UPDATED, ev.CONVERSATION_CREATED, ev.INPUT_TRANSCRIPTION_COMPLETED,
               ev.RESPONSE_OUTPUT_ITEM_DONE, "x.unknown"]
events = st.builds(lambda kind, rest: {**rest, "type": kind}, st.sampled_from(EVENT_TYPES),
                   st.dictionaries(st.sampled_from(KEYS), shaped, max_size=4))

HOSTILE_TEXTS = [
    "[" * 100_000,
    '{"type": "x", "a": ' * 50_000 + "1" + "}" * 50_000,
    '{"type": "x", "n": ' + "9" * 5000 + "}",
    '{"type": "x", "n": NaN}',
    '{"type": "x", "n": -Infinity}',
    '{"type": "x", "n": 1e400}',
    '{"type": "conversation.created", "conversation": 5}',
    '{"type": "conversation.created", "conversation": {"id": ' + "[" * 900 + "]" * 900 + "}}",
    '{"type": "session.created", "session": [1]}',
]


def dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=True)


# --- the JSON reader -------------------------------------------------------------------


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_read_json_of_any_bytes_is_a_value_or_malformed_response(body: bytes) -> None:
    try:
        read_json(body)
    except MalformedResponse as exc:
        assert str(exc).startswith("not JSON") and exc.predicate.startswith("is not JSON")


@FAST
@given(json_values)
def test_read_json_refuses_exactly_the_non_finite_numbers(value: Any) -> None:
    text = dumps(value)
    if has_non_finite(value):
        with pytest.raises(MalformedResponse, match="where a number is expected"):
            read_json(text.encode())
    else:
        assert read_json(text.encode()) == json.loads(text)


def has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    return False


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_read_json_of_hostile_text_never_raises_anything_but_malformed_response(text: str) -> None:
    try:
        read_json(text)
    except MalformedResponse:
        pass
    else:
        assert "conversation" in text or "session" in text  # valid JSON, wrong shape: for the parsers


# --- Orga ------------------------------------------------------------------------------


@FAST
@given(shaped)
def test_orga_response_parsers_return_a_value_or_raise_malformed_response(value: Any) -> None:
    for parse in (_parse_call, _parse_ice_config):
        if not isinstance(value, dict):
            continue
        try:
            parsed = parse(value)
        except MalformedResponse as exc:
            assert exc.predicate.startswith(("is missing", "is malformed"))
        else:
            if parse is _parse_call:
                assert parsed[0]["type"] == "answer" and isinstance(parsed[1], str)
            else:
                assert all(isinstance(s["urls"], list) and s["urls"] for s in parsed)


@FAST
@given(events)
def test_parse_event_of_any_typed_object_is_an_event_with_the_right_field_types(message: dict[str, Any]) -> None:
    event = ev.parse_event(dumps(message))

    assert isinstance(event, ev.Event)
    if isinstance(event, ev.ErrorEvent):
        assert event.error and event.type == "error"
    elif isinstance(event, (ev.SessionCreated, ev.SessionUpdated)):
        assert isinstance(event.session, dict)
    elif isinstance(event, ev.ConversationCreated):
        assert isinstance(event.conversation_id, str) and event.conversation_id
    elif isinstance(event, ev.InputTranscriptionCompleted):
        assert isinstance(event.transcript, str)
    elif isinstance(event, ev.ResponseOutputItemDone):
        assert isinstance(event.text, str)
    else:
        assert isinstance(event, ev.UnknownEvent) and event.type == "x.unknown"


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200) | json_values.map(dumps))
def test_parse_event_of_any_string_or_bytes_never_raises(message: str | bytes) -> None:
    event = ev.parse_event(message)
    assert isinstance(event, ev.Event)
    if not isinstance(event, ev.ErrorEvent):
        assert isinstance(event.raw, dict) and isinstance(event.raw.get("type"), str)


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
def test_parse_event_turns_each_hostile_message_into_an_error_event_with_a_reason(text: str) -> None:
    event = ev.parse_event(text)

    assert isinstance(event, ev.ErrorEvent)
    assert any(word in event.error for word in ("not JSON", "conversation.id", "'session'", "type"))
    assert event.data == text


def test_conversation_created_with_a_number_for_the_conversation_is_an_error_event_naming_the_field() -> None:
    event = ev.parse_event('{"type": "conversation.created", "conversation": 5}')
    assert isinstance(event, ev.ErrorEvent) and "conversation.id" in event.error
    good = ev.parse_event('{"type": "conversation.created", "conversation": {"id": "conv_1"}}')
    assert good == ev.ConversationCreated("conversation.created", {}, conversation_id="conv_1")


# --- Orbit -----------------------------------------------------------------------------


@FAST
@given(shaped)
def test_orbit_models_from_json_return_a_model_or_raise_malformed_response(value: Any) -> None:
    for model in (User, Token, Call, TurnCredentials, MetricsSample, Recording):
        try:
            parsed = model.from_json(value)
        except MalformedResponse as exc:
            assert str(exc) and exc.predicate.startswith("is malformed: ")
        else:
            assert isinstance(parsed, model)
            repr(parsed)  # a repr of a parsed hostile value must not blow up either


def test_turn_credentials_refuse_a_turn_server_without_credentials_and_an_infinite_ttl() -> None:
    with pytest.raises(MalformedResponse, match=r"iceServers\[0\] is a TURN server"):
        TurnCredentials.from_json({"iceServers": [{"urls": "turn:t.example:3478"}], "ttl": 60})
    with pytest.raises(MalformedResponse, match="'ttl' is not a finite number"):
        TurnCredentials.from_json({"iceServers": [], "ttl": 10**400})
    with pytest.raises(MalformedResponse, match=r"iceServers\[0\]\.urls"):
        TurnCredentials.from_json({"iceServers": [{"urls": "http://x"}], "ttl": 60})


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200) | json_values.map(dumps)
       | st.builds(lambda t, d, s: dumps({"type": t, "data": d, "seq": s}), st.text(max_size=10), shaped, shaped))
def test_parse_frame_of_anything_is_an_event_with_a_sane_seq_or_none(frame: str | bytes) -> None:
    event = parse_frame(frame)
    if event is not None:
        assert isinstance(event.type, str) and isinstance(event.data, dict)
        assert event.seq is None or 0 <= event.seq < 2**63


@pytest.mark.parametrize("text", HOSTILE_TEXTS[:6], ids=range(6))
def test_parse_frame_skips_hostile_frames(text: str) -> None:
    assert parse_frame(text) is None


def test_parse_frame_keeps_an_event_whose_seq_is_huge_or_negative_but_drops_the_seq() -> None:
    huge = parse_frame('{"type": "call:offer", "data": {"call_id": "c"}, "seq": ' + "9" * 4000 + "}")
    negative = parse_frame('{"type": "call:offer", "data": {}, "seq": -3}')
    assert huge is not None and huge.seq is None and huge.call_id == "c"
    assert negative is not None and negative.seq is None
