"""The engine on its own: two peerbot Peers over real loopback UDP, DTLS/SRTP and codecs."""

from __future__ import annotations

import asyncio

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peerbot.engine.datachannel import DataChannel
from peerbot.engine.impairment import Blackout
from peerbot.engine.peer import Peer
from peerbot.errors import IceFailedError, SdpError, SessionEndedError
from peerbot.media import AudioSource, TestPattern, Tone, read_frame_counter
from peerbot.media.streams import ConvertedStream, audio_converter, video_converter

from media_checks import dominant_frequency, rms


async def connect_pair(offerer: Peer, answerer: Peer) -> None:
    offer = await offerer.create_offer()
    answer = await answerer.accept_offer(offer)
    await offerer.accept_answer(answer)
    await asyncio.gather(offerer.wait_connected(), answerer.wait_connected())


async def collect_audio(peer: Peer, seconds: float, rate: int = 16000) -> np.ndarray:
    stream = ConvertedStream(peer.audio.hub.subscribe(500), audio_converter(rate, 1))
    chunks, total = [], 0
    async for frame in stream:
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * rate:
            break
    stream.close()
    return np.concatenate(chunks)


@pytest.fixture
async def peers():
    made: list[Peer] = []

    def make(**options) -> Peer:
        peer = Peer([], **options)
        made.append(peer)
        return peer

    yield make
    for peer in made:
        await peer.close()


async def test_tone_sent_by_offerer_arrives_at_answerer_with_its_frequency(peers):
    a, b = peers(), peers()
    a.add_transceiver("audio", Tone(440), "sendrecv")
    b.add_transceiver("audio", Tone(880), "sendrecv")
    await connect_pair(a, b)
    heard_by_b, heard_by_a = await asyncio.gather(collect_audio(b, 1.0), collect_audio(a, 1.0))
    assert abs(dominant_frequency(heard_by_b[-8000:], 16000) - 440) < 5
    assert abs(dominant_frequency(heard_by_a[-8000:], 16000) - 880) < 5


async def test_test_pattern_frame_counters_arrive_in_increasing_order(peers):
    a, b = peers(), peers()
    a.add_transceiver("video", TestPattern(), "sendonly")
    await connect_pair(a, b)
    stream = ConvertedStream(b.video.hub.subscribe(), video_converter("rgb24"))
    counters = []
    async for frame in stream:
        counters.append(read_frame_counter(frame.data))
        if len(counters) == 10:
            break
    assert counters == sorted(counters) and len(set(counters)) == 10
    assert frame.width == 320 and frame.height == 240


@pytest.mark.parametrize("codec", ["opus", "PCMU"])
async def test_codec_preference_is_negotiated_and_audio_flows(peers, codec):
    a, b = peers(codecs=[codec]), peers()
    a.add_transceiver("audio", Tone(440), "sendrecv")
    await connect_pair(a, b)
    assert f"{codec}/" in a._pc.remoteDescription.sdp
    negotiated = [line for line in a._pc.remoteDescription.sdp.splitlines() if line.startswith("a=rtpmap:")]
    assert negotiated[0].split(" ")[1].lower().startswith(codec.lower())
    heard = await collect_audio(b, 0.6)
    assert abs(dominant_frequency(heard[-4000:], 16000) - 440) < 10


async def test_app_pushed_audio_is_sent_paced_and_silence_follows_when_starved(peers):
    source = AudioSource(sample_rate=48000)
    a, b = peers(), peers()
    a.add_transceiver("audio", source, "sendonly")
    await connect_pair(a, b)
    t = np.arange(16000) / 16000  # one second at 16 kHz mono float: converted by the source
    listening = asyncio.create_task(collect_audio(b, 1.5))  # from before the tone goes out
    await source.capture(0.5 * np.sin(2 * np.pi * 600 * t), 16000)
    await source.wait_for_playout()
    heard = await listening
    voiced = heard[: len(heard) // 2]
    assert abs(dominant_frequency(voiced, 16000) - 600) < 10
    assert rms(heard[-3200:]) < 50  # the last 0.2 s: starved, so silence


async def test_clear_drops_queued_audio_at_once(peers):
    source = AudioSource(sample_rate=48000, queue_seconds=5.0)
    await source.capture(np.full(48000 * 3, 1000, dtype=np.int16), 48000)
    assert source.queued_seconds == pytest.approx(3.0)
    source.clear()
    assert source.queued_seconds == 0
    await asyncio.wait_for(source.wait_for_playout(), 1)


async def test_capture_waits_while_the_queue_is_full(peers):
    source = AudioSource(sample_rate=48000, queue_seconds=0.1)
    blocked = asyncio.create_task(source.capture(np.zeros(48000, dtype=np.int16), 48000))
    await asyncio.sleep(0.1)
    assert not blocked.done() and source.queued_seconds == pytest.approx(0.1)
    source.clear()
    blocked.cancel()


async def test_slow_consumer_drops_its_own_oldest_frames_while_a_fast_one_loses_none(peers):
    a, b = peers(), peers()
    a.add_transceiver("audio", Tone(440), "sendonly")
    await connect_pair(a, b)
    slow = ConvertedStream(b.audio.hub.subscribe(5), audio_converter(None, None))
    fast = ConvertedStream(b.audio.hub.subscribe(500), audio_converter(None, None))
    got = 0
    async for _ in fast:
        got += 1
        if got == 50:
            break
    assert fast.dropped == 0
    assert slow.dropped >= 40  # it never read: only its 5 newest frames are kept
    assert (await slow.__anext__()).samples == 960


async def test_far_side_closing_is_a_normal_end_that_stops_iteration(peers):
    a, b = peers(), peers()
    b.add_transceiver("audio", Tone(440), "sendonly")
    await connect_pair(b, a)
    stream = ConvertedStream(a.audio.hub.subscribe(), audio_converter(None, None))
    await stream.__anext__()
    await b.close()
    reason = await asyncio.wait_for(a.closed(), 10)
    assert "closed" in reason and a.state == "closed" and a.error is None
    leftover = [frame async for frame in stream]  # ends without raising
    assert len(leftover) < 50


async def test_silent_far_side_ends_iterators_with_session_ended_error(peers):
    a, b = peers(liveness_timeout=1.0, stats_interval=0.2), peers()
    b.add_transceiver("audio", Tone(440), "sendonly")
    await connect_pair(b, a)
    stream = ConvertedStream(a.audio.hub.subscribe(), audio_converter(None, None))
    await stream.__anext__()
    with Blackout(b):
        reason = await asyncio.wait_for(a.closed(), 10)
    assert "silent" in reason and a.state == "failed" and a.error == reason
    with pytest.raises(SessionEndedError, match="silent"):
        async for _ in stream:
            pass


async def test_malformed_answer_sdp_raises_sdp_error(peers):
    a = peers()
    a.add_transceiver("audio", Tone(), "sendrecv")
    await a.create_offer()
    with pytest.raises(SdpError, match="not an SDP"):
        await a.accept_answer("hello")
    with pytest.raises(SdpError, match="could not be applied"):
        await a.accept_answer("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n")


async def test_relay_only_without_turn_server_fails_at_gathering_with_a_clear_error(peers):
    a = peers(relay_only=True)
    a.add_transceiver("audio", Tone(), "sendrecv")
    with pytest.raises(IceFailedError, match="no ICE candidates"):
        await a.create_offer()


async def test_dead_stun_server_delays_gathering_only_up_to_the_bound(peers):
    # A UDP port that never answers: host candidates must still go out after the bound.
    import socket

    dead = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    dead.bind(("127.0.0.1", 0))
    a = Peer([{"urls": f"stun:127.0.0.1:{dead.getsockname()[1]}"}], gather_timeout=0.5)
    b = peers()
    try:
        a.add_transceiver("audio", Tone(440), "sendonly")
        loop = asyncio.get_running_loop()
        started = loop.time()
        await connect_pair(a, b)
        gathering_and_connect = loop.time() - started
        assert any("typ host" in c["candidate"] for c in a.local_candidates())
        assert gathering_and_connect < 5  # the bound (0.5 s), not aioice's fixed 5 s
    finally:
        await a.close()
        dead.close()


@pytest.mark.parametrize("suffix, video_codec", [(".mp4", "h264"), (".webm", "vp8")])
async def test_recorder_writes_received_audio_and_video_to_a_decodable_file(peers, tmp_path, suffix, video_codec):
    from peerbot.media import Recorder

    a, b = peers(), peers()
    a.add_transceiver("audio", Tone(440), "sendonly")
    a.add_transceiver("video", TestPattern(fps=15), "sendonly")
    await connect_pair(a, b)
    recorder = Recorder(tmp_path / f"call{suffix}")
    recorder.start(b.audio.hub.subscribe(500), b.video.hub.subscribe(100))
    await asyncio.sleep(2.0)
    await recorder.stop()
    with av.open(str(recorder.path)) as container:
        video = container.streams.video[0]
        assert video.codec_context.name == video_codec
        pictures = [frame.to_ndarray(format="rgb24") for frame in container.decode(video)]
    with av.open(str(recorder.path)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert len(pictures) == recorder.video_frames >= 20
    counters = [read_frame_counter(p) for p in pictures]
    assert counters == sorted(counters)
    assert samples / 48000 == pytest.approx(recorder.audio_frames * 0.020, abs=0.1)


async def test_capture_accepts_interleaved_and_either_2d_layout_when_channels_is_given():
    source = AudioSource(sample_rate=48000, channels=2, queue_seconds=1.0)
    stereo = np.array([[1, 2], [3, 4]], dtype=np.int16)  # (n=2, channels=2): ambiguous without channels
    await source.capture(np.array([1, -1, 2, -2], dtype=np.int16), 48000, channels=2)
    await source.capture(stereo, 48000, channels=2)
    out = source._next_samples(4)
    assert out[:, :2].tolist() == [[1, 2], [-1, -2]]
    assert out[:, 2:].tolist() == [[1, 2], [3, 4]]  # read as (channels, n) since shape[0] == 2


async def test_candidate_pair_reports_host_candidates_on_loopback(peers):
    a, b = peers(), peers()
    a.add_transceiver("audio", Tone(), "sendrecv")
    assert a.candidate_pair() is None
    await connect_pair(a, b)
    pair = a.candidate_pair()
    assert (pair.local_type, pair.remote_type, pair.relay_transport) == ("host", "host", None)
    assert pair.remote_address.endswith(b.candidate_pair().local_address.split(":")[1])


async def test_answerer_sends_its_tracks_and_trickled_candidates_connect_without_sdp_candidates(peers):
    a, b = peers(), peers()
    a.add_transceiver("audio", Tone(440), "sendrecv")
    a.add_transceiver("video", TestPattern(), "sendrecv")
    offer = await a.create_offer()
    # A trickling offerer's SDP: no candidates and no end-of-candidates; b learns them by trickle only.
    stripped = "\r\n".join(line for line in offer.splitlines()
                           if not line.startswith(("a=candidate:", "a=end-of-candidates"))) + "\r\n"
    assert await b.add_remote_candidate("candidate:garbage") is False  # ignored, not fatal
    for candidate in a.local_candidates():
        assert await b.add_remote_candidate(candidate["candidate"], candidate["sdpMid"], candidate["sdpMLineIndex"])
    answer = await b.accept_offer(stripped, audio=Tone(880), video=TestPattern())
    assert answer.count("a=sendrecv") == 2
    await a.accept_answer(answer)
    await asyncio.gather(a.wait_connected(), b.wait_connected())
    heard_by_a = await collect_audio(a, 1.0)
    assert abs(dominant_frequency(heard_by_a[-8000:], 16000) - 880) < 5
    frame = await ConvertedStream(a.video.hub.subscribe(), video_converter("rgb24")).__anext__()
    assert frame.width == 320


async def test_answerer_is_handed_each_channel_the_offerer_opens_once_open_and_can_send_on_it(peers):
    opened: asyncio.Queue[DataChannel] = asyncio.Queue()
    a, b = peers(), peers(on_data_channel=opened.put_nowait)
    offered = a.create_data_channel("events")
    await connect_pair(a, b)
    channel = await asyncio.wait_for(opened.get(), 5)
    assert channel.label == "events" and channel.ready_state == "open" and b.data_channel("events") is channel
    await channel.send("hello")
    assert await asyncio.wait_for(offered.messages().__anext__(), 5) == "hello"


def test_private_field_module_warns_when_the_installed_versions_differ_from_the_pinned_ones():
    import warnings

    from peerbot.engine import _aiortc

    with pytest.warns(RuntimeWarning, match="aiortc .* written for 0.0.1"):
        problems = _aiortc.check_versions({"aiortc": "0.0.1", "aioice": _aiortc.PINNED["aioice"]})
    assert len(problems) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _aiortc.check_versions() == []  # the installed ones are the pinned ones


def test_log_redaction_hides_ice_passwords_and_credentials_and_keeps_the_rest():
    from peerbot.engine._aiortc import redact_secrets

    text = "a=ice-ufrag:abcd\r\na=ice-pwd:s3cr3tPassw0rdValue1234\r\n{'credential': 'tUrNsEcReT', 'username': 'u1'}"
    cleaned = redact_secrets(text)
    assert "s3cr3tPassw0rdValue1234" not in cleaned and "tUrNsEcReT" not in cleaned
    assert "a=ice-ufrag:abcd" in cleaned and "'username': 'u1'" in cleaned


async def test_closing_a_peer_leaves_the_tracks_it_sent_live_for_their_owner(peers):
    a, b = peers(), peers()
    tone, pattern = Tone(440), TestPattern()
    a.add_transceiver("audio", tone, "sendrecv")
    a.add_transceiver("video", pattern, "sendrecv")
    await connect_pair(a, b)
    await collect_audio(b, 0.2)
    await a.close()
    assert tone.readyState == pattern.readyState == "live"
    assert (await tone.recv()).samples == 960  # still usable by a new peer (a reconnection)


@settings(max_examples=100, deadline=None)
@given(origins=st.lists(st.integers(min_value=0, max_value=2**32 - 1), min_size=1, max_size=4),
       frames_each=st.integers(min_value=1, max_value=5))
def test_received_audio_timestamps_stay_monotonic_across_new_rtp_clocks(origins, frames_each):
    # Each reconnection starts a new, random RTP timestamp origin: the stream's clock must go on.
    import fractions

    convert = audio_converter(None, None)
    stamps = []
    for origin in origins:
        for index in range(frames_each):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1920), dtype=np.int16), format="s16", layout="stereo")
            frame.sample_rate, frame.time_base = 48000, fractions.Fraction(1, 48000)
            frame.pts = origin + index * 960
            stamps.extend(f.timestamp for f in convert(frame))
    assert stamps[0] == 0.0
    assert all(later >= earlier for earlier, later in zip(stamps, stamps[1:]))
    assert stamps[-1] <= 0.02 * len(stamps) + 120 * (len(origins) - 1)
