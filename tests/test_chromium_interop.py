"""Interop with libwebrtc: Debian's headless Chromium answers peerbot's offer.

peerbot offers audio and video (sendrecv) preferring one codec for each; Chromium answers from
tests/web/answerer.js with its fake microphone (a 400 Hz beep twice a second) and fake camera.
Each run proves from both sides which codecs were negotiated and that media crossed each way:
peerbot's iterators yield Chromium's beeps and camera pictures, while Chromium's getStats,
WebAudio and a canvas see peerbot's 440 Hz tone and test-pattern frame counter, with no loss.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from peerbot.engine.peer import Peer
from peerbot.media import TestPattern, Tone
from peerbot.media.streams import ConvertedStream, audio_converter, video_converter

from browser import chromium_page
from media_checks import dominant_frequency, drain, rms

WINDOW = 2.0  # seconds of media collected once connected
RATE = 16000  # peerbot's received audio is read at this rate, mono
TONE = 440.0  # what peerbot sends
PATTERN_FPS = 15
CHROMIUM_BEEP = 400.0  # Chromium's fake microphone (media/audio/fake_audio_input_stream.cc)
CODEC_CLOCK = {"opus": 48000, "PCMU": 8000}  # the rate peerbot's decoder yields per codec

RUNS = [
    pytest.param("opus", "VP8", id="opus+VP8"),
    pytest.param("PCMU", "H264", id="PCMU+H264"),
]


def negotiated_codecs(sdp: str) -> dict[str, str | None]:
    """The codec each media section will carry: the first payload type's rtpmap name, or None
    for a rejected (port 0) section."""
    sections: dict[str, str | None] = {}
    kind, first_pt = None, None
    rtpmaps: dict[str, dict[str, str]] = {}
    for line in sdp.splitlines():
        if line.startswith("m="):
            fields = line[2:].split()
            kind = fields[0]
            first_pt = fields[3] if fields[1] != "0" and len(fields) > 3 else None
            sections[kind] = None
            rtpmaps[kind] = {}
        elif line.startswith("a=rtpmap:") and kind:
            pt, encoding = line[len("a=rtpmap:"):].split(" ", 1)
            rtpmaps[kind][pt] = encoding.split("/")[0]
            if pt == first_pt:
                sections[kind] = rtpmaps[kind][pt]
    return sections


async def require_codecs(page: Any, wanted: dict[str, str]) -> None:
    """Fail with Chromium's own codec lists if it cannot both send and receive a wanted codec."""
    capabilities = await page.evaluate("capabilities()")
    for kind, codec in wanted.items():
        for direction in ("send", "receive"):
            offered = capabilities[direction][kind]
            if not any(c.split(" ")[0].lower() == f"{kind}/{codec}".lower() for c in offered):
                pytest.fail(
                    f"this Chromium ({page.context.browser.version}) cannot {direction} {codec}: "
                    f"RTCRtp{'Sender' if direction == 'send' else 'Receiver'}.getCapabilities('{kind}') "
                    f"lists only {offered}"
                )


async def read_counters_in_chromium(page: Any) -> list[dict[str, Any]]:
    """peerbot's frame counter read from Chromium's decoded picture, twice, one second apart."""
    await asyncio.sleep(WINDOW / 4)
    first = await page.evaluate("videoCounter()")
    await asyncio.sleep(1.0)
    return [first, await page.evaluate("videoCounter()")]


def beeps(frames: list) -> tuple[int, np.ndarray]:
    """How many beeps start in the received audio, and their samples."""
    loud = [rms(f.data[0]) > 1000 for f in frames]
    onsets = sum(1 for before, now in zip([False] + loud, loud) if now and not before)
    samples = [f.data[0] for f, is_loud in zip(frames, loud) if is_loud]
    return onsets, np.concatenate(samples) if samples else np.zeros(0, dtype=np.int16)


@pytest.mark.parametrize("audio_codec, video_codec", RUNS)
async def test_chromium_answers_and_the_preferred_codecs_carry_audio_and_video_both_ways_without_loss(
    audio_codec: str, video_codec: str
):
    console: list[str] = []
    async with chromium_page("answerer.html", console=console) as page:
        await require_codecs(page, {"audio": audio_codec, "video": video_codec})
        peer = Peer([], codecs=[audio_codec, video_codec])
        try:
            native_audio = peer.audio.hub.subscribe(1)
            audio = ConvertedStream(peer.audio.hub.subscribe(500), audio_converter(RATE, 1))
            video = ConvertedStream(peer.video.hub.subscribe(500), video_converter("rgb24"))
            pattern = TestPattern(fps=PATTERN_FPS)
            peer.add_transceiver("audio", Tone(TONE), "sendrecv")
            peer.add_transceiver("video", pattern, "sendrecv")

            answer = await asyncio.wait_for(page.evaluate("answer", await peer.create_offer()), 15)
            await peer.accept_answer(answer)
            await peer.wait_connected()

            heard, seen, counters = await asyncio.gather(
                drain(audio, WINDOW), drain(video, WINDOW), read_counters_in_chromium(page)
            )
            chromium = await page.evaluate("stats()")
            tone = await page.evaluate("dominantFrequency()")
            peerbot_pair = peer.candidate_pair()
            decoded_rate = (await asyncio.wait_for(native_audio.__anext__(), 1)).sample_rate
            peerbot_stats = peer.stats()
        finally:
            await peer.close()

    inbound, outbound, chromium_pair = chromium["inbound"], chromium["outbound"], chromium["pair"]
    in_audio, in_video = inbound.get("audio", {}), inbound.get("video", {})
    out_audio, out_video = outbound.get("audio", {}), outbound.get("video", {})
    mime = lambda stat: (stat.get("codec") or {}).get("mimeType")  # noqa: E731
    heard_seconds = sum(f.samples for f in heard) / RATE
    onsets, beep_samples = beeps(heard)
    sizes = sorted({(f.width, f.height) for f in seen})
    chromium_side = lambda side: f"{side['type']} {side['address']}" if side else "?"  # noqa: E731
    # aioice nominates aggressively and keeps the first pair that succeeds, while Chromium sends
    # on the best nominated one: now and then each side sends on a different pair (both work).
    same_path = bool(peerbot_pair and chromium_pair) and peerbot_pair.local_address == chromium_pair["remote"]["address"]
    asymmetric = "" if same_path else "  (ASYMMETRIC: each side sends on a different pair)"
    print(
        f"\n[{audio_codec}+{video_codec}] answer SDP: {negotiated_codecs(answer)}"
        f"\n  peerbot -> Chromium: audio {mime(in_audio)} {in_audio.get('packetsReceived')} packets"
        f" ({in_audio.get('packetsLost')} lost), tone heard at {tone['frequency'] or 0:.1f} Hz;"
        f" video {mime(in_video)} {in_video.get('framesDecoded')} frames decoded"
        f" {in_video.get('frameWidth')}x{in_video.get('frameHeight')}"
        f" ({in_video.get('packetsReceived')} packets, {in_video.get('packetsLost')} lost),"
        f" counters read {[c['counter'] for c in counters]}"
        f"\n  Chromium -> peerbot: audio {mime(out_audio)} {out_audio.get('packetsSent')} packets sent,"
        f" {len(heard)} frames = {heard_seconds:.2f} s decoded at {decoded_rate} Hz, {onsets} beeps;"
        f" video {mime(out_video)} ({out_video.get('encoderImplementation')}) {len(seen)} frames {sizes}"
        f"\n  pair seen by peerbot: {peerbot_pair}"
        f"\n  pair seen by Chromium: {chromium_side(chromium_pair and chromium_pair['local'])}"
        f" -> {chromium_side(chromium_pair and chromium_pair['remote'])}{asymmetric}"
        f"\n  peerbot stats: {peerbot_stats.line()}"
    )

    # Negotiation, from both sides: the SDP answer and the codecs Chromium really used.
    in_answer = {kind: (codec or "rejected").lower() for kind, codec in negotiated_codecs(answer).items()}
    assert in_answer == {"audio": audio_codec.lower(), "video": video_codec.lower()}, answer
    for stat, expected in ((in_audio, f"audio/{audio_codec}"), (out_audio, f"audio/{audio_codec}"),
                           (in_video, f"video/{video_codec}"), (out_video, f"video/{video_codec}")):
        assert (mime(stat) or "").lower() == expected.lower(), chromium
    assert decoded_rate == CODEC_CLOCK[audio_codec]

    # Chromium -> peerbot: its fake microphone's beeps and camera pictures, through the iterators.
    assert heard_seconds >= 0.75 * WINDOW, f"only {heard_seconds:.2f} s of audio in {WINDOW} s"
    assert onsets >= 2, f"Chromium's fake microphone beeps twice a second; heard {onsets} beeps"
    assert abs(dominant_frequency(beep_samples, RATE) - CHROMIUM_BEEP) < 15
    assert len(seen) >= 15, f"only {len(seen)} video frames from Chromium in {WINDOW} s"
    assert all(w * 3 == h * 4 and w >= 160 for w, h in sizes), sizes  # the fake camera is 4:3
    assert (out_video["frameWidth"], out_video["frameHeight"]) in sizes
    assert float(seen[-1].data.std()) > 10, "Chromium's camera picture arrived blank"

    # peerbot -> Chromium: tone and test pattern decoded there, nothing lost on the way.
    assert [t["kind"] for t in chromium["received"]["tracks"]] == ["audio", "video"]
    assert in_audio["packetsLost"] == 0 and in_audio["packetsReceived"] >= 50 * WINDOW * 0.75, in_audio
    assert in_video["packetsLost"] == 0 and in_video["packetsReceived"] >= 20, in_video
    assert in_video["framesDecoded"] >= PATTERN_FPS * WINDOW * 0.75, in_video
    assert (in_video["frameWidth"], in_video["frameHeight"]) == (pattern.width, pattern.height)
    assert tone["state"] == "running" and abs(tone["frequency"] - TONE) < 6, tone
    first, last = (c["counter"] for c in counters)
    assert first is not None and first < last <= pattern.count, counters

    # The path: host candidates on both sides (no STUN/TURN configured on either).
    assert peerbot_pair is not None and peerbot_pair.local_type == "host"
    assert chromium_pair and chromium_pair["local"]["type"] == "host", chromium_pair
    assert not [m for m in console if "error" in m.lower()], console
