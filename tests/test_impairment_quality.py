"""An impairment shows in peerbot's own W3C report: a 3 s outage window is a gap in audio coverage
(concealed audio) and, for video, one freeze of about 3 s; configured loss is measured as such."""

from __future__ import annotations

import asyncio

import pytest

from peerbot.engine.impairment import Impairment, NetworkImpairment
from peerbot.engine.peer import Peer
from peerbot.media import TestPattern, Tone


async def loopback(impair: NetworkImpairment, seconds: float) -> tuple[Peer, Peer]:
    """A caller sending a tone and a test pattern through ``impair`` to a far side, for ``seconds``."""
    caller, far_side = Peer([], impair=impair), Peer([])
    tone, pattern = Tone(440), TestPattern(fps=15)
    try:
        caller.add_transceiver("audio", tone, "sendonly")
        caller.add_transceiver("video", pattern, "sendonly")
        await caller.accept_answer(await far_side.accept_offer(await caller.create_offer()))
        await asyncio.gather(caller.wait_connected(), far_side.wait_connected())
        await asyncio.sleep(seconds)
    finally:
        tone.stop()
        pattern.stop()
        await asyncio.gather(caller.close(), far_side.close())
    return caller, far_side


def inbound(peer: Peer, kind: str):
    return next(s for s in peer.stats().inbound_rtp if s.kind == kind)


async def test_a_3_s_outage_window_is_a_gap_in_audio_coverage_and_one_video_freeze():
    outage = NetworkImpairment(send=Impairment(outages=((3.0, 3.0),)))
    _, far_side = await loopback(outage, seconds=9.0)
    audio, video = inbound(far_side, "audio"), inbound(far_side, "video")
    concealed_s = audio.concealedSamples / 48000
    print(f"\naudio: coverage {audio.audioCoverage:.2f}, concealed {concealed_s:.2f} s in"
          f" {audio.concealmentEvents} events; video: {video.freezeCount} freezes,"
          f" {video.totalFreezesDuration:.2f} s, {video.pauseCount} pauses")
    assert 2.6 <= concealed_s <= 3.8  # the outage, give or take start-up and the jitter buffer
    assert audio.audioCoverage <= 0.75  # ~6 s of 9 heard in time
    assert video.freezeCount == 1 and video.pauseCount == 0  # 3 s: a freeze, not a pause (>= 5 s)
    assert video.totalFreezesDuration == pytest.approx(3.0, abs=0.6)


async def test_configured_loss_on_the_way_out_is_what_the_far_side_and_our_rtcp_report_measure():
    lossy = NetworkImpairment(send=Impairment(loss=10, seed=5))
    caller, far_side = await loopback(lossy, seconds=8.0)
    received = inbound(far_side, "audio")
    far_loss = received.packetsLost / (received.packetsReceived + received.packetsLost) * 100
    ours = caller.stats().summary.remote_loss_percent
    print(f"\nfar side measured {far_loss:.1f} %, our remote-inbound-rtp {ours:.1f} % (configured 10 %)")
    assert 6 <= far_loss <= 14  # ~400 audio packets: a few points either way
    assert ours is not None and abs(ours - far_loss) <= 3  # RTCP lags the last interval a little
