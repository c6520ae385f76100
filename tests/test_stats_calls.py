"""The stats of real calls: the embedded Orga server over loopback UDP, and two engine Peers."""

from __future__ import annotations

import asyncio
import contextlib

from peerbot import orga
from peerbot.engine.impairment import Blackout
from peerbot.engine.peer import Peer
from peerbot.media import TestPattern, Tone

from test_engine import connect_pair


async def _drain(stream) -> None:
    with contextlib.suppress(Exception):
        async for _ in stream:
            pass


async def test_an_idle_loopback_call_has_jitter_below_10_ms_in_9_runs_of_9(orga_kwargs):
    jitters = []
    for _ in range(9):
        async with orga.connect(Tone(), **orga_kwargs) as session:
            reader = asyncio.create_task(_drain(session.audio_frames()))
            await asyncio.sleep(2.0)
            reader.cancel()
        report = session.stats()
        [inbound] = report.inbound_rtp
        assert inbound.packetsReceived > 50
        jitters.append(max(s["jitter_ms"] for s in session.stats_history()))
        jitters.append(inbound.jitter * 1000)
    print(f"\njitter (ms, per run: max over the history, final): {[round(j, 2) for j in jitters]}")
    assert max(jitters) < 10


async def test_our_inbound_counts_match_the_far_sides_outbound_for_audio_and_video():
    caller, callee = Peer([]), Peer([])
    try:
        caller.add_transceiver("audio", None, "recvonly")
        caller.add_transceiver("video", None, "recvonly")
        offer = await caller.create_offer()
        answer = await callee.accept_offer(offer, audio=Tone(), video=TestPattern())
        await caller.accept_answer(answer)
        await asyncio.gather(caller.wait_connected(), callee.wait_connected())
        readers = [asyncio.create_task(_drain(caller.audio.hub.subscribe())),
                   asyncio.create_task(_drain(caller.video.hub.subscribe()))]
        await asyncio.sleep(3.0)
        await callee.close()  # the far side stops sending: what it sent is final
        await asyncio.sleep(0.3)  # what was in flight arrives
        for reader in readers:
            reader.cancel()
    finally:
        await caller.close()
        await callee.close()
    ours, theirs = caller.stats(), callee.stats()
    sent = {o.kind: o for o in theirs.outbound_rtp}
    received = {i.kind: i for i in ours.inbound_rtp}
    for kind in ("audio", "video"):
        inbound, outbound = received[kind], sent[kind]
        print(f"\n{kind}: sent {outbound.packetsSent} packets / {outbound.bytesSent} B, received "
              f"{inbound.packetsReceived} / {inbound.bytesReceived} B, lost {inbound.packetsLost}, "
              f"jitter {inbound.jitter * 1000:.2f} ms")
        assert inbound.ssrc == outbound.ssrc
        assert inbound.packetsReceived > 50
        # Loopback loses nothing; at most a packet or two sent as the far side closed.
        assert 0 <= outbound.packetsSent - (inbound.packetsReceived + inbound.packetsLost) <= 3
        assert inbound.packetsLost <= 2
        assert abs(outbound.bytesSent - inbound.bytesReceived) <= 3 * 1200
    assert received["audio"].codec == "audio/opus" and received["audio"].clockRate == 48000
    assert received["video"].clockRate == 90000
    assert received["video"].framesDecoded and received["video"].framesDecoded > 30  # the render meter's figures
    assert received["audio"].totalSamplesReceived and received["audio"].totalSamplesReceived > 48000
    # The far side's receiver reports about our... nothing: the caller sent nothing.
    assert not ours.outbound_rtp and not ours.remote_inbound_rtp


async def test_after_a_3_second_call_stats_keep_the_final_counts_and_the_history_has_3_samples(orga_kwargs):
    async with orga.connect(Tone(), **orga_kwargs) as session:
        reader = asyncio.create_task(_drain(session.audio_frames()))
        await asyncio.sleep(3.0)
        during = session.stats()
        reader.cancel()
    await asyncio.sleep(1.2)  # nothing ticks after the end
    final, history = session.stats(), session.stats_history()
    print("\n" + "\n".join(str(s) for s in history))
    s = final.summary
    assert s.packets_received >= during.summary.packets_received > 100
    assert s.packets_sent >= during.summary.packets_sent > 100
    assert final.inbound_rtp[0].packetsReceived == s.packets_received
    assert s.mos is not None and s.mos > 4 and s.loss_percent is not None and s.loss_percent < 5
    assert s.rtt_ms is not None and final.remote_inbound_rtp[0].roundTripTimeMeasurements >= 1
    assert final.candidate_pair is not None and final.candidate_pair.localCandidateType == "host"
    assert s.audio_coverage_percent is not None and s.audio_coverage_percent > 50
    assert 2 <= len(history) <= 4
    ts = [sample["t"] for sample in history]
    assert ts == sorted(set(ts)) and 0.5 <= ts[0] <= 1.5 and ts[-1] <= 3.6
    assert all(sample["bitrate_in_kbps"] and sample["bitrate_in_kbps"] > 10 for sample in history)
    assert history[-1]["frames_per_second"] is None  # no video: not measured, not 0
    assert session.stats() == final and session.stats_history() == history


async def test_counts_since_the_start_add_up_every_connection_a_reconnection_replaced(orga_kwargs):
    async with orga.connect(Tone(), liveness_timeout=1.0, reconnect_backoff=0.2, **orga_kwargs) as session:
        reader = asyncio.create_task(_drain(session.audio_frames()))
        await asyncio.sleep(1.0)
        old_peer = session.peer
        with Blackout(old_peer):
            while not (session.reconnects and session.state == "connected"):
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)
        reader.cancel()
    first = sum(i.packetsReceived for i in old_peer.snapshot().inbound_rtp)
    final = session.stats()
    [current] = final.inbound_rtp  # the new connection's stream
    print(f"\nfirst connection {first} packets, second {current.packetsReceived}, session {final.summary.packets_received};"
          f" outage {final.summary.outage_seconds} s; history t={[s['t'] for s in session.stats_history()]}")
    assert first > 20 and current.packetsReceived > 20
    assert final.summary.packets_received == first + current.packetsReceived
    assert final.summary.reconnects == 1 and final.summary.outage_seconds > 1.0
    assert final.summary.loss_percent is not None and final.summary.loss_percent < 5  # an outage is not loss
    ts = [s["t"] for s in session.stats_history()]
    assert ts == sorted(ts) and len(ts) >= 3  # the history goes on through the outage
