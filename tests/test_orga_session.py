"""An Orga realtime session end to end against the embedded server: real loopback WebRTC."""

from __future__ import annotations

import asyncio
import logging

import av
import numpy as np
import pytest

from peerbot import orga
from peerbot.errors import ConfigurationError, OrgaAIAuthenticationError
from peerbot.media import AudioSource, TestPattern, Tone
from peerbot.orga import events as ev

from media_checks import dominant_frequency, rms


async def collect(stream, seconds: float) -> np.ndarray:
    chunks, total = [], 0
    async for frame in stream:
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * frame.sample_rate:
            break
    stream.close()
    return np.concatenate(chunks)


async def first_events(session, count: int) -> list[ev.Event]:
    got = []
    async for event in session.events():
        got.append(event)
        if len(got) == count:
            return got
    return got


async def test_echoed_audio_has_the_frequency_of_the_sent_tone(orga_kwargs):
    async with orga.connect(Tone(523.0), **orga_kwargs) as session:
        assert session.state == "connected"
        heard = await collect(session.audio_frames(sample_rate=16000, channels=1), 1.5)
    assert abs(dominant_frequency(heard[-8000:], 16000) - 523.0) < 5
    assert rms(heard[-8000:]) > 1000


async def test_received_audio_frames_are_48k_stereo_by_default_and_converted_on_request(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        default = await session.audio_frames().__anext__()
        mono16k = await session.audio_frames(sample_rate=16000, channels=1).__anext__()
    assert (default.sample_rate, default.channels, default.samples) == (48000, 2, 960)
    assert default.data.dtype == np.int16
    assert (mono16k.sample_rate, mono16k.channels) == (16000, 1)


async def test_video_test_pattern_frames_are_counted_by_the_server(orga_server, orga_kwargs):
    pattern = TestPattern(fps=15)
    async with orga.connect(Tone(), pattern, **orga_kwargs) as session:
        await asyncio.sleep(2.0)
        call = orga_server.calls[session.conversation_id]
        assert call.video_frames_received >= 15
        assert call.audio_frames_received >= 50
        assert pattern.count >= call.video_frames_received


async def test_data_channel_events_arrive_in_order_with_the_conversation_id(orga_kwargs):
    async with orga.connect(Tone(), voice="sage", instructions="be brief", **orga_kwargs) as session:
        created, conversation = await asyncio.wait_for(first_events(session, 2), 5)
    assert isinstance(created, ev.SessionCreated)
    assert created.session["voice"] == "sage" and created.session["instructions"] == "be brief"
    assert isinstance(conversation, ev.ConversationCreated)
    assert conversation.conversation_id == session.conversation_id


async def test_session_update_is_answered_with_session_updated(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        await session.update(instructions="speak like a pirate", voice="coral")
        async for event in session.events():
            if isinstance(event, ev.SessionUpdated):
                break
    assert event.session["instructions"] == "speak like a pirate"
    assert event.session["voice"] == "coral"


async def test_invalid_update_raises_before_sending(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        with pytest.raises(ConfigurationError, match="temperature"):
            await session.update(temperature=3)


async def test_several_consumers_each_get_every_frame(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        one, two = session.audio_frames(), session.audio_frames()
        a = [await one.__anext__() for _ in range(20)]
        b = [await two.__anext__() for _ in range(20)]
    assert [f.timestamp for f in a] == [f.timestamp for f in b]
    assert one.dropped == two.dropped == 0


@pytest.mark.parametrize("suffix", [".wav", ".mp4"])
async def test_recording_produces_a_decodable_file_as_long_as_the_audio_received(orga_kwargs, tmp_path, suffix):
    path = tmp_path / f"call{suffix}"
    async with orga.connect(Tone(440), record=path, **orga_kwargs) as session:
        await asyncio.sleep(2.0)
    recorded_frames = session.recorder.audio_frames
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(stream))
        rate = stream.rate
    # Each received frame is 20 ms; the file holds them all, give or take the encoder's padding.
    assert samples / rate == pytest.approx(recorded_frames * 0.020, abs=0.1)
    assert samples / rate > 1.5


async def test_app_pushed_audio_is_echoed_and_playout_can_be_awaited(orga_kwargs):
    source = AudioSource(sample_rate=24000)
    async with orga.connect(source, **orga_kwargs) as session:
        t = np.arange(24000) / 24000
        await source.capture((0.4 * np.sin(2 * np.pi * 700 * t)).astype(np.float32), 24000)
        stream = session.audio_frames(sample_rate=16000, channels=1)
        heard = []
        async for frame in stream:
            if rms(frame.data) > 1000:
                heard.append(frame.data[0])
            if len(heard) >= 25:
                break
        await asyncio.wait_for(source.wait_for_playout(), 3)
    assert abs(dominant_frequency(np.concatenate(heard), 16000) - 700) < 10


async def test_unknown_client_message_is_answered_and_passed_through_as_unknown_event(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        await session._channel.send('{"event": "no.such.event"}')
        async for event in session.events():
            if event.type not in (ev.SESSION_CREATED, ev.CONVERSATION_CREATED):
                break
    assert isinstance(event, ev.UnknownEvent) and event.raw["type"] == event.type


def test_parse_event_turns_malformed_messages_into_error_events():
    assert isinstance(ev.parse_event("{not json"), ev.ErrorEvent)
    assert isinstance(ev.parse_event("[1, 2]"), ev.ErrorEvent)
    assert isinstance(ev.parse_event('{"type": 5}'), ev.ErrorEvent)
    assert ev.parse_event(b'{"type": "x.y", "a": 1}') == ev.UnknownEvent("x.y", {})
    transcript = ev.parse_event('{"type": "conversation.item.input_audio_transcription.completed", "text": "hi"}')
    assert transcript.transcript == "hi"
    reply = ev.parse_event('{"type": "response.output_item.done", "message": "hello"}')
    assert reply.text == "hello"


async def test_wrong_api_key_is_an_authentication_error(orga_kwargs):
    with pytest.raises(OrgaAIAuthenticationError) as info:
        async with orga.connect(Tone(), **{**orga_kwargs, "api_key": "orga_wrong_key_123456"}):
            pass
    assert info.value.status == 401


async def test_invalid_settings_raise_before_any_request(orga_kwargs):
    with pytest.raises(ConfigurationError, match="voice"):
        orga.connect(Tone(), voice="darth", **orga_kwargs)
    with pytest.raises(ConfigurationError, match="temperature"):
        orga.connect(Tone(), temperature=1.5, **orga_kwargs)
    with pytest.raises(ConfigurationError, match="email"):
        orga.connect(Tone(), **{**orga_kwargs, "user_email": "not-an-email"})


async def test_no_secret_appears_in_debug_logs_of_a_whole_session(orga_server, orga_kwargs, caplog):
    caplog.set_level(logging.DEBUG)
    async with orga.connect(Tone(), **orga_kwargs) as session:
        await session.audio_frames().__anext__()
        token_holder = session._client
    text = caplog.text + repr(session) + repr(token_holder)
    assert orga_server.api_key not in text
    assert len(caplog.records) > 10  # the debug logs were really captured


async def test_aiortc_and_aioice_debug_logs_of_a_whole_session_carry_no_ice_password(orga_kwargs, caplog):
    from aiortc.sdp import SessionDescription

    caplog.set_level(logging.DEBUG)
    async with orga.connect(Tone(), **orga_kwargs) as session:
        await session.audio_frames().__anext__()
        pc = session.peer._pc
        passwords = {SessionDescription.parse(d.sdp).media[0].ice.password
                     for d in (pc.localDescription, pc.remoteDescription)}
    library = [r for r in caplog.records if r.name.split(".")[0] in ("aiortc", "aioice")]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert len(passwords) == 2 and all(len(p) >= 16 for p in passwords)
    assert any("a=ice-pwd:" in r.getMessage() for r in library)  # the SDP lines were logged, redacted
    assert not any(p in text for p in passwords)


async def test_stats_count_transport_bytes_both_ways_and_they_grow(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        await asyncio.sleep(1.5)  # stats refresh every second
        first = session.stats()
        await asyncio.sleep(2.0)
        later = session.stats()
    print(f"\nbytes sent {first.summary.bytes_sent} -> {later.summary.bytes_sent}, received {first.summary.bytes_received} -> {later.summary.bytes_received}")
    assert first.summary.bytes_sent > 0 and first.summary.bytes_received > 0
    assert later.summary.bytes_sent > first.summary.bytes_sent and later.summary.bytes_received > first.summary.bytes_received
    # At least the RTP packets' 12-byte headers: these are bytes of the media, not a stray counter.
    assert later.summary.bytes_sent > 12 * later.summary.packets_sent and later.summary.bytes_received > 12 * later.summary.packets_received
