"""``peerbot call``: hold an Orga realtime session from the terminal.

Against Orga when ``ORGA_API_KEY`` is set, otherwise against the embedded server started in
this process. A live status line shows state, bitrates, loss, jitter and RTT; transcripts and
the assistant's text are printed as they arrive; Ctrl-C hangs up cleanly (exit 130, 143 on SIGTERM).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import Any

from rich.console import Console

from ..errors import ConfigurationError, PeerbotError
from ..orga import events as ev
from ..orga.params import MODELS, VOICES
from ..quality.cli import ASSERT_HELP, add_latency_option, add_report_options
from .held_call import finish_call, hold_call
from .live import Received
from .options import add_impairment_options, add_media_options, add_reconnect_option, open_media
from .signals import HangUpSignal, Interrupted
from .summary import JSON_HELP, CallSummary, cancelled, report_recording
from .text import shown, terminal_safe

EXIT_STATUS = "exit status: 0 normal end, 1 the call failed, 2 bad usage or settings, 130/143 SIGINT/SIGTERM"


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("call", help="hold an Orga realtime session (embedded server when ORGA_API_KEY is unset)",
                            epilog=f"{EXIT_STATUS}\n\n{JSON_HELP}\n\n{ASSERT_HELP}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    add_media_options(p)
    add_reconnect_option(p)
    add_impairment_options(p)
    add_report_options(p)
    add_latency_option(p)
    p.add_argument("--ice-server", action="append", metavar="JSON|URL",
                   help='ICE server instead of the service\'s, e.g. stun:host:3478 or {"urls": …} (repeatable)')
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
    from .orga_target import orga_target

    console = Console(highlight=False, soft_wrap=True, stderr=args.json)
    hang_up = HangUpSignal()
    media = open_media(args)
    options: dict[str, Any] = {} if media.ice_servers is None else {"ice_servers": media.ice_servers}
    summary = CallSummary("call", exit_status=1, end_reason="", recording=args.record)
    got = Received()
    server_counts = ""
    try:
        async with orga_target(local=True if args.local else None) as target:
            session = orga.connect(  # checks the settings: a bad one is refused before anything is printed
                media.audio, media.video, voice=args.voice, model=args.model, temperature=args.temperature,
                instructions=args.instructions, return_transcription=args.transcripts, record=args.record,
                reconnect=args.reconnect, impair=media.impair, **options, **target.connect_kwargs,
            )
            console.print(f"Calling {target.description}")
            probe = " with latency markers" if media.probe is not None else ""
            console.print(f"  sending audio: {media.source_text}{probe}   video: {args.video}")
            started = time.monotonic()
            try:
                await hang_up.run(session.start())
            except BaseException:
                await session.close()
                raise
            summary.call_id = session.conversation_id
            console.print(f"  connected in {(time.monotonic() - started) * 1000:.0f} ms,"
                          f" conversation {shown(session.conversation_id)}")

            def take_server_counts() -> None:
                nonlocal server_counts
                server_counts = _server_counts(target.server, session.conversation_id)

            held = await hold_call(session, media, got, summary, console, hang_up, args.duration,
                                   tasks=[_print_events(session, got, console)], before_hang_up=take_server_counts)
    except Interrupted:
        return cancelled(summary, console, hang_up, args.json)
    except ConfigurationError:
        raise
    except PeerbotError as exc:  # signalling or ICE failed: a failed call, not bad usage
        summary.end_reason = f"not connected: {exc}"
        console.print(f"Call {shown(summary.end_reason)}")
        return summary.finish(args.json)
    finally:
        media.close()
    if held.ending == "interrupted":
        summary.exit_status, summary.end_reason = hang_up.exit_status, f"hung up ({hang_up.reason})"
    elif held.error is not None:
        summary.exit_status, summary.end_reason = 1, held.error
    elif held.ending == "duration":
        summary.exit_status, summary.end_reason = 0, f"hung up after --duration {args.duration:g} s"
    else:
        summary.exit_status, summary.end_reason = 0, held.end_reason or "the session ended"
    console.print(f"Call ended after {summary.duration_s:.1f} s: {shown(summary.end_reason)}")
    console.print(f"  sent:     {summary.packets_sent} RTP packets ({shown(media.source_text)}, video {shown(args.video)})")
    console.print(f"  received: {got.audio_seconds:.1f} s of audio in {got.audio_frames} frames;"
                  f" events {shown(dict(got.events) or 'none')}")
    console.print(f"  {summary.quality()}")
    console.print(f"  {summary.reconnections()}")
    if server_counts:
        console.print(f"  server:   {server_counts}")
    report_recording(summary, session.recorder, console)
    return finish_call(args, summary, held, media, console, target.description)


async def _print_events(session: Any, got: Received, console: Console) -> None:
    with contextlib.suppress(Exception):
        async for event in session.events():
            got.events[terminal_safe(event.type, limit=80)] += 1
            with contextlib.suppress(Exception):  # one event that cannot be shown does not end the others
                console.print(event_line(event))


def event_line(event: ev.Event) -> str:
    """How ``peerbot call`` shows an event (rich markup): what came from the far side is escaped."""
    if isinstance(event, ev.InputTranscriptionCompleted):
        return f"[bold]you:[/bold] {shown(event.transcript)}"
    if isinstance(event, ev.ResponseOutputItemDone):
        return f"[bold cyan]assistant:[/bold cyan] {shown(event.text)}"
    if isinstance(event, ev.ErrorEvent):
        return f"[red]bad message:[/red] {shown(event.error)}"
    return f"[dim]event {shown(event.type)}[/dim]"


def _server_counts(server: Any, conversation_id: str | None) -> str:
    """What the embedded server received and sent, when it is ours to ask."""
    call = server.calls.get(conversation_id) if server is not None else None
    if call is None:
        return ""
    fields = ("audio_frames_received", "video_frames_received", "audio_frames_sent")
    return ", ".join(f"{name.replace('_', ' ')} {getattr(call, name)}" for name in fields if hasattr(call, name))
