"""TURN through a real coturn: relay-only sessions over UDP, TCP and TLS, and refused credentials.

The local Orga server hands out TURN REST credentials (coturn's ``use-auth-secret``) and its own
peer uses the same TURN server, as a real deployment would. The client is relay-only, so every
packet it sends or receives crosses coturn; coturn's own usage counters confirm it.
"""

from __future__ import annotations

import asyncio
import re
import socket

import numpy as np
import pytest

from peerbot import orga
from peerbot.engine.peer import Peer
from peerbot.errors import ConfigurationError, IceFailedError
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.local.tokens import turn_rest_credentials
from peerbot.media import Tone
from peerbot.media.streams import ConvertedStream, audio_converter

from media_checks import dominant_frequency, rms
from turn_server import TurnServer, running_turn_server

TRANSPORTS = ("udp", "tcp", "tls")
GATHER_TIMEOUT = 3.0


@pytest.fixture(scope="module")
def coturn(tmp_path_factory):
    with running_turn_server(tmp_path_factory.mktemp("coturn")) as server:
        print(f"\ncoturn: {' '.join(server.command).replace(server.secret, '<secret>')}")
        yield server


@pytest.fixture
def turn_url(coturn, transport, monkeypatch):
    """The coturn URL for the test's transport; for TLS, the test CA is trusted through
    ``SSL_CERT_FILE`` (the client's and the local server's peers both use the default context)."""
    if transport == "tls":
        monkeypatch.setenv("SSL_CERT_FILE", str(coturn.ca_file))
    return {"udp": coturn.udp_url, "tcp": coturn.tcp_url, "tls": coturn.tls_url}[transport]


async def collect(stream, seconds: float) -> tuple[np.ndarray, int]:
    chunks, total = [], 0
    async for frame in stream:
        chunks.append(frame.data[0])
        total += frame.samples
        if total >= seconds * frame.sample_rate:
            break
    stream.close()
    return np.concatenate(chunks), len(chunks)


def negotiated_audio_codec(peer: Peer) -> str:
    sdp = peer._pc.remoteDescription.sdp
    return re.search(r"^a=rtpmap:\d+ (\S+)", sdp, re.M)[1]


async def wait_for_usage(coturn: TurnServer, user: str, timeout: float = 5.0):
    """coturn logs an allocation's usage when it ends (about 1 s after a UDP allocation's delete)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        usage = coturn.peer_usage(user)
        if usage and len(usage) >= coturn.allocations(user):
            return usage
        await asyncio.sleep(0.1)
    return coturn.peer_usage(user)


def orga_kwargs(server: LocalOrgaServer, user: str) -> dict:
    return {"api_key": server.api_key, "base_url": server.base_url, "user_email": user}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_relay_only_session_echoes_the_tone_through_coturn(coturn, transport, turn_url):
    user = f"relay-{transport}@peerbot.example"
    async with LocalOrgaServer(turn_urls=[turn_url], turn_secret=coturn.secret, echo_delay=0.1) as server:
        async with orga.connect(Tone(523.0), relay_only=True, gather_timeout=GATHER_TIMEOUT,
                                **orga_kwargs(server, user)) as session:
            pair = session.peer.candidate_pair()
            call = server.calls[session.conversation_id]
            heard, frames_heard = await collect(session.audio_frames(sample_rate=16000, channels=1), 2.0)
            stats = session.stats()
            codec = negotiated_audio_codec(session.peer)
            sent_by_client, sent_by_server = call.audio_frames_received, call.audio_frames_sent
        assert all(c["candidate"].split()[7] == "relay" for c in session.peer.local_candidates())
    usage = await wait_for_usage(coturn, user)
    to_peers = sum(u.packets_to_peers for u in usage)
    from_peers = sum(u.packets_from_peers for u in usage)
    print(f"\n[{transport}] codec {codec}; audio frames client->server {sent_by_client}, "
          f"server->client {sent_by_server} sent / {frames_heard} read by the test; pair {pair}")
    print(f"[{transport}] client RTP packets sent {stats.summary.packets_sent}, received {stats.summary.packets_received}; "
          f"coturn: {coturn.allocations(user)} allocations, relayed {to_peers} packets "
          f"({sum(u.bytes_to_peers for u in usage)} B) to peers and {from_peers} "
          f"({sum(u.bytes_from_peers for u in usage)} B) from peers")

    assert pair is not None and pair.local_type == "relay" and pair.relay_transport == transport
    assert abs(dominant_frequency(heard[-8000:], 16000) - 523.0) < 5
    assert rms(heard[-8000:]) > 1000
    assert sent_by_client >= 50 and sent_by_server >= 50  # > 1 s of 20 ms frames each way
    # The client is relay-only: each RTP packet it counted crossed coturn (which also relays
    # STUN checks, DTLS, SCTP and RTCP, hence ">=").
    assert stats.summary.packets_sent >= 50 and stats.summary.packets_received >= 50
    assert to_peers >= stats.summary.packets_sent and from_peers >= stats.summary.packets_received


async def test_turn_tls_ca_lets_two_relay_only_peers_talk_through_coturn_over_tls(coturn, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # only the explicit CA may make this work
    username, credential = turn_rest_credentials(coturn.secret, "engine-tls")
    servers = [{"urls": coturn.tls_url, "username": username, "credential": credential}]
    a = Peer(servers, relay_only=True, turn_tls_ca=coturn.ca_file, gather_timeout=GATHER_TIMEOUT)
    b = Peer(servers, relay_only=True, turn_tls_ca=coturn.ca_file, gather_timeout=GATHER_TIMEOUT)
    try:
        a.add_transceiver("audio", Tone(440), "sendrecv")
        b.add_transceiver("audio", Tone(880), "sendrecv")
        await a.accept_answer(await b.accept_offer(await a.create_offer()))
        await asyncio.gather(a.wait_connected(), b.wait_connected())
        heard_by_b, heard_by_a = await asyncio.gather(
            collect(ConvertedStream(b.audio.hub.subscribe(500), audio_converter(16000, 1)), 1.5),
            collect(ConvertedStream(a.audio.hub.subscribe(500), audio_converter(16000, 1)), 1.5),
        )
        pairs = a.candidate_pair(), b.candidate_pair()
    finally:
        await asyncio.gather(a.close(), b.close())
    print(f"\n[tls, turn_tls_ca] codec {negotiated_audio_codec(a)}; frames read a->b {heard_by_b[1]}, "
          f"b->a {heard_by_a[1]}; pairs {pairs[0]} | {pairs[1]}")
    assert all(p.local_type == "relay" and p.remote_type == "relay" and p.relay_transport == "tls" for p in pairs)
    assert abs(dominant_frequency(heard_by_b[0][-8000:], 16000) - 440) < 5
    assert abs(dominant_frequency(heard_by_a[0][-8000:], 16000) - 880) < 5


async def gathering_error(server: LocalOrgaServer, user: str, gather_timeout: float = GATHER_TIMEOUT):
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(IceFailedError) as info:
        async with orga.connect(Tone(), relay_only=True, gather_timeout=gather_timeout, **orga_kwargs(server, user)):
            pass
    return str(info.value), loop.time() - started


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_wrong_turn_secret_fails_gathering_with_refused_credentials_401(coturn, transport, turn_url):
    user = f"wrong-secret-{transport}@peerbot.example"
    async with LocalOrgaServer(turn_urls=[turn_url], turn_secret="not-" + coturn.secret) as server:
        message, took = await gathering_error(server, user)
    print(f"\n[{transport}] wrong secret after {took:.2f} s: {message}")
    assert f"over {transport} refused the credentials (401 Unauthorized)" in message
    assert "expired" not in message and coturn.secret not in message
    assert took < GATHER_TIMEOUT  # a refusal is an answer: no waiting for the bound
    assert re.search(rf"user <\d+:{re.escape(user)}>: incoming packet message processed, error 401", coturn.log())


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_expired_turn_credentials_fail_gathering_with_401_saying_they_expired(coturn, transport, turn_url):
    user = f"expired-{transport}@peerbot.example"
    async with LocalOrgaServer(turn_urls=[turn_url], turn_secret=coturn.secret, turn_ttl=-60) as server:
        message, took = await gathering_error(server, user)
    print(f"\n[{transport}] expired credentials after {took:.2f} s: {message}")
    assert f"over {transport} refused the credentials (401 Unauthorized)" in message
    assert re.search(r"the TURN REST username expired 6\d s ago", message)
    assert took < GATHER_TIMEOUT
    assert coturn.allocations(user) == 0


async def test_untrusted_turns_certificate_fails_gathering_with_a_verification_error(coturn, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the system trust store knows no test CA
    user = "untrusted-tls@peerbot.example"
    async with LocalOrgaServer(turn_urls=[coturn.tls_url], turn_secret=coturn.secret) as server:
        message, took = await gathering_error(server, user)
    print(f"\n[tls] untrusted certificate after {took:.2f} s: {message}")
    assert "over tls presented a TLS certificate that could not be verified" in message
    assert "unable to get local issuer certificate" in message
    assert took < GATHER_TIMEOUT and coturn.allocations(user) == 0


async def test_silent_turn_server_fails_gathering_once_the_bound_has_passed():
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    url = f"turn:127.0.0.1:{port}?transport=udp"
    try:
        async with LocalOrgaServer(turn_urls=[url], turn_secret="unused") as server:
            message, took = await gathering_error(server, "silent@peerbot.example", gather_timeout=1.0)
    finally:
        silent.close()
    print(f"\n[udp] silent TURN server after {took:.2f} s: {message}")
    assert f"TURN server 127.0.0.1:{port} over udp did not answer within 1 s" in message
    assert 1.0 <= took < 3.0  # the bound, not aioice's fixed 5 s, and no second wait


def test_unreadable_turn_tls_ca_is_a_configuration_error(tmp_path):
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate")
    for path in (tmp_path / "missing.pem", not_pem):
        with pytest.raises(ConfigurationError, match="turn_tls_ca .* is not a readable PEM CA bundle"):
            Peer([], turn_tls_ca=path)
