"""Cheap participants: pre-encoded send, decode-free receive and the reflecting far side, over
real loopback WebRTC against the embedded server."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from peerbot import orga
from peerbot.engine.receive_mode import RtpPlayoutMeter, decodes, opus_samples
from peerbot.errors import ConfigurationError, SessionStateError
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.media.encoded import EncodedAudio

from media_checks import dominant_frequency, rms

USER_EMAIL = "tester@peerbot.example"


async def collect(stream, seconds: float) -> np.ndarray:
    chunks, total = [], 0
    async for frame in stream:
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * frame.sample_rate:
            break
    stream.close()
    return np.concatenate(chunks)


@pytest.fixture(scope="module")
def tone() -> EncodedAudio:
    return EncodedAudio.tone(523.0)


@pytest.fixture
async def reflecting_server():
    async with LocalOrgaServer(reflect=True, max_calls=100, max_calls_per_token=100) as server:
        yield server


def kwargs_of(server: LocalOrgaServer) -> dict:
    return {"api_key": server.api_key, "base_url": server.base_url, "user_email": USER_EMAIL}


def test_encoded_audio_is_20_ms_opus_packets_encoded_once(tone):
    assert len(tone) == 50 and tone.duration == pytest.approx(1.0)
    assert all(opus_samples(p) == 960 for p in tone.payloads)
    first, second = tone.track(), tone.track()
    assert first.next_payload()[0] is second.next_payload()[0]  # shared bytes, not re-encoded
    assert first.next_payload()[1] == 960  # its own timestamps, in samples


@pytest.mark.parametrize("rtp", ["lean", "aiortc"])
async def test_pre_encoded_tone_is_heard_by_the_echo_at_its_frequency(orga_kwargs, tone, rtp):
    async with orga.connect(tone.track(), rtp=rtp, **orga_kwargs) as session:
        heard = await collect(session.audio_frames(sample_rate=16000, channels=1), 1.5)
    assert abs(dominant_frequency(heard[-8000:], 16000) - 523.0) < 5
    assert rms(heard[-8000:]) > 1000


async def test_reflected_pre_encoded_tone_comes_back_unchanged(reflecting_server, tone):
    async with orga.connect(tone.track(), **kwargs_of(reflecting_server)) as session:
        heard = await collect(session.audio_frames(sample_rate=16000, channels=1), 1.0)
        call = next(iter(reflecting_server.calls.values()))
        assert call.packets_reflected > 40 and call.audio_frames_received == 0  # forwarded, never decoded
    assert abs(dominant_frequency(heard[-8000:], 16000) - 523.0) < 5


async def test_count_mode_on_an_idle_call_has_full_coverage_no_loss_and_no_decoder(reflecting_server, tone):
    async with orga.connect(tone.track(), receive="count", **kwargs_of(reflecting_server)) as session:
        await asyncio.sleep(2.5)
        decoders = [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]
        with pytest.raises(SessionStateError, match="receive='count'"):
            session.audio_frames()
    inbound = [s for s in session.stats().inbound_rtp if s.kind == "audio"][0]
    metrics = session.stats().to_metrics()
    assert decoders == []  # nor the server's: it reflects
    assert inbound.packetsReceived >= 100 and inbound.packetsLost == 0
    assert metrics["audio_coverage_percent"] >= 99 and metrics["concealed_percent"] <= 1
    assert metrics["rtt_ms"] is not None  # RTCP still flows both ways


def test_count_mode_refuses_recording(tmp_path):
    with pytest.raises(ConfigurationError, match="receive='count'"):
        orga.connect(receive="count", record=tmp_path / "x.wav", api_key="k", user_email="a@b.c",
                     base_url="http://127.0.0.1:9")
    with pytest.raises(ConfigurationError, match="receive must be"):
        orga.connect(receive="nope", api_key="k", user_email="a@b.c", base_url="http://127.0.0.1:9")


async def test_count_mode_costs_less_cpu_than_decode_mode(reflecting_server, tone):
    """Prints the client-side CPU per session of each mode (the reflector is in the same process,
    so both include its share); asserts only on what was received, never on timing."""
    cpu = {}
    for mode in ("decode", "count"):
        sessions = [orga.connect(tone.track() if mode == "count" else tone.track(), receive=mode,
                                 **kwargs_of(reflecting_server)) for _ in range(4)]
        await asyncio.gather(*(s.start() for s in sessions))
        readers = [asyncio.ensure_future(collect(s.audio_frames(), 60)) for s in sessions] if mode == "decode" else []
        await asyncio.sleep(0.5)
        started = time.process_time()
        await asyncio.sleep(2.0)
        cpu[mode] = (time.process_time() - started) / 2.0 / len(sessions) * 1000
        for r in readers:
            r.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(s.close() for s in sessions))
        assert all(s.stats().to_metrics()["audio_coverage_percent"] >= 90 for s in sessions)
    print(f"\nCPU per session (client + reflector, one process): decode {cpu['decode']:.1f} ms/s,"
          f" count {cpu['count']:.1f} ms/s")


def test_rtp_playout_meter_counts_packets_as_decoded_frames_would_be():
    now = [100.0]
    meter = RtpPlayoutMeter()
    meter._clock = lambda: now[0]  # noqa: SLF001 - a fake clock for a unit test
    ts = (1 << 32) - 960 * 10  # wraps after 10 packets
    for i in range(100):
        if i != 50:  # one lost packet: 20 ms concealed
            meter.on_packet((ts + i * 960) % (1 << 32), 48000, 960, now[0])
        now[0] += 0.020
    stats = meter.stats()
    assert stats.framesReceived == 99 and stats.concealmentEvents == 1
    assert stats.concealedSamples == pytest.approx(960, abs=48 * 60)  # the gap and the stall to now
    assert 0.97 <= stats.audioCoverage <= 1.0


def test_decode_sample_spreads_the_decoding_participants_evenly():
    picked = [i for i in range(200) if decodes(i, 0.05)]
    assert len(picked) == 10 and picked[0] == 0
    assert all(decodes(i, 1.0) for i in range(5)) and not any(decodes(i, 0.0) for i in range(5))
    with pytest.raises(ConfigurationError):
        decodes(0, 1.5)


async def test_count_mode_through_aiortcs_own_path_counts_the_same(reflecting_server, tone):
    async with orga.connect(tone.track(), receive="count", rtp="aiortc", **kwargs_of(reflecting_server)) as session:
        arrived = await asyncio.wait_for(session.peer.audio.hub.meter.first_packet(), 5)
        await asyncio.sleep(2.0)
        decoders = [t.name for t in threading.enumerate() if t.name.endswith("-decoder")]
    metrics = session.stats().to_metrics()
    assert arrived <= time.monotonic() and decoders == []
    assert metrics["loss_percent"] == 0 and metrics["audio_coverage_percent"] >= 99


async def test_serve_reflect_from_two_processes_answers_count_mode_sessions(tone):
    import re
    import sys

    key = "orga_test_reflect"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "peerbot.cli.main", "serve", "--reflect",
                                                "--port", "0", "--api-key", key, "--max-calls", "100", "--processes", "2",
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        base_url = re.search(r"(http://\S+)", line).group(1)
        sessions = [orga.connect(tone.track(), receive="count", api_key=key, base_url=base_url,
                                 user_email=USER_EMAIL) for _ in range(6)]  # tokens of one process, calls on either
        await asyncio.gather(*(s.start() for s in sessions))
        await asyncio.sleep(2.0)
        await asyncio.gather(*(s.close() for s in sessions))
    finally:
        proc.terminate()
        await proc.wait()
    for session in sessions:
        metrics = session.stats().to_metrics()
        assert metrics["loss_percent"] == 0 and metrics["audio_coverage_percent"] >= 95
