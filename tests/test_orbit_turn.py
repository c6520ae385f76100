"""An Orbit voice call relayed through a real coturn: TURN REST credentials from the Orbit server.

The local Orbit server is given coturn's UDP URL and shared secret, so ``turn-credentials``
hands each participant its own TURN REST username (``<expiry>:<user id>``) and password. Both
peerbot participants are relay-only: every packet of the call crosses coturn, whose log
confirms the allocations and what it relayed.
"""

from __future__ import annotations

import asyncio

import numpy as np

from media_checks import dominant_frequency, rms
from orbit_bed import orbit_bed
from peerbot import orbit
from peerbot.media import Tone
from turn_server import TurnServer, coturn  # noqa: F401  (coturn is the module-scoped fixture)

RATE = 16000
GATHER_TIMEOUT = 3.0


async def heard(call: orbit.OrbitCall, seconds: float = 1.5) -> np.ndarray:
    chunks, total = [], 0
    async for frame in call.audio_frames(sample_rate=RATE, channels=1):
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * RATE:
            break
    return np.concatenate(chunks)[-8000:]


async def usage_when_logged(server: TurnServer, user: str, timeout: float = 5.0):
    """coturn logs an allocation's usage when it ends (about 1 s after the allocation is deleted)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        usage = server.peer_usage(user)
        if usage and len(usage) >= server.allocations(user):
            return usage
        await asyncio.sleep(0.1)
    return server.peer_usage(user)


async def test_relay_only_orbit_voice_call_carries_both_tones_through_coturn_with_orbit_turn_credentials(
    coturn,  # noqa: F811
):
    relay = {"relay_only": True, "gather_timeout": GATHER_TIMEOUT}
    async with orbit_bed(turn_urls=[coturn.udp_url], turn_secret=coturn.secret) as bed:
        alice, bob = await bed.participant("alice"), await bed.participant("bob")
        answering = asyncio.create_task(_enter(orbit.answer(Tone(880), **relay, **bob.kwargs)))
        callee = None
        try:
            async with orbit.call(bob.user_id, Tone(440), **relay, **alice.kwargs) as caller:
                callee = await asyncio.wait_for(answering, 10)
                heard_by_bob, heard_by_alice = await asyncio.gather(heard(callee), heard(caller))
                pairs = caller.peer.candidate_pair(), callee.peer.candidate_pair()
                candidates = caller.peer.local_candidates() + callee.peer.local_candidates()
                stats = caller.stats()
        finally:
            if callee is None:
                answering.cancel()
            else:
                await callee.close()
    usage = {p.user_id: await usage_when_logged(coturn, p.user_id) for p in (alice, bob)}
    relayed = {user: (sum(u.packets_to_peers for u in got), sum(u.packets_from_peers for u in got))
               for user, got in usage.items()}
    print(f"\nalice heard {dominant_frequency(heard_by_alice, RATE):.0f} Hz, bob heard"
          f" {dominant_frequency(heard_by_bob, RATE):.0f} Hz; alice's RTP: {stats.summary.packets_sent} sent,"
          f" {stats.summary.packets_received} received")
    print(f"pair at alice (caller): {pairs[0]}\npair at bob (callee):   {pairs[1]}")
    for name, p in (("alice", alice), ("bob", bob)):
        to_peers, from_peers = relayed[p.user_id]
        print(f"coturn for {name}: {coturn.allocations(p.user_id)} allocation(s), relayed {to_peers} packets"
              f" to peers and {from_peers} from peers")

    assert abs(dominant_frequency(heard_by_bob, RATE) - 440) < 5 and rms(heard_by_bob) > 1000
    assert abs(dominant_frequency(heard_by_alice, RATE) - 880) < 5 and rms(heard_by_alice) > 1000
    assert all(p is not None and p.local_type == "relay" and p.relay_transport == "udp" for p in pairs), pairs
    assert all(c["candidate"].split()[7] == "relay" for c in candidates), candidates
    # Each participant allocated on coturn with the credentials the Orbit server issued for its user id,
    # and its relay carried the call's packets (RTP plus STUN, DTLS and RTCP, hence ">=").
    for p in (alice, bob):
        assert coturn.allocations(p.user_id) >= 1
    assert relayed[alice.user_id][0] >= stats.summary.packets_sent and relayed[alice.user_id][1] >= stats.summary.packets_received
    assert stats.summary.packets_sent >= 25 and relayed[bob.user_id][0] >= 50  # stats lag by up to 1 s


async def _enter(call):
    return await call.__aenter__()
