"""What the calling commands share: counting what was received, playback, and holding a session
with the live status line until it should end."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..errors import PeerbotError
from .signals import HangUpSignal
from .status import status_line

Ending = Literal["interrupted", "closed", "duration"]


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


async def count_audio(session: Any, got: Received) -> None:
    """Count received audio until the call ends."""
    with contextlib.suppress(Exception):
        async for frame in session.audio_frames():
            got.add_audio(frame.data, frame.sample_rate, frame.duration)


async def count_video(session: Any, got: Received) -> None:
    """Count received video frames until the call ends."""
    with contextlib.suppress(Exception):
        async for _ in session.video_frames():
            got.video_frames += 1


async def play(session: Any, speaker: Any) -> None:
    """Received audio on ``speaker`` (a ``Speaker`` opened before connecting, so a missing one fails early)."""
    with contextlib.suppress(PeerbotError):  # the call ending ends playback
        await speaker.play(session.audio_frames())


async def hold(session: Any, got: Received, started: float, console: Console, hang_up: HangUpSignal,
               duration: float | None) -> Ending:
    """Show the status line until the session ends, a signal comes or ``duration`` has passed."""
    ender = asyncio.create_task(session.closed())
    stopper = asyncio.create_task(hang_up.wait())

    def line() -> Text:
        return status_line(session, got.audio_seconds, started, console.width)

    try:
        with Live(line(), console=console, refresh_per_second=4, transient=True) as live:
            deadline = None if duration is None else started + duration
            while not (ender.done() or stopper.done()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                await asyncio.wait({ender, stopper}, timeout=min(0.25, left) if left else 0.25)
                live.update(line())
    finally:
        ender.cancel()
        stopper.cancel()
    if stopper.done() and not stopper.cancelled():
        return "interrupted"
    return "closed" if ender.done() and not ender.cancelled() else "duration"
