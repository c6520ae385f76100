"""``peerbot call``: hold an Orga realtime session from the terminal.

Against Orga when ``ORGA_API_KEY`` is set, otherwise against the embedded server started in
this process. A live status line shows state, bitrates, loss, jitter and RTT; transcripts and
the assistant's text are printed as they arrive; Ctrl-C hangs up cleanly.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time

from rich.console import Console

from ..orga import events as ev
from ..orga.params import MODELS, VOICES
from .live import Received, add_media_options, count_audio, hang_up_on_signals, hold, play
from .sources import audio_source, video_source


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("call", help="hold an Orga realtime session (embedded server when ORGA_API_KEY is unset)")
    add_media_options(p)
    p.add_argument("--voice", default="alloy", choices=VOICES)
    p.add_argument("--model", default=MODELS[0], choices=MODELS)
    p.add_argument("--temperature", type=float, default=0.5)
    p.add_argument("--instructions", default=None)
    p.add_argument("--transcripts", action="store_true", help="ask for transcriptions of what is sent")
    p.add_argument("--local", action="store_true", help="use the embedded server even if ORGA_API_KEY is set")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_call(args))


async def _call(args: argparse.Namespace) -> int:
    from .. import orga
    from ..local.target import orga_target

    console = Console(highlight=False, soft_wrap=True)
    stop = hang_up_on_signals()
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
            tasks = [asyncio.create_task(count_audio(session, got)),
                     asyncio.create_task(_print_events(session, got, console))]
            if args.play:
                tasks.append(asyncio.create_task(play(session, args.speaker_device)))
            ending = await hold(session, got, started, console, stop, args.duration)
            stats = session.stats()
            server_call = target.server.calls.get(session.conversation_id) if target.server else None
            server_counts = _server_counts(server_call)
            for task in tasks:
                task.cancel()
        if ending == "interrupted":
            reason = "hung up (interrupted)"
        elif session.peer.error is not None:
            reason = session.peer.error
        else:
            reason = f"hung up after --duration {args.duration:g} s"
    console.print(f"Call ended after {time.monotonic() - started:.1f} s: {reason}")
    console.print(f"  sent:     {stats.packets_sent} RTP packets ({args.source}, video {args.video})")
    console.print(f"  received: {got.audio_seconds:.1f} s of audio in {got.audio_frames} frames;"
                  f" events {dict(got.events) or 'none'}")
    if server_counts:
        console.print(f"  server:   {server_counts}")
    if args.record:
        console.print(f"  recorded to {args.record}")
    return 0 if session.peer.error is None else 1


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


def _server_counts(call) -> str:
    if call is None:
        return ""
    fields = ("audio_frames_received", "video_frames_received", "audio_frames_sent")
    return ", ".join(f"{name.replace('_', ' ')} {getattr(call, name)}" for name in fields if hasattr(call, name))
