"""``peerbot call``: hold an Orga realtime session from the terminal.

Against Orga when ``ORGA_API_KEY`` is set, otherwise against the embedded server started in
this process. A live status line shows state, bitrates, loss, jitter and RTT; transcripts and
the assistant's text are printed as they arrive; Ctrl-C hangs up cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time
from collections import Counter
from dataclasses import dataclass, field

from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..orga import events as ev
from ..orga.params import MODELS, VOICES
from .sources import audio_source, video_source


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("call", help="hold an Orga realtime session (embedded server when ORGA_API_KEY is unset)")
    p.add_argument("--source", default="tone", metavar="mic|tone[:HZ]|silence|none|FILE[:loop]",
                   help="audio to send (default: a 440 Hz tone)")
    p.add_argument("--mic-device", help="microphone name or index (see 'peerbot devices')")
    p.add_argument("--video", default="none", metavar="pattern|none|FILE[:loop]", help="video to send")
    p.add_argument("--play", action="store_true", help="play received audio on the speaker")
    p.add_argument("--speaker-device", help="speaker name or index")
    p.add_argument("--record", metavar="PATH", help="record received media (.wav, .ogg, .mp4, .webm, .mkv)")
    p.add_argument("--duration", type=float, default=None, help="hang up after this many seconds")
    p.add_argument("--voice", default="alloy", choices=VOICES)
    p.add_argument("--model", default=MODELS[0], choices=MODELS)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--instructions", default=None)
    p.add_argument("--transcripts", action="store_true", help="ask for transcriptions of what is sent")
    p.add_argument("--local", action="store_true", help="use the embedded server even if ORGA_API_KEY is set")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_call(args))


@dataclass
class Received:
    """What came back, for the live line and the closing summary."""

    audio_frames: int = 0
    audio_seconds: float = 0.0
    events: Counter[str] = field(default_factory=Counter)


async def _call(args: argparse.Namespace) -> int:
    from .. import orga
    from ..local.target import orga_target

    console = Console(highlight=False, soft_wrap=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    source = audio_source(args.source, args.mic_device)
    video = video_source(args.video)
    got = Received()
    async with orga_target(local=True if args.local else None) as target:
        console.print(f"Calling {target.description}")
        console.print(f"  sending audio: {args.source}   video: {args.video}")
        started = time.monotonic()
        async with orga.connect(
            source, video, voice=args.voice, model=args.model, temperature=args.temperature,
            instructions=args.instructions, return_transcription=args.transcripts, record=args.record,
            **target.connect_kwargs,
        ) as session:
            console.print(f"  connected in {(time.monotonic() - started) * 1000:.0f} ms,"
                          f" conversation {session.conversation_id}")
            tasks = [asyncio.create_task(_count_audio(session, got)),
                     asyncio.create_task(_print_events(session, got, console))]
            if args.play:
                tasks.append(asyncio.create_task(_play(session, args.speaker_device)))
            ender = asyncio.create_task(session.closed())
            stopper = asyncio.create_task(stop.wait())
            with Live(_status(session, got, started), console=console, refresh_per_second=4, transient=True) as live:
                deadline = None if args.duration is None else started + args.duration
                while not (ender.done() or stopper.done()):
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    await asyncio.wait({ender, stopper}, timeout=min(0.25, left) if left else 0.25)
                    live.update(_status(session, got, started))
            stats = session.stats()
            server_call = target.server.calls.get(session.conversation_id) if target.server else None
            server_counts = _server_counts(server_call)
            for task in tasks:
                task.cancel()
        if stopper.done() and not stopper.cancelled():
            reason = "hung up (interrupted)"
        elif session.peer.error is not None:
            reason = session.peer.error
        else:
            reason = f"hung up after --duration {args.duration:g} s"
        ender.cancel()
        stopper.cancel()
    console.print(f"Call ended after {time.monotonic() - started:.1f} s: {reason}")
    console.print(f"  sent:     {stats.packets_sent} RTP packets ({args.source}, video {args.video})")
    console.print(f"  received: {got.audio_seconds:.1f} s of audio in {got.audio_frames} frames;"
                  f" events {dict(got.events) or 'none'}")
    if server_counts:
        console.print(f"  server:   {server_counts}")
    if args.record:
        console.print(f"  recorded to {args.record}")
    return 0 if session.peer.error is None else 1


async def _count_audio(session, got: Received) -> None:
    with contextlib.suppress(Exception):
        async for frame in session.audio_frames():
            got.audio_frames += 1
            got.audio_seconds += frame.duration


async def _print_events(session, got: Received, console: Console) -> None:
    with contextlib.suppress(Exception):
        async for event in session.events():
            got.events[event.type] += 1
            if isinstance(event, ev.InputTranscriptionCompleted):
                console.print(f"[bold]you:[/bold] {event.transcript}")
            elif isinstance(event, ev.ResponseOutputItemDone):
                console.print(f"[bold cyan]assistant:[/bold cyan] {event.text}")
            elif isinstance(event, ev.ErrorEvent):
                console.print(f"[red]bad message:[/red] {event.error}")
            else:
                console.print(f"[dim]event {event.type}[/dim]")


async def _play(session, device: str | None) -> None:
    from ..media import Speaker

    async with Speaker(device=int(device) if device and device.isdigit() else device) as speaker:
        await speaker.play(session.audio_frames())


def _status(session, got: Received, started: float) -> Text:
    stats = session.stats()
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "–"
    return Text(
        f"{session.state:<10} {time.monotonic() - started:5.1f} s │ in {stats.bitrate_in_kbps:5.0f} kbps"
        f" out {stats.bitrate_out_kbps:5.0f} kbps │ loss {stats.loss_percent:4.1f}% │ jitter"
        f" {stats.jitter_ms:4.1f} ms │ RTT {rtt} │ audio in {got.audio_seconds:5.1f} s"
    )


def _server_counts(call) -> str:
    if call is None:
        return ""
    fields = ("audio_frames_received", "video_frames_received", "audio_frames_sent")
    return ", ".join(f"{name.replace('_', ' ')} {getattr(call, name)}" for name in fields if hasattr(call, name))
