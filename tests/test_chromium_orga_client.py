"""Debian's Chromium (libwebrtc) as an Orga browser client of the embedded server.

``tests/web/orga_client.js`` runs the flow of Orga's browser SDK (@orga-ai/react's useOrgaAI with
@orga-ai/core's connectToRealtime) from a ``http://localhost:…`` page against the server on
``http://127.0.0.1:…``: a cross-origin client, as a browser app talking to the real API is. The
test plays the app's backend: it fetches the ephemeral token with ``OrgaClient`` and hands it to
the page. Chromium's fake microphone beeps; the echo assistant plays it back; the page measures
both its own microphone and what comes back with WebAudio.
"""

from __future__ import annotations

import asyncio
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from browser import chromium_page
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orga.client import OrgaClient
from peerbot.orga.events import CONVERSATION_CREATED, SESSION_CREATED, SESSION_UPDATED
from peerbot.orga.routes import ROUTES

USER_EMAIL = "browser-user@peerbot.example"
PARAMS = {
    "voice": "coral", "temperature": 0.3, "instructions": "Repeat what you hear.", "modalities": ["audio", "video"],
}
PAGE_ORIGIN = "http://localhost:8000"
TONE_FRACTION = 0.5  # a beep starts where the level first reaches half the loudest reading


async def ephemeral_token(server: LocalOrgaServer) -> str:
    """What the app's backend does: trade the API key for a token, server side."""
    async with OrgaClient(server.api_key, USER_EMAIL, server.base_url) as client:
        return await client.fetch_ephemeral_token()


async def eventually(check: Callable[[], Any], what: str, timeout: float = 20.0) -> None:
    """Wait until the awaitable ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.2)


def beep_onsets(meter: dict[str, Any], after_ms: float = 0) -> list[float]:
    """Times (ms) at which the level rises through half of its peak: one per beep."""
    threshold = TONE_FRACTION * meter["peakRms"]
    onsets, previous = [], 0.0
    for t, rms in meter["envelope"]:
        if rms >= threshold > previous and t >= after_ms:
            onsets.append(t)
        previous = rms
    return onsets


def dbfs(rms: float) -> float:
    return 20 * math.log10(max(rms, 1e-5))


async def test_embedded_server_answers_cors_preflight_for_each_route_and_allows_any_origin_on_errors():
    async with LocalOrgaServer() as server, httpx.AsyncClient(base_url=server.base_url) as http:
        for route in ROUTES:
            preflight = await http.options(route.path, headers={
                "Origin": PAGE_ORIGIN,
                "Access-Control-Request-Method": route.method,
                "Access-Control-Request-Headers": "authorization,content-type",
            })
            print(f"\nOPTIONS {route.path} -> {preflight.status_code} "
                  f"{ {k: v for k, v in preflight.headers.items() if k.startswith('access-control')} }", end="")
            assert preflight.status_code == 204
            assert preflight.headers["Access-Control-Allow-Origin"] == "*"
            assert route.method in preflight.headers["Access-Control-Allow-Methods"].split(", ")
            allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type"} <= allowed
        refused = await http.get(
            "/v1/realtime/ice-config", headers={"Origin": PAGE_ORIGIN, "Authorization": "Bearer not.a.token"}
        )
        issued = await http.post(
            "/v1/realtime/client-secrets", params={"email": USER_EMAIL},
            headers={"Origin": PAGE_ORIGIN, "Authorization": f"Bearer {server.api_key}"},
        )
        for name, response in (("GET ice-config, bad token", refused), ("POST client-secrets", issued)):
            acao = response.headers.get("access-control-allow-origin")
            print(f"\n{name} -> {response.status_code}, Access-Control-Allow-Origin: {acao}", end="")
        assert (refused.status_code, refused.headers["Access-Control-Allow-Origin"]) == (401, "*")
        assert (issued.status_code, issued.headers["Access-Control-Allow-Origin"]) == (200, "*")


async def test_chromium_page_reads_the_servers_401_json_across_origins():
    # Without Access-Control-Allow-Origin on the error too, fetch would only say "Failed to fetch".
    async with LocalOrgaServer() as server, chromium_page("orga_client.html") as page:
        error = await page.evaluate(
            "o => startSession(o).then(() => null, e => String(e))",
            {"baseUrl": server.base_url, "ephemeralToken": "not.a.token"},
        )
    print(f"\npage with a bad token -> {error}")
    assert error is not None and "ice-config failed: 401" in error and '"code": "invalid_token"' in error


async def test_chromium_session_gets_session_created_then_conversation_created_for_its_conversation():
    async with LocalOrgaServer(echo_delay=0.1) as server:
        token = await ephemeral_token(server)
        async with chromium_page("orga_client.html") as page:
            started = time.monotonic()
            session = await page.evaluate(
                "o => startSession(o)", {"baseUrl": server.base_url, "ephemeralToken": token, "params": PARAMS}
            )
            answered = time.monotonic() - started

            async def greeted() -> bool:
                return await page.evaluate("session.messages.length >= 2")

            await eventually(greeted, "session.created and conversation.created")
            await page.evaluate("d => sendSessionUpdate(d)", {"voice": "sage", "modalities": ["audio", "video"]})

            async def updated() -> bool:
                return await page.evaluate(f"session.messages.some(m => m.type === {SESSION_UPDATED!r})")

            await eventually(updated, "session.updated")
            snap = await page.evaluate("snapshot()")
            await page.evaluate("endSession()")

    messages = snap["messages"]
    print(f"\nstartSession (ice-config, getUserMedia, offer, gathering, POST calls, answer) took "
          f"{answered * 1000:.0f} ms; {len(session['candidates'])} candidates sent; states {snap['states']}")
    for message in messages:
        print(f"  +{message['t']} ms  {message['type']}: {message['data']}")
    assert [m["type"] for m in messages[:2]] == [SESSION_CREATED, CONVERSATION_CREATED]
    assert messages[1]["data"]["conversation"]["id"] == session["conversationId"]
    created = messages[0]["data"]["session"]
    # The params of the calls request reached the session.
    assert {k: created[k] for k in PARAMS} == PARAMS
    assert messages[2]["type"] == SESSION_UPDATED and messages[2]["data"]["session"]["voice"] == "sage"


async def test_chromium_hears_its_fake_microphone_beep_echoed_and_the_server_counts_its_camera_frames():
    async with LocalOrgaServer(echo_delay=0.1) as server:
        token = await ephemeral_token(server)
        async with chromium_page("orga_client.html") as page:
            started = time.monotonic()
            session = await page.evaluate("o => startSession(o)", {"baseUrl": server.base_url, "ephemeralToken": token})
            answered = time.monotonic() - started
            call = server.calls[session["conversationId"]]

            async def enough_media() -> bool:
                loud_echo = await page.evaluate(
                    "(session.remoteMeter?.samples ?? []).filter(s => s[1] >= 0.05).length"
                )
                return loud_echo >= 15 and call.video_frames_received > 40 and call.audio_frames_received > 100

            await eventually(enough_media, "four beeps echoed and two seconds of camera video")
            snap = await page.evaluate("snapshot()")
            counters = {name: getattr(call, name) for name in (
                "audio_frames_received", "video_frames_received", "audio_frames_sent", "echoed_frames")}
            await page.evaluate("endSession()")
        elapsed = time.monotonic() - started

    local, remote, stats = snap["localAudio"], snap["remoteAudio"], snap["stats"]
    connected_at = next(s["t"] for s in snap["states"] if s["state"] == "connected")
    local_onsets, remote_onsets = beep_onsets(local, connected_at), beep_onsets(remote)
    remote_floor = statistics.quantiles([rms for _, rms in remote["envelope"]], n=10)[0]
    lags = [r - max(l for l in local_onsets if l < r) for r in remote_onsets if any(l < r for l in local_onsets)]
    out, inbound, pair = stats["outbound"], stats["inbound"]["audio"], stats["candidatePair"]

    print(f"\nstartSession {answered * 1000:.0f} ms, connected at +{connected_at} ms, measured for {elapsed:.1f} s")
    video = out["video"]
    print(f"codecs: audio out {out['audio']['codec']}, audio in {inbound['codec']}, video out {video['codec']} "
          f"({video.get('encoderImplementation')}, {video.get('frameWidth')}x{video.get('frameHeight')})")
    print(f"candidate pair: {pair['local']['type']} {pair['local']['protocol']} {pair['local']['address']} <-> "
          f"{pair['remote']['type']} {pair['remote']['address']} "
          f"(RTT {pair['currentRoundTripTime']} s, DTLS {stats['dtlsState']})")
    print(f"audio Chromium -> server: {out['audio']['packetsSent']} packets sent, {counters['audio_frames_received']} "
          f"frames decoded by the server")
    print(f"audio server -> Chromium: {counters['audio_frames_sent']} frames sent "
          f"({counters['echoed_frames']} with echo), "
          f"{inbound['packetsReceived']} packets received, {inbound['packetsLost']} lost, "
          f"{inbound['concealedSamples']} of {inbound['totalSamplesReceived']} samples concealed, "
          f"totalAudioEnergy {inbound['totalAudioEnergy']:.3f} over {inbound['totalSamplesDuration']:.1f} s")
    print(f"video Chromium -> server: {out['video']['framesSent']} frames sent, "
          f"{counters['video_frames_received']} decoded by the server")
    for name, meter, onsets in (("fake microphone", local, local_onsets), ("echo received", remote, remote_onsets)):
        period = statistics.median(b - a for a, b in zip(onsets, onsets[1:])) if len(onsets) > 1 else None
        print(f"{name}: peak {dbfs(meter['peakRms']):.1f} dBFS, mean {dbfs(meter['meanRms']):.1f} dBFS, "
              f"tone {meter['medianHz']:.1f} Hz (bin {meter['binHz']:.1f} Hz at {meter['sampleRate']} Hz), "
              f"{len(onsets)} beeps, every {period} ms")
    lag = f"{statistics.median(lags):.0f} ms" if lags else "n/a"
    print(f"echo floor between beeps {dbfs(remote_floor):.1f} dBFS (-100 = digital silence); beep -> echo lag {lag} "
          f"(server echo_delay 100 ms; modulo the beep period)")

    # The server got the page's camera and microphone.
    assert counters["video_frames_received"] > 40 and counters["audio_frames_received"] > 100
    assert counters["echoed_frames"] > 0
    # What came back is the beep: loud, well above the silence between beeps, at the echo's unit gain...
    assert remote["peakRms"] >= 0.05
    assert dbfs(remote["peakRms"]) - dbfs(remote_floor) > 30
    assert remote["peakRms"] > 0.25 * local["peakRms"]
    # ...at the fake microphone's pitch, and on its rhythm.
    assert local["medianHz"] is not None and remote["medianHz"] is not None
    assert abs(remote["medianHz"] - local["medianHz"]) <= local["binHz"]
    assert len(remote_onsets) >= 3
    local_period = statistics.median(b - a for a, b in zip(local_onsets, local_onsets[1:]))
    remote_period = statistics.median(b - a for a, b in zip(remote_onsets, remote_onsets[1:]))
    assert abs(remote_period - local_period) < 0.1 * local_period
    assert pair["local"]["type"] == "host" and pair["remote"]["type"] == "host"
