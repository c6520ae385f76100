"""Misuse of the session API gets a clear typed error: before start, entered twice, bad settings."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbot import orbit, orga
from peerbot.errors import CallNotConnectedError, ConfigurationError, SessionStateError
from peerbot.media import Tone

from media_checks import dominant_frequency
from orbit_bed import orbit_bed

# Nothing listens here: a setting refused at connect() time never reaches the network.
NOWHERE = {"api_key": "orga_test_key_0123456789", "base_url": "http://127.0.0.1:9", "user_email": "a@b.example"}
ORBIT_NOWHERE = {"token": "tok_test_0123456789", "client_id": "pk_test_0123", "base_url": "http://127.0.0.1:9"}


@pytest.mark.parametrize("use", ["audio_frames", "video_frames", "events", "stats"])
async def test_reading_an_orga_session_before_start_raises_session_state_error(use):
    session = orga.connect(Tone(), **NOWHERE)
    with pytest.raises(SessionStateError, match="async with"):
        getattr(session, use)()


async def test_update_and_closed_before_start_raise_session_state_error():
    session = orga.connect(Tone(), **NOWHERE)
    with pytest.raises(SessionStateError, match="async with"):
        await session.update(instructions="hi")
    with pytest.raises(SessionStateError, match="async with"):
        await session.closed()
    call = orbit.call("usr_bob", Tone(), **ORBIT_NOWHERE)
    for use in ("audio_frames", "video_frames", "stats"):
        with pytest.raises(SessionStateError, match="async with"):
            getattr(call, use)()
    with pytest.raises(SessionStateError):
        await call.closed()


async def test_entering_a_session_twice_or_after_close_raises_session_state_error(orga_kwargs):
    session = orga.connect(Tone(), **orga_kwargs)
    async with session:
        with pytest.raises(SessionStateError, match="already started"):
            async with session:
                pass
        assert session.state == "connected"  # the refused second entry did not close it
    with pytest.raises(SessionStateError, match="already started"):
        async with session:
            pass
    assert session.state == "closed"


@pytest.mark.parametrize("options, match", [
    ({"record": "out.txt"}, "cannot record to out.txt"),
    ({"ice_servers": [{"urls": "http://stun.example"}]}, "stun:"),
    ({"ice_servers": [{"urls": "turn:turn.example:3478"}]}, "username and a credential"),
    ({"ice_servers": "stun:stun.example"}, "list"),
    ({"connect_timeout": 0}, "connect_timeout"),
    ({"liveness_timeout": -1}, "liveness_timeout"),
    ({"gather_timeout": float("nan")}, "gather_timeout"),
    ({"reconnect_attempts": 0}, "reconnect_attempts"),
    ({"reconnect_backoff": -0.5}, "reconnect_backoff"),
    ({"turn_tls_ca": "/nonexistent/ca.pem"}, "turn_tls_ca"),
])
def test_bad_orga_settings_raise_configuration_error_at_connect(options, match):
    with pytest.raises(ConfigurationError, match=match):
        orga.connect(Tone(), **NOWHERE, **options)


@pytest.mark.parametrize("options, match", [
    ({"type": "hologram"}, "call type"),
    ({"record": "out.txt"}, "cannot record"),
    ({"ring_timeout": 0}, "ring_timeout"),
    ({"connect_timeout": -3}, "connect_timeout"),
    ({"metrics_interval": 0}, "metrics_interval"),
    ({"liveness_timeout": 0}, "liveness_timeout"),
    ({"turn_tls_ca": "/nonexistent/ca.pem"}, "turn_tls_ca"),
    ({"reconnect": "yes"}, "reconnect"),
])
def test_bad_orbit_settings_raise_configuration_error_at_call_and_answer(options, match):
    with pytest.raises(ConfigurationError, match=match):
        orbit.call("usr_bob", Tone(), **ORBIT_NOWHERE, **options)
    if "type" not in options:
        with pytest.raises(ConfigurationError, match=match):
            orbit.answer(Tone(), **ORBIT_NOWHERE, **options)


def test_a_video_track_given_as_the_audio_source_is_a_configuration_error():
    from peerbot.media import TestPattern

    with pytest.raises(ConfigurationError, match="audio track"):
        orga.connect(TestPattern(), **NOWHERE)


_non_positive = st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.just(-math.inf),
                          st.integers(max_value=0), st.booleans(), st.text(max_size=3), st.none())


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(["connect_timeout", "liveness_timeout", "gather_timeout", "reconnect_backoff"]),
       value=_non_positive)
def test_any_non_positive_or_non_numeric_duration_is_refused(name, value):
    with pytest.raises(ConfigurationError):
        orga.connect(Tone(), **NOWHERE, **{name: value})


_urls = st.one_of(st.text(max_size=30), st.sampled_from(["stun:a.example", "turn:a.example", "turns:a.example:5349",
                                                          "stuns:a.example", "http://a.example", ""]))
_entries = st.fixed_dictionaries({"urls": st.one_of(_urls, st.lists(_urls, max_size=3))},
                                 optional={"username": st.one_of(st.text(max_size=5), st.integers()),
                                           "credential": st.one_of(st.text(max_size=5), st.none())})


@settings(max_examples=200, deadline=None)
@given(servers=st.lists(st.one_of(_entries, st.integers(), st.text(max_size=5)), max_size=3))
def test_ice_servers_are_either_accepted_or_refused_with_configuration_error(servers):
    try:
        session = orga.connect(Tone(), **NOWHERE, ice_servers=servers)
    except ConfigurationError as exc:
        assert str(exc)
        return
    assert session._ice_override is not None and len(session._ice_override) == len(servers)
    for server in session._ice_override:
        assert all(url.lower().startswith(("stun:", "stuns:", "turn:", "turns:")) for url in server["urls"])


async def test_answer_skips_a_call_that_ended_before_it_started_and_takes_the_next_ringing_one():
    async with orbit_bed(ring_timeout=3) as bed:
        alice, bob = await bed.participant("alice"), await bed.participant("bob")
        with pytest.raises(CallNotConnectedError):  # bob is not there: alice gives up
            async with orbit.call(bob.user_id, Tone(), ring_timeout=0.5, **alice.kwargs):
                pass
        ended = next(iter(bed.server.calls.values()))
        assert ended.status in ("ended", "missed")
        answering = asyncio.create_task(_enter(orbit.answer(Tone(700), ring_timeout=10, **bob.kwargs)))
        await asyncio.sleep(1.0)  # bob has seen the replayed call:incoming of the ended call by now
        assert not answering.done()
        async with orbit.call(bob.user_id, Tone(500), **alice.kwargs) as caller:
            callee = await asyncio.wait_for(answering, 10)
            assert callee.call_id == caller.call_id != ended.id
            chunks = [f.data[0] async for f in _take(callee.audio_frames(sample_rate=16000, channels=1), 50)]
            await callee.close()
    assert abs(dominant_frequency(np.concatenate(chunks)[-8000:], 16000) - 500) < 5


async def _take(stream, n: int):
    async for item in stream:
        yield item
        n -= 1
        if n == 0:
            stream.close()
            return


async def _enter(call):
    return await call.__aenter__()
