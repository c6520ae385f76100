"""Sources keep real time after a gap in reads (no sender pulls frames while a call reconnects):
the frames missed meanwhile are skipped, not sent as one burst, and timestamps jump over the gap
(as a capture device's would), so the gap does not add to every later frame's delay."""

from __future__ import annotations

import asyncio
import time
import wave

import numpy as np
import pytest

from peerbot.media import AudioSource, File, Silence, TestPattern, Tone

GAP = 0.5


async def read_after_a_gap(track, before: int, after: int) -> tuple[float, list[int]]:
    """Read ``before`` frames, pause ``GAP`` s, then time ``after`` frames; their duration and every pts."""
    pts = [(await track.recv()).pts for _ in range(before)]
    await asyncio.sleep(GAP)
    started = time.monotonic()
    pts += [(await track.recv()).pts for _ in range(after)]
    took = time.monotonic() - started
    track.stop()
    return took, pts


@pytest.mark.parametrize("make", [lambda: Tone(440), lambda: Silence(), lambda: AudioSource()],
                         ids=["tone", "silence", "app-pushed"])
async def test_audio_sources_stay_paced_after_a_half_second_without_reads(make):
    took, pts = await read_after_a_gap(make(), before=5, after=11)
    print(f"\n10 frames after a {GAP} s gap took {took * 1000:.0f} ms (200 ms at 20 ms a frame)")
    # A catch-up would send the 25 missed frames at once: 10 frames would take ~0 ms.
    assert took > 0.8 * 10 * 0.020
    steps = np.diff(pts)
    jumps = steps[steps != 960]  # 20 ms at 48 kHz, except once: the gap
    assert len(jumps) == 1 and abs(jumps[0] / 48000 - GAP) < 0.1, steps


async def test_test_pattern_stays_paced_after_a_half_second_without_reads():
    took, pts = await read_after_a_gap(TestPattern(fps=15), before=3, after=6)
    print(f"\n5 frames after a {GAP} s gap took {took * 1000:.0f} ms (333 ms at 15 fps)")
    assert took > 0.8 * 5 / 15
    steps = np.diff(pts)
    jumps = steps[steps != 6000]  # 90 kHz / 15 fps, except once: the gap's pictures were skipped
    assert len(jumps) == 1 and abs(jumps[0] / 90000 - GAP) < 0.1, steps


async def test_silence_after_a_file_ends_stays_paced_after_a_half_second_without_reads(tmp_path):
    path = tmp_path / "blip.wav"
    with wave.open(str(path), "wb") as out:  # 0.1 s of a tone, then the source goes on as silence
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes((np.sin(np.arange(4800) / 10) * 8000).astype(np.int16).tobytes())
    source = File(path)
    track = source.audio
    assert track is not None
    try:
        for _ in range(20):  # past the file's five frames: the silence has started
            await track.recv()
        took, _ = await read_after_a_gap(track, before=5, after=11)
    finally:
        source.stop()
    print(f"\n10 frames of silence after a {GAP} s gap took {took * 1000:.0f} ms")
    assert took > 0.8 * 10 * 0.020
