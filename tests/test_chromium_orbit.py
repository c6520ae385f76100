"""Debian's Chromium (libwebrtc) as an Orbit user, calling and called by a peerbot participant.

``tests/web/orbit_user.js`` speaks the project's Orbit signalling from a ``http://localhost:…``
page to the local Orbit server on ``http://127.0.0.1:…`` (cross-origin, as a browser app is): the
event WebSocket, and the REST routes with its user token and publishable key to accept or place
the call, submit the offer or answer and trickle candidates. Its fake microphone beeps at 400 Hz
and its fake camera sends 640x480; peerbot sends a tone and a 320x240 test pattern. Each test
proves media crossed both ways (peerbot's iterators, the page's WebAudio and getStats) and that
a hang-up on one side ends the call on the other.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np

from browser import chromium_page
from media_checks import dominant_frequency, drain, rms
from orbit_bed import Participant, orbit_bed
from peerbot import orbit
from peerbot.media import TestPattern, Tone
from peerbot.orbit import routes

WINDOW = 2.0  # seconds of media collected by peerbot once connected
RATE = 16000  # peerbot reads the page's audio at this rate, mono
CHROMIUM_BEEP = 400.0  # Chromium's fake microphone (media/audio/fake_audio_input_stream.cc)
PAGE_ORIGIN = "http://localhost:8000"


async def open_page(page: Any, user: Participant) -> None:
    await page.evaluate("o => start(o)", {"baseUrl": user.base_url, "token": user.token, "clientId": user.client_id})


async def what_peerbot_received(call: orbit.OrbitCall) -> tuple[list, list]:
    return await asyncio.gather(drain(call.audio_frames(sample_rate=RATE, channels=1), WINDOW),
                                drain(call.video_frames(), WINDOW))


def beeps(frames: list) -> tuple[int, np.ndarray]:
    """How many beeps start in the received audio, and their samples."""
    loud = [rms(f.data[0]) > 1000 for f in frames]
    onsets = sum(1 for before, now in zip([False] + loud, loud) if now and not before)
    samples = [f.data[0] for f, is_loud in zip(frames, loud) if is_loud]
    return onsets, np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)


async def page_state_when(page: Any, condition: str, timeout: float = 10.0) -> dict[str, Any]:
    await page.wait_for_function(condition, timeout=timeout * 1000)
    return await page.evaluate("callState()")


def report(title: str, call: orbit.OrbitCall, heard: list, seen: list, page_stats: dict, tone: dict,
           state: dict, peerbot_pair: Any) -> None:
    inbound, outbound, pair = page_stats["inbound"], page_stats["outbound"], page_stats["pair"]
    onsets, samples = beeps(heard)
    beep_hz = dominant_frequency(samples, RATE) if len(samples) else 0.0
    print(f"\n[{title}] call {call.call_id} ({call.type}), peerbot is the {call.role}")
    print(f"  codecs (page's getStats): audio out {outbound['audio']['codec']}, in {inbound['audio']['codec']};"
          f" video out {outbound['video']['codec']}, in {inbound['video']['codec']}")
    print(f"  page -> peerbot: audio {outbound['audio']['packetsSent']} packets sent, {len(heard)} frames"
          f" ({sum(f.samples for f in heard) / RATE:.2f} s) read by peerbot, {onsets} beeps at {beep_hz:.0f} Hz;"
          f" video {outbound['video']['framesSent']} frames sent"
          f" ({outbound['video']['frameWidth']}x{outbound['video']['frameHeight']}), {len(seen)} read by peerbot"
          f" ({f'{seen[-1].width}x{seen[-1].height}' if seen else '-'})")
    print(f"  peerbot -> page: audio {inbound['audio']['packetsReceived']} packets"
          f" ({inbound['audio']['packetsLost']} lost), tone heard at {tone['frequency']:.1f} Hz;"
          f" video {inbound['video']['framesDecoded']} frames decoded"
          f" {inbound['video']['frameWidth']}x{inbound['video']['frameHeight']}"
          f" ({inbound['video']['packetsLost']} lost)")
    print(f"  candidates trickled: page sent {len(state['candidatesSent'])}, received"
          f" {len(state['candidatesReceived'])} ({len(state['candidateErrors'])} refused)")
    print(f"  pair seen by peerbot: {peerbot_pair}")
    print(f"  pair seen by the page: {pair['local']['type']} {pair['local']['address']} ->"
          f" {pair['remote']['type']} {pair['remote']['address']}")


def assert_media_both_ways(heard: list, seen: list, page_stats: dict, tone: dict, peerbot_tone: float,
                           pattern: TestPattern, peerbot_pair: Any) -> None:
    # Page -> peerbot: the fake microphone's beeps (non-silent, at its pitch) and camera pictures.
    onsets, samples = beeps(heard)
    assert sum(f.samples for f in heard) / RATE >= 0.75 * WINDOW
    assert onsets >= 2 and abs(dominant_frequency(samples, RATE) - CHROMIUM_BEEP) < 15
    assert len(seen) >= 15 and float(seen[-1].data.std()) > 10
    assert (seen[-1].width, seen[-1].height) != (pattern.width, pattern.height)  # the camera's, not an echo
    # Peerbot -> page: the tone by WebAudio, the test pattern decoded, nothing lost.
    inbound = page_stats["inbound"]
    assert tone["state"] == "running" and abs(tone["frequency"] - peerbot_tone) < 6, tone
    assert inbound["audio"]["packetsLost"] == 0 and inbound["audio"]["packetsReceived"] >= 50
    assert inbound["video"]["packetsLost"] == 0 and inbound["video"]["framesDecoded"] > 15
    assert (inbound["video"]["frameWidth"], inbound["video"]["frameHeight"]) == (pattern.width, pattern.height)
    # The path: host candidates (the server hands out no STUN/TURN), from both sides.
    assert peerbot_pair is not None and peerbot_pair.local_type == "host"
    assert page_stats["pair"] and page_stats["pair"]["local"]["type"] == "host", page_stats["pair"]


async def test_orbit_server_answers_browser_preflights_with_the_orbit_headers_and_allows_any_origin():
    async with orbit_bed() as bed, httpx.AsyncClient(base_url=bed.server.base_url) as http:
        preflight = await http.options(routes.CALLS_SUBMIT_OFFER.url(call_id="c1"), headers={
            "Origin": PAGE_ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-client-id",
        })
        refused = await http.post(routes.CALLS_INITIATE.url(), headers={"Origin": PAGE_ORIGIN})
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    print(f"\nOPTIONS offer -> {preflight.status_code} {dict(preflight.headers)}; POST /calls without a token ->"
          f" {refused.status_code}, Access-Control-Allow-Origin {refused.headers.get('access-control-allow-origin')}")
    assert preflight.status_code == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert {"authorization", "content-type", "x-client-id", "x-app-user-id"} <= allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert (refused.status_code, refused.headers["Access-Control-Allow-Origin"]) == (401, "*")


async def test_peerbot_calls_the_chromium_user_who_answers_media_flows_both_ways_and_peerbot_hangup_ends_it():
    async with orbit_bed() as bed:
        bot, user = await bed.participant("peerbot"), await bed.participant("browser")
        console: list[str] = []
        async with chromium_page("orbit_user.html", console=console) as page:
            await open_page(page, user)
            answering = asyncio.create_task(page.evaluate("answerNextCall()"))
            pattern = TestPattern()
            try:
                async with orbit.call(user.user_id, Tone(440), pattern, type="video", **bot.kwargs) as call:
                    answered = await asyncio.wait_for(answering, 10)
                    await page.evaluate("waitConnected()")
                    heard, seen = await what_peerbot_received(call)
                    page_stats, tone = await page.evaluate("stats()"), await page.evaluate("dominantFrequency()")
                    during = await page.evaluate("callState()")
                    peerbot_pair = call.peer.candidate_pair()
            finally:
                answering.cancel()
            # peerbot hung up on leaving the block: the page gets call:ended.
            after = await page_state_when(page, "callState().ended !== null")
            report("peerbot calls the page", call, heard, seen, page_stats, tone, during, peerbot_pair)
            print(f"  page saw: {[e['type'] for e in after['events']]}; ended {after['ended']};"
                  f" connection {after['connectionState']}")

    assert answered == {"callId": call.call_id, "type": "video", "callerId": bot.user_id}
    assert during["tracks"] == ["audio", "video"] and not during["errors"]
    assert not [m for m in console if "error" in m.lower()], console
    assert during["candidatesSent"] and during["candidatesReceived"]  # trickled both ways
    assert_media_both_ways(heard, seen, page_stats, tone, 440.0, pattern, peerbot_pair)
    assert after["ended"]["reason"] == routes.END_HANGUP and after["ended"]["endedBy"] == bot.user_id
    assert after["connectionState"] == "closed"
    assert bed.server.calls[call.call_id].status == "ended"


async def test_chromium_user_calls_peerbot_which_answers_media_flows_both_ways_and_page_hangup_ends_it():
    async with orbit_bed() as bed:
        bot, user = await bed.participant("peerbot"), await bed.participant("browser")
        console: list[str] = []
        pattern = TestPattern()
        async with chromium_page("orbit_user.html", console=console) as page:
            await open_page(page, user)
            answering = asyncio.create_task(_enter(orbit.answer(Tone(660), pattern, **bot.kwargs)))
            callee = None
            try:
                placed = await page.evaluate("a => callUser(a.callee, 'video')", {"callee": bot.user_id})
                callee = await asyncio.wait_for(answering, 15)
                await page.evaluate("waitConnected()")
                heard, seen = await what_peerbot_received(callee)
                page_stats, tone = await page.evaluate("stats()"), await page.evaluate("dominantFrequency()")
                during = await page.evaluate("callState()")
                peerbot_pair = callee.peer.candidate_pair()
                await page.evaluate("hangUp()")
                reason = await asyncio.wait_for(callee.closed(), 10)
            finally:
                if callee is None:
                    answering.cancel()
                else:
                    await callee.close()
            report("the page calls peerbot", callee, heard, seen, page_stats, tone, during, peerbot_pair)
            print(f"  peerbot's call ended: {reason!r} (ended_by_remote={callee.ended_by_remote!r})")

    assert placed == {"callId": callee.call_id, "type": "video"} and callee.type == "video"
    assert during["tracks"] == ["audio", "video"] and not during["errors"]
    assert not [m for m in console if "error" in m.lower()], console
    assert during["candidatesSent"] and during["candidatesReceived"]
    assert_media_both_ways(heard, seen, page_stats, tone, 660.0, pattern, peerbot_pair)
    assert "hung up" in reason and callee.ended_by_remote == routes.END_HANGUP
    assert bed.server.calls[callee.call_id].status == "ended"


async def _enter(call):
    return await call.__aenter__()
