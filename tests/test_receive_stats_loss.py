"""Random packet loss costs the listener what was lost, no more: the audio reorder buffer passes
each packet on at once and skips a hole (aiortc's stalls 320 ms and discards a good packet), so
the playout meter conceals ~20 ms per lost 20 ms packet."""

from __future__ import annotations

import asyncio
import random

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from peerbot.engine.audio_jitter_buffer import AudioJitterBuffer
from peerbot.engine.impairment import Impairment, NetworkImpairment
from peerbot.engine.peer import Peer
from peerbot.media import Tone


def packets(count: int, loss: float, seed: int, first_seq: int = 65000) -> list[RtpPacket]:
    rng = random.Random(seed)
    out = []
    for n in range(count):
        if rng.random() < loss:
            continue
        packet = RtpPacket(payload_type=111, sequence_number=(first_seq + n) % 65536, timestamp=n * 960)
        packet._data = bytes([n % 256])  # noqa: SLF001 (what aiortc's receiver sets before add())
        out.append(packet)
    return out


def released(buffer: JitterBuffer, stream: list[RtpPacket]) -> list[int]:
    frames = [buffer.add(p)[1] for p in stream]
    return [f.timestamp // 960 for f in frames if f is not None]


def test_audio_buffer_releases_every_received_packet_at_once_across_holes_and_the_wrap():
    stream = packets(1500, 0.05, seed=1)
    out = released(AudioJitterBuffer(), stream)
    assert out == [p.timestamp // 960 for p in stream]  # each one, in order, as it arrived
    aiortc_out = released(JitterBuffer(capacity=16, prefetch=1), packets(1500, 0.05, seed=1))
    assert len(aiortc_out) < 0.95 * len(stream)  # why it is replaced: aiortc's discards good packets


def test_audio_buffer_reorders_within_its_window_and_drops_what_comes_after_its_time():
    stream = packets(10, 0.0, seed=0)
    swapped = [stream[0], stream[2], stream[1], *stream[3:]]
    # One packet waited behind the hole; from then on one is held (one frame out per packet in).
    assert released(AudioJitterBuffer(window=2), list(swapped)) == list(range(9))
    once = released(AudioJitterBuffer(window=1), [stream[0], stream[2], stream[1], *stream[3:]])
    assert once == [0, 2, *range(3, 10)]  # 1 came after 2 was played: dropped


async def test_five_percent_random_loss_conceals_about_five_percent_of_the_audio():
    caller, far_side = Peer([], impair=NetworkImpairment(send=Impairment(loss=5, seed=7))), Peer([])
    tone = Tone(440)
    try:
        caller.add_transceiver("audio", tone, "sendonly")
        await caller.accept_answer(await far_side.accept_offer(await caller.create_offer()))
        await asyncio.gather(caller.wait_connected(), far_side.wait_connected())
        await asyncio.sleep(8.0)
    finally:
        tone.stop()
        await asyncio.gather(caller.close(), far_side.close())
    audio = next(s for s in far_side.stats().inbound_rtp if s.kind == "audio")
    assert audio.concealedSamples is not None and audio.totalSamplesReceived and audio.audioCoverage is not None
    lost = audio.packetsLost / (audio.packetsReceived + audio.packetsLost) * 100
    concealed = audio.concealedSamples / audio.totalSamplesReceived * 100
    print(f"\nlost {lost:.1f} %, concealed {concealed:.1f} %, coverage {audio.audioCoverage:.3f},"
          f" late {audio.lateSamples / 960:.0f} frames, MOS {far_side.stats().summary.mos}")
    assert 3 <= concealed <= 10
    assert audio.audioCoverage >= 0.88
