"""What the calling commands share: media options, hang-up on signals, the live status line,
counting what was received, playback, and holding a session until it should end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

Ending = Literal["interrupted", "closed", "duration"]


def add_media_options(p: argparse.ArgumentParser) -> None:
    """--source, --mic-device, --video, --play, --speaker-device, --record, --duration."""
    p.add_argument("--source", default="tone", metavar="mic|tone[:HZ]|silence|none|FILE[:loop]",
                   help="audio to send (default: a 440 Hz tone)")
    p.add_argument("--mic-device", help="microphone name or index (see 'peerbot devices')")
    p.add_argument("--video", default="none", metavar="pattern|none|FILE[:loop]", help="video to send")
    p.add_argument("--play", action="store_true", help="play received audio on the speaker")
    p.add_argument("--speaker-device", help="speaker name or index")
    p.add_argument("--record", metavar="PATH", help="record received media (.wav, .ogg, .mp4, .webm, .mkv)")
    p.add_argument("--duration", type=float, default=None, help="hang up after this many seconds")


def hang_up_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: Ctrl-C asks for a clean hang-up instead of a traceback."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@dataclass
class Received:
    """What came back, for the live line and the closing summary."""

    audio_frames: int = 0
    audio_seconds: float = 0.0
    video_frames: int = 0
    events: Counter[str] = field(default_factory=Counter)
    peak: int = 0
    recent: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))  # the last second, first channel
    sample_rate: int = 48000

    def add_audio(self, data: np.ndarray, sample_rate: int, duration: float) -> None:
        self.audio_frames += 1
        self.audio_seconds += duration
        if data.size:
            self.peak = max(self.peak, int(np.abs(data.astype(np.int32)).max()))
            self.sample_rate = sample_rate
            self.recent = np.concatenate([self.recent, data[0]])[-sample_rate:]

    def heard(self) -> str:
        """The loudest level and the strongest frequency of the last second: what a listener would notice."""
        if self.peak < 33:  # below -60 dBFS
            return "silence"
        x = self.recent.astype(np.float64)
        x -= x.mean()
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        strongest = np.argmax(spectrum) * self.sample_rate / len(x)
        return f"peak {20 * np.log10(self.peak / 32768):.1f} dBFS, strongest at {strongest:.0f} Hz"


async def count_audio(session, got: Received) -> None:
    with contextlib.suppress(Exception):
        async for frame in session.audio_frames():
            got.add_audio(frame.data, frame.sample_rate, frame.duration)


async def count_video(session, got: Received) -> None:
    with contextlib.suppress(Exception):
        async for _ in session.video_frames():
            got.video_frames += 1


async def play(session, device: str | None) -> None:
    from ..media import Speaker

    async with Speaker(device=int(device) if device and device.isdigit() else device) as speaker:
        await speaker.play(session.audio_frames())


def status_line(session, got: Received, started: float) -> Text:
    stats = session.stats()
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "–"
    return Text(
        f"{session.state:<10} {time.monotonic() - started:5.1f} s │ in {stats.bitrate_in_kbps:5.0f} kbps"
        f" out {stats.bitrate_out_kbps:5.0f} kbps │ loss {stats.loss_percent:4.1f}% │ jitter"
        f" {stats.jitter_ms:4.1f} ms │ RTT {rtt} │ audio in {got.audio_seconds:5.1f} s"
    )


async def hold(session, got: Received, started: float, console: Console, stop: asyncio.Event,
               duration: float | None) -> Ending:
    """Show the status line until the session ends, ``stop`` is set or ``duration`` has passed."""
    ender = asyncio.create_task(session.closed())
    stopper = asyncio.create_task(stop.wait())
    try:
        with Live(status_line(session, got, started), console=console, refresh_per_second=4, transient=True) as live:
            deadline = None if duration is None else started + duration
            while not (ender.done() or stopper.done()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                await asyncio.wait({ender, stopper}, timeout=min(0.25, left) if left else 0.25)
                live.update(status_line(session, got, started))
    finally:
        ender.cancel()
        stopper.cancel()
    if stopper.done() and not stopper.cancelled():
        return "interrupted"
    return "closed" if ender.done() and not ender.cancelled() else "duration"
