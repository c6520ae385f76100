"""Built-in network impairment, measured by real WebRTC peers: two engine Peers over loopback
UDP with DTLS/SRTP and real codecs, the impairment on the offerer's ICE sockets from the first
connectivity check, and aiortc's own ``getStats()`` (and RTCP) on both sides as the witness."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest

from aiortc import RTCPeerConnection, RTCSessionDescription

from peerbot import orga
from peerbot.engine import _aiortc
from peerbot.engine.impairment import Blackout, ImpairedNetwork, Impairment, ImpairmentClock, NetworkImpairment, attach
from peerbot.engine.peer import Peer
from peerbot.media import TestPattern, Tone
from peerbot.media.streams import ConvertedStream, audio_converter

from media_checks import dominant_frequency

Pair = tuple[Peer, Peer, ImpairedNetwork | None]


@pytest.fixture
async def pair() -> AsyncIterator[Callable[..., Any]]:
    """``await pair(impairment, audio=n, video=bool)``: an offerer sending ``n`` tones (440 Hz,
    one transceiver each) and/or a test pattern, impaired from before its offer, connected to
    an unimpaired answerer that sends an 880 Hz tone back over a single audio transceiver."""
    made: list[Peer] = []
    tracks: list[Any] = []
    networks: list[ImpairedNetwork] = []

    async def make(impairment: Impairment | NetworkImpairment | None = None, *, audio: int = 1,
                   video: bool = False, **options: Any) -> Pair:
        a, b = Peer([], **options), Peer([], **options)
        made.extend((a, b))
        for _ in range(audio):
            tracks.append(Tone(440))
            a.add_transceiver("audio", tracks[-1], "sendrecv")
        if video:
            tracks.append(TestPattern())
            a.add_transceiver("video", tracks[-1], "sendonly")
        # Before the offer: the sockets are tapped as soon as gathering opens them.
        network = attach(a, impairment) if impairment is not None else None
        networks.extend([network] if network is not None else [])
        offer = await a.create_offer()
        tracks.append(Tone(880))
        answer = await b.accept_offer(offer, audio=tracks[-1] if audio == 1 else None)
        await a.accept_answer(answer)
        await asyncio.gather(a.wait_connected(15), b.wait_connected(15))
        return a, b, network

    yield make
    for peer in made:
        await peer.close()
    for network in networks:
        network.detach()
    for track in tracks:
        track.stop()


async def stats_of(peer: Peer, kind: str) -> list[Any]:
    """aiortc's own stats of one type (inbound-rtp, remote-inbound-rtp, outbound-rtp, transport)."""
    report = await peer._pc.getStats()
    return [s for s in report.values() if s.type == kind]


def stop_sending(peer: Peer) -> None:
    """End the tracks the peer sends (RTCP goes on), so the far side's reports catch up with all of it."""
    for transceiver in peer._pc.getTransceivers():
        if transceiver.sender.track is not None:
            transceiver.sender.track.stop()


async def until(condition: Callable[[], Any], timeout: float, step: float = 0.25) -> None:
    """Wait for an async ``condition`` to be true, at most ``timeout`` seconds."""
    async with asyncio.timeout(timeout):
        while not await condition():
            await asyncio.sleep(step)


async def test_five_percent_send_loss_is_measured_4_to_6_percent_by_the_far_side_and_by_its_rtcp(pair):
    # 5 streams x 50 packets/s for 10.5 s: enough packets, and few enough encoders that a loaded
    # machine does not add losses of its own (a full socket buffer) to the configured ones.
    a, b, network = await pair(NetworkImpairment(send=Impairment(loss=5, seed=11)), audio=5)
    await asyncio.sleep(10.5)
    stop_sending(a)
    inbound = await stats_of(b, "inbound-rtp")
    received = sum(s.packetsReceived for s in inbound)
    lost = sum(s.packetsLost for s in inbound)

    async def reports_caught_up() -> bool:  # the far side's RTCP receiver reports, as seen by us
        return sum(s.packetsLost for s in await stats_of(a, "remote-inbound-rtp")) >= lost

    await until(reports_caught_up, 5)
    remote = await stats_of(a, "remote-inbound-rtp")
    sent = sum(s.packetsSent for s in await stats_of(a, "outbound-rtp"))
    far_side, ours = lost / (received + lost), sum(s.packetsLost for s in remote) / sent
    print(f"\n{received + lost} packets: far side measured {far_side:.2%}, remote-inbound-rtp {ours:.2%};"
          f" link {network.send}")
    assert received + lost >= 2400 and len(inbound) == 5
    assert 0.04 <= far_side <= 0.06
    assert 0.04 <= ours <= 0.06
    assert network.receive is None and network.send.lost >= lost  # RTCP and STUN were lost too


async def test_100_ms_delay_each_way_adds_200_ms_to_the_round_trip_time_on_both_sides(pair):
    (a, b, _), (c, d, network) = await asyncio.gather(pair(), pair(Impairment(delay=0.1)))

    async def round_trip_times(peer: Peer) -> list[float]:
        samples = []
        for _ in range(30):  # RTCP every 0.5-1.5 s; 4 readings of 2 s, within 15 s at most
            await asyncio.sleep(0.5)
            # None until a receiver report echoes aiortc's *latest* sender report, which the random
            # intervals of both sides can delay by several reports (more so with 100 ms each way).
            samples += [s.roundTripTime for s in await stats_of(peer, "remote-inbound-rtp") if s.roundTripTime]
            if len(samples) >= 4:
                break
        assert len(samples) >= 2
        return samples[-4:]

    rtts = await asyncio.gather(*(round_trip_times(p) for p in (a, b, c, d)))
    base_a, base_b, delayed_c, delayed_d = (statistics.median(r) for r in rtts)
    print(f"\nRTT unimpaired {base_a * 1000:.1f}/{base_b * 1000:.1f} ms,"
          f" +100 ms each way {delayed_c * 1000:.1f}/{delayed_d * 1000:.1f} ms; {network.send}")
    assert abs((delayed_c - base_a) - 0.200) <= 0.020  # the impaired side, from the far side's RR
    assert abs((delayed_d - base_b) - 0.200) <= 0.020  # the far side, from ours
    assert network.send.delayed > 100 and network.receive.delayed > 100


async def test_three_second_outage_shows_as_a_gap_in_received_audio_and_the_call_survives(pair):
    a, b, network = await pair(Impairment(outages=((1.5, 3.0),)))
    loop = asyncio.get_running_loop()
    stream = ConvertedStream(b.audio.hub.subscribe(500), audio_converter(16000, 1))
    arrivals, tail = [], []
    async with asyncio.timeout(15):
        async for frame in stream:
            arrivals.append(loop.time())
            if len(arrivals) > 1 and arrivals[-1] - arrivals[-2] > 1:
                tail = [frame.data[0]]  # after the gap: the tone again
            elif tail:
                tail.append(frame.data[0])
                if len(tail) == 50:
                    break
    stream.close()
    gap = max(np.diff(arrivals))
    print(f"\nlongest gap in received audio {gap:.2f} s; {network.send}")
    assert gap >= 2.5
    assert abs(dominant_frequency(np.concatenate(tail)[-8000:], 16000) - 440) < 5
    assert a.state == b.state == "connected" and not a.ended and not b.ended
    assert network.send.outage_dropped > 50 and network.receive.outage_dropped > 50


async def test_seeded_runs_lose_the_same_datagram_indices_and_another_seed_others(pair):
    runs = await asyncio.gather(*(pair(Impairment(loss=10, seed=seed)) for seed in (5, 5, 6)))
    await asyncio.sleep(2)
    first, again, other = (network.send for _, _, network in runs)
    common = min(first.datagrams, again.datagrams, other.datagrams)
    indices = [[i for i in link.lost_indices if i < common] for link in (first, again, other)]
    print(f"\n{common} datagrams each; seed 5 lost {len(indices[0])}, seed 6 lost {len(indices[2])}")
    assert len(indices[0]) > 10
    assert indices[0] == indices[1]
    assert indices[0] != indices[2]
    for a, b, _ in runs:  # they were real RTP losses, seen by the far side
        assert sum(s.packetsLost for s in await stats_of(b, "inbound-rtp")) > 0


async def test_64_kbps_rate_limit_caps_what_the_far_side_receives_and_counts_queue_drops(pair):
    a, b, network = await pair(NetworkImpairment(send=Impairment(rate_kbps=64)), audio=0, video=True)
    await asyncio.sleep(1)

    async def transport_bytes() -> tuple[int, int]:
        (ours,), (theirs,) = await stats_of(a, "transport"), await stats_of(b, "transport")
        return ours.bytesSent, theirs.bytesReceived

    (sent0, received0), t0 = await transport_bytes(), asyncio.get_running_loop().time()
    await asyncio.sleep(2.5)
    (sent1, received1), t1 = await transport_bytes(), asyncio.get_running_loop().time()
    offered, delivered = (sent1 - sent0) * 8 / (t1 - t0) / 1000, (received1 - received0) * 8 / (t1 - t0) / 1000
    print(f"\nvideo sent {offered:.0f} kbps, received {delivered:.0f} kbps; {network.send}")
    assert offered >= 150  # the encoder sends far more than the link carries
    assert 30 <= delivered <= 80
    assert network.send.queue_dropped > 100


def rtp_sequence_observer(peer: Peer) -> list[tuple[int, int]]:
    """Record ``(ssrc, sequence number)`` of every RTP datagram reaching ``peer``'s sockets (the
    RTP header is not encrypted by SRTP), in the order they arrive; an observer, it changes nothing."""
    seen: list[tuple[int, int]] = []
    for connection in _aiortc.ice_connections(peer._pc):
        for protocol in _aiortc.stun_protocols(connection):
            received = protocol.datagram_received

            def observe(data: bytes, addr: Any, received: Any = received) -> None:
                if len(data) >= 12 and 128 <= data[0] < 192 and not 192 <= data[1] <= 223:  # RTP, not RTCP
                    seen.append((int.from_bytes(data[8:12], "big"), int.from_bytes(data[2:4], "big")))
                received(data, addr)

            protocol.datagram_received = observe
    return seen


def overtaken(seen: list[tuple[int, int]]) -> int:
    """How many RTP datagrams arrived after one with a later sequence number of the same stream."""
    latest: dict[int, int] = {}
    count = 0
    for ssrc, seq in seen:
        if ssrc in latest and (seq - latest[ssrc]) % 65536 > 32768:
            count += 1
        else:
            latest[ssrc] = seq
    return count


async def test_jitter_keeps_datagram_order_unless_reorder_is_allowed_which_the_handle_counts(pair):
    jitter = dict(delay=0.02, jitter=0.08, seed=3)
    (a, b, ordered), (c, d, reordering) = await asyncio.gather(
        pair(NetworkImpairment(send=Impairment(**jitter))),
        pair(NetworkImpairment(send=Impairment(**jitter, reorder=True))))
    in_order, out_of_order = rtp_sequence_observer(b), rtp_sequence_observer(d)
    await asyncio.sleep(3)
    (inbound,) = await stats_of(b, "inbound-rtp")
    print(f"\nin order: {len(in_order)} RTP, {overtaken(in_order)} overtaken, jitter {inbound.jitter / 48:.1f} ms;"
          f" reordering: {len(out_of_order)} RTP, {overtaken(out_of_order)} overtaken, handle {reordering.send}")
    assert len(in_order) > 100 and len(out_of_order) > 100
    assert overtaken(in_order) == 0 and ordered.send.reordered == 0
    assert inbound.jitter / 48000 > 0.005  # the delay did vary
    assert overtaken(out_of_order) >= 5
    assert reordering.send.reordered >= overtaken(out_of_order)


@pytest.mark.parametrize("role", ["offerer", "answerer"])
async def test_attached_before_its_description_an_impairment_applies_from_the_first_ice_check(role):
    """The Peer hook's moment: once the transceivers exist (offerer) or the offer is applied
    (answerer), before setLocalDescription gathers: a 1 s outage from then holds ICE back past it.
    The answerer is plain aiortc, so the test can attach between its two descriptions."""
    loop = asyncio.get_running_loop()
    outage = Impairment(outages=((0.0, 1.0),))
    peer, tone = Peer([]), Tone(440)
    peer.add_transceiver("audio", tone, "sendrecv")
    answerer = RTCPeerConnection()
    try:
        if role == "offerer":
            network, attached = attach(peer, outage), loop.time()
        offer = await peer.create_offer()
        await answerer.setRemoteDescription(RTCSessionDescription(offer, "offer"))
        if role == "answerer":
            network, attached = attach(answerer, outage), loop.time()
        await answerer.setLocalDescription(await answerer.createAnswer())
        await peer.accept_answer(answerer.localDescription.sdp)
        await peer.wait_connected(15)
        took = loop.time() - attached
    finally:
        await peer.close()
        await _aiortc.close_peer_connection(answerer)
        tone.stop()
    print(f"\n{role}: connected {took:.2f} s after attaching a 1 s outage; sent {network.send}, received {network.receive}")
    assert took >= 1.0
    assert network.send.outage_dropped >= 1 and network.receive.outage_dropped >= 1


async def test_blackout_is_an_outage_for_as_long_as_it_lasts_then_audio_flows_again(pair):
    a, b, _ = await pair()
    blackout = Blackout(a)
    with blackout:
        assert blackout.active
        before = b.audio.frames_received
        await asyncio.sleep(0.6)
        during = b.audio.frames_received - before
    assert not blackout.active
    before = b.audio.frames_received
    await asyncio.sleep(0.6)
    after = b.audio.frames_received - before
    assert during <= 3 and after >= 15  # 50 frames/s


async def test_an_impairment_with_nothing_set_attaches_nothing_to_the_sockets(pair):
    assert not Impairment(seed=3, reorder=True).active and Impairment(outages=((1, 1),)).active
    a, b, network = await pair(Impairment(seed=3, reorder=True))
    protocols = [p for c in _aiortc.ice_connections(a._pc) for p in _aiortc.stun_protocols(c)]
    assert protocols and network.send is None and network.receive is None
    assert all(type(p.transport).__module__.startswith("asyncio") for p in protocols)
    assert all("datagram_received" not in vars(p) for p in protocols)
    frame = await ConvertedStream(b.audio.hub.subscribe(), audio_converter(None, None)).__anext__()
    assert frame.samples > 0  # the call works, unimpaired


async def connected_pair(**options: Any) -> tuple[Peer, Peer, list[Any]]:
    """An offerer built with ``options`` (its own ``impair``, as a session's Peer has) sending a
    440 Hz tone to a plain answerer that sends 880 Hz back; the tracks, for the caller to stop."""
    a, b, tracks = Peer([], **options), Peer([]), [Tone(440), Tone(880)]
    a.add_transceiver("audio", tracks[0], "sendrecv")
    answer = await b.accept_offer(await a.create_offer(), audio=tracks[1])
    await a.accept_answer(answer)
    await asyncio.gather(a.wait_connected(15), b.wait_connected(15))
    return a, b, tracks


async def test_a_rebuilt_connection_continues_the_calls_outage_window_and_gets_no_second_one():
    """What a session does on reconnecting: a new Peer from the same options (so the same clock).
    The window is t=2..4 s of the call; the second connection starts at t=2.5, inside it: it is
    held until t=4, then media flows with no gap at its own t=2..4 (the call's 4.5..6.5)."""
    loop = asyncio.get_running_loop()
    clock, impair = ImpairmentClock(), Impairment(outages=((2.0, 2.0),))
    first, far, tracks = await connected_pair(impair=impair, impair_clock=clock)
    peers = [first, far]
    try:
        assert clock.epoch is not None and loop.time() - clock.epoch < 2.0  # connected before the window
        await asyncio.sleep(clock.epoch + 2.5 - loop.time())
        await first.close()
        await far.close()
        rebuilt = loop.time() - clock.epoch
        second, far, more = await connected_pair(impair=impair, impair_clock=clock)
        peers += [second, far]
        tracks += more
        connected = loop.time() - clock.epoch
        stream = ConvertedStream(far.audio.hub.subscribe(500), audio_converter(16000, 1))
        arrivals, heard = [], []
        async with asyncio.timeout(10):
            async for frame in stream:
                arrivals.append(loop.time() - clock.epoch)
                heard.append(frame.data[0])
                if arrivals[-1] >= rebuilt + 4.5:  # past the second connection's own t=2..4
                    break
        stream.close()
    finally:
        for peer in peers:
            await peer.close()
        for track in tracks:
            track.stop()
    gap = max(np.diff(arrivals))
    print(f"\nrebuilt at t={rebuilt:.2f} s, connected at t={connected:.2f} s; audio t={arrivals[0]:.2f}..{arrivals[-1]:.2f} s,"
          f" longest gap {gap:.2f} s; first {first.impairment.send}, second {second.impairment.send}")
    assert second.impairment is not None and second.impairment.clock is clock is first.impairment.clock
    assert connected >= 4.0  # held by the call's window while it lasted...
    assert gap < 0.5 and arrivals[-1] >= rebuilt + 4.5  # ...and no window of its own afterwards
    assert abs(dominant_frequency(np.concatenate(heard)[-8000:], 16000) - 440) < 5
    assert second.impairment.send.outage_dropped >= 1  # its set-up inside the window was dropped


async def test_a_session_reconnecting_after_the_configured_outage_sees_no_second_one(orga_kwargs):
    """``outage=1s+2.5s`` with reconnection on: the window kills the first connection (liveness
    1 s), the rebuilt one waits out the rest of it, then the call runs clean: one reconnection,
    not a second window at the new connection's own t=1 s."""
    loop = asyncio.get_running_loop()
    async with orga.connect(Tone(440), impair="outage=1s+2.5s", liveness_timeout=1.0, reconnect_backoff=0.2,
                            **orga_kwargs) as session:
        first = session.peer
        clock = first.options.impair_clock
        stream = session.audio_frames(sample_rate=16000, channels=1)
        arrivals = []
        async with asyncio.timeout(15):
            async for _ in stream:
                arrivals.append(loop.time() - clock.epoch)
                if arrivals[-1] >= 8.0:  # the rebuilt connection's own t=1..3.5 is well past
                    break
        second = session.peer
        reconnects = session.reconnects
    after = [t for t in arrivals if t >= 4.0]
    gap = max(np.diff(after))
    print(f"\n{reconnects} reconnection(s); audio after t=4 s: {after[0]:.2f}..{after[-1]:.2f} s,"
          f" longest gap {gap:.2f} s; second {second.impairment}")
    assert second is not first and second.options.impair_clock is clock and second.impairment.clock is clock
    assert reconnects == 1
    assert gap < 0.5 and after[0] < 5.0


async def test_a_standalone_peer_starts_its_own_timeline():
    peers = Peer([], impair=Impairment(outages=((1, 1),))), Peer([], impair=Impairment(outages=((1, 1),)))
    try:
        assert peers[0].options.impair_clock is not peers[1].options.impair_clock
    finally:
        for peer in peers:
            await peer.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_bursty_loss_of_the_readme_example_lets_the_call_set_up(pair, seed):
    """``burst=1%/25%`` both ways: the chain moves with time (20 ms slots), so ICE checks and DTLS
    flights seconds apart see the long-run 3.8 % loss, not a burst that lasts for seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    a, b, network = await pair(Impairment.parse(f"burst=1%/25%,seed={seed}"))
    took = loop.time() - started
    print(f"\nseed {seed}: connected in {took:.2f} s; sent {network.send}, received {network.receive}")
    assert took < 10 and a.state == b.state == "connected"


async def test_bursty_loss_over_a_thousand_audio_packets_is_the_stationary_bad_share_of_the_bad_state_loss(pair):
    """π = p / (p + r) = 1 / 26 of the time bad, 100 % lost there: 3.8 % in the long run, measured by
    the far sides (each direction of three seeded calls, ~2400 RTP packets) within 2.5 points."""
    impairments = [Impairment.parse(f"burst=1%/25%,seed={seed}") for seed in (1, 2, 3)]
    calls = await asyncio.gather(*(pair(i) for i in impairments))
    await asyncio.sleep(8)
    received = lost = 0
    for a, b, _ in calls:
        for peer in (a, b):  # b: what a sent; a: what b sent, through a's receive link
            for s in await stats_of(peer, "inbound-rtp"):
                received, lost = received + s.packetsReceived, lost + s.packetsLost
    links = [link for _, _, network in calls for link in (network.send, network.receive)]
    link_share = sum(link.burst_lost for link in links) / sum(link.datagrams for link in links)
    expected = impairments[0].burst.bad_share * impairments[0].burst.bad_loss / 100
    measured = lost / (received + lost)
    print(f"\n{received + lost} RTP packets: {measured:.2%} lost (links {link_share:.2%}), stationary {expected:.2%}")
    assert received + lost >= 2000
    assert abs(measured - expected) <= 0.025
    assert abs(link_share - expected) <= 0.025
    assert sum(link.burst_lost for link in links) > 20
