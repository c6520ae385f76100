"""The local Orga-compatible server over real HTTP, and one real WebRTC call to its echo assistant."""

from __future__ import annotations

import asyncio
import base64
import fractions
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import av
import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription, VideoStreamTrack
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from peerbot.orga.events import (
    CONVERSATION_CREATED,
    INPUT_TRANSCRIPTION_COMPLETED,
    RESPONSE_OUTPUT_ITEM_DONE,
    SESSION_CREATED,
    SESSION_UPDATED,
    session_update_message,
)
from peerbot.orga.routes import CALLS, CLIENT_SECRETS, DATA_CHANNEL_LABEL, ICE_CONFIG
from peerbot.local._offer import IceCandidate, merge_candidates
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.local.tokens import _TokenRefused, issue_token, verify_token

EMAIL = "tester@example.com"
SAMPLE_RATE = 48000
TONE_HZ = 440.0
TONE_SECONDS = 1.2
MEDIA_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n"  # parses, but aiortc cannot negotiate it


@pytest.fixture
async def server() -> AsyncIterator[LocalOrgaServer]:
    async with LocalOrgaServer(echo_delay=0.2) as srv:
        yield srv


@pytest.fixture
async def http(server: LocalOrgaServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


async def issue(http: httpx.AsyncClient, api_key: str, email: str = EMAIL, body: Any = None) -> httpx.Response:
    return await http.request(
        CLIENT_SECRETS.method, CLIENT_SECRETS.path, params={"email": email}, headers=bearer(api_key), json=body
    )


async def token_for(http: httpx.AsyncClient, server: LocalOrgaServer, **body: Any) -> str:
    response = await issue(http, server.api_key, body=body or None)
    assert response.status_code == 200, response.text
    return response.json()["ephemeral_token"]


async def post_call(http: httpx.AsyncClient, token: str, **kwargs: Any) -> httpx.Response:
    headers = {**bearer(token), **kwargs.pop("headers", {})}
    return await http.request(CALLS.method, CALLS.path, headers=headers, **kwargs)


def error_code(response: httpx.Response) -> str:
    return response.json()["error"]["code"]


# --- tokens --------------------------------------------------------------------------


def test_token_verifies_with_its_secret_and_is_refused_when_tampered_expired_or_malformed() -> None:
    secret = b"s" * 32
    token = issue_token(secret, EMAIL, ttl=60, key_id="key_abc")
    claims = verify_token(secret, token)
    assert (claims.subject, claims.key_id) == (EMAIL, "key_abc")
    assert claims.expires_at - claims.issued_at == pytest.approx(60, abs=0.01)
    with pytest.raises(_TokenRefused) as refused:
        verify_token(b"t" * 32, token)
    assert refused.value.reason == "bad_signature"
    head, body, sig = token.split(".")
    with pytest.raises(_TokenRefused) as refused:
        verify_token(secret, f"{head}.{body}.{sig[:-2]}AA")
    assert refused.value.reason == "bad_signature"
    with pytest.raises(_TokenRefused) as refused:
        verify_token(secret, token, now=time.time() + 61)
    assert refused.value.expired
    with pytest.raises(_TokenRefused) as refused:
        verify_token(secret, "orga_local_notatoken")
    assert refused.value.reason == "malformed"


# --- client-secrets and ice-config ---------------------------------------------------


async def test_client_secrets_issues_a_token_that_ice_config_accepts(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    response = await issue(http, server.api_key)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 60
    token = body["ephemeral_token"]
    assert server.api_key not in token and server.api_key.startswith("orga_local_")
    ice = await http.request(ICE_CONFIG.method, ICE_CONFIG.path, headers=bearer(token))
    assert ice.status_code == 200
    assert ice.json() == {"iceServers": []}


async def test_client_secrets_honours_expires_in_up_to_the_maximum(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    assert (await issue(http, server.api_key, body={"expires_in": 5})).json()["expires_in"] == 5
    assert (await issue(http, server.api_key, body={"expires_in": 10**9})).json()["expires_in"] == server.max_token_ttl


async def test_ice_config_returns_configured_servers_and_turn_rest_credentials() -> None:
    stun = {"urls": "stun:stun.invalid:3478"}
    async with LocalOrgaServer(ice_servers=[stun], turn_urls="turn:127.0.0.1:3478", turn_secret="turnsecret") as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            token = await token_for(http, server)
            servers = (await http.get(ICE_CONFIG.path, headers=bearer(token))).json()["iceServers"]
    assert servers[0] == {"urls": [stun["urls"]]}  # normalised by peerbot.ice_servers
    turn = servers[1]
    assert turn["urls"] == ["turn:127.0.0.1:3478"]
    expiry, user = turn["username"].split(":", 1)
    assert user == EMAIL and int(expiry) > time.time() + 3600
    expected = base64.b64encode(hmac.new(b"turnsecret", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["credential"] == expected


@pytest.mark.parametrize("route", [ICE_CONFIG, CALLS], ids=["ice-config", "calls"])
async def test_api_key_where_a_token_belongs_is_refused_with_403(
    server: LocalOrgaServer, http: httpx.AsyncClient, route: Any
) -> None:
    response = await http.request(route.method, route.path, headers=bearer(server.api_key), json={})
    assert response.status_code == 403
    assert error_code(response) == "invalid_credential_context"


async def test_token_where_the_api_key_belongs_is_refused_with_403(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    token = await token_for(http, server)
    response = await issue(http, token)
    assert response.status_code == 403
    assert "ephemeral token" in response.json()["error"]["message"]


async def test_wrong_or_missing_api_key_is_refused_with_401(server: LocalOrgaServer, http: httpx.AsyncClient) -> None:
    wrong = await issue(http, "orga_local_wrong")
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_api_key"
    missing = await http.post(CLIENT_SECRETS.path, params={"email": EMAIL})
    assert missing.status_code == 401 and error_code(missing) == "missing_credentials"


async def test_forged_token_is_refused_with_401(server: LocalOrgaServer, http: httpx.AsyncClient) -> None:
    forged = issue_token(b"not the server's secret", EMAIL)
    response = await http.get(ICE_CONFIG.path, headers=bearer(forged))
    assert response.status_code == 401 and error_code(response) == "invalid_token"


async def test_expired_token_is_refused_with_401_saying_expired(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    token = await token_for(http, server, expires_in=1)
    assert (await http.get(ICE_CONFIG.path, headers=bearer(token))).status_code == 200
    await asyncio.sleep(1.1)
    response = await http.get(ICE_CONFIG.path, headers=bearer(token))
    assert response.status_code == 401
    assert error_code(response) == "token_expired" and "expired" in response.json()["error"]["message"]


@pytest.mark.parametrize("email", ["", "not-an-email", "user@localhost", "a b@c.de"])
async def test_client_secrets_refuses_a_bad_email_with_401(
    server: LocalOrgaServer, http: httpx.AsyncClient, email: str
) -> None:
    response = await issue(http, server.api_key, email=email)
    assert response.status_code == 401 and error_code(response) == "invalid_email"


# --- calls: refusals -----------------------------------------------------------------


async def test_calls_refuses_a_non_json_body_with_400(server: LocalOrgaServer, http: httpx.AsyncClient) -> None:
    token = await token_for(http, server)
    response = await post_call(http, token, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and error_code(response) == "invalid_json"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "invalid_request"),
        ([], "invalid_request"),
        ({"offer": {"type": "offer"}}, "invalid_request"),
        ({"offer": {"sdp": "v=0\r\n", "type": "answer"}}, "invalid_request"),
        ({"offer": {"sdp": 42, "type": "offer"}}, "invalid_request"),
        ({"offer": {"sdp": MEDIA_SDP, "type": "offer", "candidates": "x"}}, "invalid_candidates"),
        ({"offer": {"sdp": MEDIA_SDP, "type": "offer"}, "params": {"voice": "bogus"}}, "invalid_params"),
        ({"offer": {"sdp": MEDIA_SDP, "type": "offer"}, "params": {"temperature": 2}}, "invalid_params"),
    ],
    ids=["empty", "array", "no-sdp", "wrong-type", "sdp-not-string", "candidates-not-list", "bad-voice", "bad-temperature"],
)
async def test_calls_refuses_a_body_without_a_usable_offer_with_400(
    server: LocalOrgaServer, http: httpx.AsyncClient, body: Any, code: str
) -> None:
    token = await token_for(http, server)
    response = await post_call(http, token, json=body)
    assert response.status_code == 400 and error_code(response) == code
    assert not server.calls


async def test_calls_refuses_an_oversized_body_with_413(server: LocalOrgaServer, http: httpx.AsyncClient) -> None:
    token = await token_for(http, server)
    padding = "x" * (300 * 1024)
    response = await post_call(http, token, json={"offer": {"sdp": padding, "type": "offer"}})
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def make_client_pc() -> RTCPeerConnection:
    # iceServers=[] explicitly: aiortc would otherwise add Google's STUN server and stall offline.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def test_calls_refuses_garbage_sdp_with_400_and_still_answers_the_next_call(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    token = await token_for(http, server)
    for garbage in ("garbage", MEDIA_SDP + "c=IN IP4 0.0.0.0\r\n"):
        response = await post_call(http, token, json={"offer": {"sdp": garbage, "type": "offer"}})
        assert response.status_code == 400 and error_code(response) == "invalid_sdp"
    assert not server.calls  # the refused calls' peer connections are gone

    pc = make_client_pc()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        pc.createDataChannel(DATA_CHANNEL_LABEL)
        await pc.setLocalDescription(await pc.createOffer())
        response = await post_call(http, token, json={"offer": {"sdp": pc.localDescription.sdp, "type": "offer"}})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["answer"]["type"] == "answer" and "m=audio" in body["answer"]["sdp"]
        assert "a=candidate:" in body["answer"]["sdp"]  # non-trickle: gathered before answering
        assert body["conversation_id"].startswith("conv_") and body["conversation_id"] in server.calls
    finally:
        await pc.close()


def test_merge_candidates_adds_missing_candidates_and_skips_duplicates() -> None:
    sdp = MEDIA_SDP + "a=mid:0\r\na=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host\r\na=end-of-candidates\r\n"
    merged = merge_candidates(
        sdp,
        [
            IceCandidate("candidate:1 1 UDP 2130706431 10.0.0.1 5000 typ host generation 0", "0", 0),
            IceCandidate("candidate:2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 10.0.0.1 rport 5000", "0", 0),
            IceCandidate("", "0", 0),
        ],
    )
    lines = merged.splitlines()
    assert [line for line in lines if line.startswith("a=candidate:")] == [
        "a=candidate:1 1 udp 2130706431 10.0.0.1 5000 typ host",
        "a=candidate:2 1 udp 1694498815 203.0.113.7 6000 typ srflx raddr 10.0.0.1 rport 5000",
    ]
    assert lines[-1] == "a=end-of-candidates"


# --- one real call ---------------------------------------------------------------------


class ToneTrack(MediaStreamTrack):
    """A 440 Hz tone for TONE_SECONDS, then silence: 20 ms int16 mono frames, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._start: float | None = None
        self._pts = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        samples = SAMPLE_RATE // 50
        if self._start is None:
            self._start = time.monotonic()
        else:
            self._pts += samples
            await asyncio.sleep(max(0.0, self._start + self._pts / SAMPLE_RATE - time.monotonic()))
        t = (self._pts + np.arange(samples)) / SAMPLE_RATE
        level = 0.3 * 32767 if self._pts / SAMPLE_RATE < TONE_SECONDS else 0.0
        pcm = (level * np.sin(2 * np.pi * TONE_HZ * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, self._pts, fractions.Fraction(1, SAMPLE_RATE)
        return frame


def mono(frame: av.AudioFrame) -> np.ndarray:
    channels = len(frame.layout.channels)
    return frame.to_ndarray().reshape(-1, channels)[:, 0].astype(np.float64)


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0


def dominant_frequency(pcm: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / sample_rate)[int(np.argmax(spectrum))])


async def next_message(queue: asyncio.Queue[str], timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(queue.get(), timeout))


async def test_loopback_call_greets_in_order_echoes_the_tone_counts_video_and_cleans_up(
    server: LocalOrgaServer, http: httpx.AsyncClient
) -> None:
    token = await token_for(http, server)
    pc = make_client_pc()
    messages: asyncio.Queue[str] = asyncio.Queue()
    echoed: list[av.AudioFrame] = []
    collectors: list[asyncio.Task[None]] = []

    async def collect(track: MediaStreamTrack) -> None:
        while True:
            try:
                echoed.append(await track.recv())
            except MediaStreamError:
                return

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            collectors.append(asyncio.ensure_future(collect(track)))

    try:
        pc.addTrack(ToneTrack())
        pc.addTransceiver(VideoStreamTrack(), direction="sendonly")
        channel = pc.createDataChannel(DATA_CHANNEL_LABEL)  # before the offer, as the SDK does
        channel.on("message", messages.put_nowait)
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        # Like the browser SDK: candidates both in the SDP and in the list (the server dedupes).
        lines = [line for line in sdp.splitlines() if line.startswith("a=candidate:")]
        candidates = [{"candidate": line[2:], "sdpMid": "0", "sdpMLineIndex": 0} for line in lines]
        offer = {"sdp": sdp, "type": "offer", "candidates": candidates}
        params = {"voice": "coral", "return_transcription": True, "modalities": ["audio", "video"]}
        response = await post_call(http, token, json={"offer": offer, "params": params})
        assert response.status_code == 200, response.text
        body = response.json()
        conversation_id = body["conversation_id"]
        await pc.setRemoteDescription(RTCSessionDescription(**body["answer"]))

        created = await next_message(messages)
        assert created["type"] == SESSION_CREATED
        assert created["session"]["voice"] == "coral" and created["session"]["object"] == "realtime.session"
        assert (await next_message(messages)) == {"type": CONVERSATION_CREATED, "conversation": {"id": conversation_id}}

        channel.send(session_update_message(voice="nova", temperature=0.2))
        updated = await next_message(messages)
        assert updated["type"] == SESSION_UPDATED
        assert updated["session"]["voice"] == "nova" and updated["session"]["temperature"] == 0.2
        assert updated["session"]["model"] == "orga-1-beta"
        channel.send("not json")
        assert (await next_message(messages))["type"] == "error"
        channel.send(json.dumps({"event": "session.update", "data": {"voice": "bogus"}}))
        assert (await next_message(messages))["error"]["code"] == "invalid_session_update"

        # The tone stops after TONE_SECONDS; the energy detector then reports the burst.
        transcript = await next_message(messages, timeout=8)
        assert transcript["type"] == INPUT_TRANSCRIPTION_COMPLETED
        seconds = float(transcript["transcript"].strip("()").split()[0])
        assert seconds == pytest.approx(TONE_SECONDS, abs=0.3)
        assert (await next_message(messages))["type"] == RESPONSE_OUTPUT_ITEM_DONE

        call = server.calls[conversation_id]
        assert call.audio_frames_received > 40 and call.video_frames_received > 10
        assert call.echoed_frames > 0

        levels = [rms(mono(frame)) for frame in echoed]
        assert levels[0] < 50  # silence is sent before the caller's audio comes back
        voiced = np.concatenate([mono(f) for f, level in zip(echoed, levels) if level > 1000])
        assert voiced.size >= SAMPLE_RATE // 2
        middle = voiced[voiced.size // 2 - SAMPLE_RATE // 4 : voiced.size // 2 + SAMPLE_RATE // 4]
        assert dominant_frequency(middle, echoed[0].sample_rate) == pytest.approx(TONE_HZ, abs=10)
    finally:
        await pc.close()
        for task in collectors:
            task.cancel()

    # The caller hung up: the server closes its peer connection and forgets the call.
    await asyncio.wait_for(call.wait_closed(), 5)
    assert conversation_id not in server.calls and call.connection_state == "closed"


async def offer_audio_call(http: httpx.AsyncClient, token: str, pc: RTCPeerConnection) -> str:
    """Post an audio + data channel offer from ``pc``, apply the answer, return the conversation id."""
    pc.addTrack(ToneTrack())
    pc.createDataChannel(DATA_CHANNEL_LABEL)
    await pc.setLocalDescription(await pc.createOffer())
    response = await post_call(http, token, json={"offer": {"sdp": pc.localDescription.sdp, "type": "offer"}})
    assert response.status_code == 200, response.text
    await pc.setRemoteDescription(RTCSessionDescription(**response.json()["answer"]))
    return response.json()["conversation_id"]


async def test_stopping_the_server_closes_live_calls_and_the_caller_sees_the_hang_up() -> None:
    async with LocalOrgaServer(echo_delay=0.0) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            pc = make_client_pc()
            hung_up = asyncio.Event()
            pc.on("connectionstatechange", lambda: hung_up.set() if pc.connectionState in ("closed", "failed") else None)
            try:
                call = server.calls[await offer_audio_call(http, await token_for(http, server), pc)]
                for _ in range(100):
                    if call.connection_state == "connected" and call.audio_frames_received:
                        break
                    await asyncio.sleep(0.05)
                assert call.connection_state == "connected" and call.audio_frames_received > 0
                await server.stop()
                assert call.closed and call.connection_state == "closed" and not server.calls
                await asyncio.wait_for(hung_up.wait(), 5)
            finally:
                await pc.close()


async def test_a_call_that_never_connects_is_closed_after_connect_timeout() -> None:
    async with LocalOrgaServer(connect_timeout=0.5) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as http:
            pc = make_client_pc()
            try:
                pc.addTransceiver("audio", direction="sendrecv")
                await pc.setLocalDescription(await pc.createOffer())
                # The answer is never applied, so ICE never starts on the caller's side.
                response = await post_call(
                    http, await token_for(http, server), json={"offer": {"sdp": pc.localDescription.sdp, "type": "offer"}}
                )
                call = server.calls[response.json()["conversation_id"]]
                await asyncio.wait_for(call.wait_closed(), 5)
                assert not server.calls and (await http.get("/healthz")).json() == {"status": "ok", "calls": 0}
            finally:
                await pc.close()
