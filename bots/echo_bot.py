"""Echo bot: the skeleton of a voice-bot backend on peerbot.

Audio in: ``session.audio_frames()``. Audio out: an ``AudioSource`` the bot pushes PCM into.
The "brain" here is ``transform()``: half the level, 0.3 s later. Events are printed as they come.
Runs against Orga when ORGA_API_KEY is set, else against the embedded echo server (see peerbot.cli.orga_target),
where the greeting bounces back and forth, quieter each round.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import numpy as np

import peerbot.media
import peerbot.orga
from peerbot.errors import PeerbotError
from peerbot.cli.orga_target import orga_target

RATE = 48000
GAIN = 0.5  # each round trip halves the level, so an echo loop dies out
DELAY = 0.3  # seconds of silence queued once up front: every reply then lags by this much
HELLO = Path(__file__).resolve().parent.parent / "samples" / "hello.wav"


def transform(pcm: np.ndarray) -> np.ndarray:
    return (pcm * GAIN).astype(np.int16)


async def answer(session: peerbot.orga.OrgaSession, out: peerbot.media.AudioSource, preroll: np.ndarray) -> None:
    frames = session.audio_frames(sample_rate=RATE, channels=1)  # subscribed now: nothing heard is missed
    await out.capture(preroll, RATE)  # replies queue behind it, so they never talk over the greeting
    heard, peak = 0.0, 0
    async for frame in frames:
        await out.capture(transform(frame.data), frame.sample_rate)
        heard, peak = heard + frame.duration, max(peak, int(np.abs(frame.data).max()))
        if heard >= 1.0:  # one line a second: how loud the other side was
            print(f"heard 1 s of audio, peak {20 * np.log10(max(peak, 1) / 32768):6.1f} dBFS")
            heard, peak = 0.0, 0


async def show_events(session: peerbot.orga.OrgaSession) -> None:
    async for event in session.events():
        detail = getattr(event, "transcript", None) or getattr(event, "text", None) or getattr(event, "error", "")
        print(f"event: {event.type} {detail}".rstrip())


async def run(args: argparse.Namespace) -> None:
    greeting = peerbot.media.decode_audio(args.greet, RATE)[0] if args.greet else np.zeros(0, np.int16)
    preroll = np.concatenate([greeting, np.zeros(int(DELAY * RATE), np.int16)])
    # capture() waits while the queue is full: make room for the whole pre-roll at once.
    app_source = peerbot.media.AudioSource(sample_rate=RATE, queue_seconds=max(1.0, len(preroll) / RATE + 1))
    async with orga_target() as target, peerbot.orga.connect(
        source=app_source, modalities=("audio",), return_transcription=True, **target.connect_kwargs
    ) as session:
        print(f"connected to {target.description}: conversation {session.conversation_id}")
        work = (answer(session, app_source, preroll), show_events(session), session.closed())
        tasks = [asyncio.create_task(c) for c in work]
        done, _ = await asyncio.wait(tasks, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for task in done:  # the call ended before --duration: say why
            print(f"session ended: {task.exception() or task.result() or 'stream finished'}")
        print(f"stats: {session.stats()}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, help="hang up after this many seconds (default: run until Ctrl-C)")
    parser.add_argument("--greet", type=Path, default=HELLO if HELLO.is_file() else None,
                        help="audio file said once at the start (default: samples/hello.wav)")
    parser.add_argument("--no-greet", dest="greet", action="store_const", const=None, help="start silent")
    try:
        asyncio.run(run(parser.parse_args()))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except PeerbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
