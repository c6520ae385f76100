"""Impairment on relay candidates: two relay-only Peers through a real coturn (UDP), the delay
on one side's TURN allocation, witnessed by the round-trip time the far side's RTCP gives."""

from __future__ import annotations

import asyncio

import pytest

from peerbot.engine.impairment import Impairment, NetworkImpairment, attach
from peerbot.engine.peer import Peer
from peerbot.local.tokens import turn_rest_credentials
from peerbot.media import Tone

from turn_server import running_turn_server


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    with running_turn_server(tmp_path_factory.mktemp("coturn")) as server:
        yield server


async def test_delay_on_a_relay_only_peer_goes_through_its_turn_allocation_into_the_round_trip_time(coturn):
    username, credential = turn_rest_credentials(coturn.secret, "impaired")
    servers = [{"urls": coturn.udp_url, "username": username, "credential": credential}]
    a, b = Peer(servers, relay_only=True, gather_timeout=3), Peer(servers, relay_only=True, gather_timeout=3)
    tones = Tone(440), Tone(880)
    try:
        a.add_transceiver("audio", tones[0], "sendrecv")
        b.add_transceiver("audio", tones[1], "sendrecv")
        network = attach(a, NetworkImpairment(send=Impairment(delay=0.15)))
        await a.accept_answer(await b.accept_offer(await a.create_offer()))
        await asyncio.gather(a.wait_connected(15), b.wait_connected(15))
        # Until a receiver report echoes one of our sender reports (both sides' intervals are random).
        rtt: list[float] = []
        for _ in range(40):
            await asyncio.sleep(0.25)
            rtt = [r.roundTripTime for r in a.stats().remote_inbound_rtp if r.roundTripTime is not None]
            if rtt:
                break
        pair = a.candidate_pair()
    finally:
        await asyncio.gather(a.close(), b.close())
        for tone in tones:
            tone.stop()
    assert rtt, "no round-trip time in 10 s"
    print(f"\npair {pair}; RTT {rtt[0] * 1000:.0f} ms; sent {network.send}")
    assert pair is not None and pair.local_type == "relay"
    assert 0.14 <= rtt[0] <= 0.25  # 150 ms one way, the rest coturn's loopback relay
    assert network.send.delayed > 100
