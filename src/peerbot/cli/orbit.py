"""``peerbot orbit call USER`` and ``peerbot orbit answer``: one Orbit call from the terminal.

With ``ORBIT_SECRET_KEY`` (and ``ORBIT_BASE_URL``, ``ORBIT_CLIENT_ID``) the command is its own
backend: it upserts its bot user (``--as``), gives it a token (renewed when it expires) and
places or answers the call as that user. Without it, a local Orbit-compatible server runs in
this process with a demo user on the far side. Same live line and summary as ``peerbot call``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from rich.console import Console

from ..errors import CallNotConnectedError, ConfigurationError, NoCallError, PeerbotError
from ..orbit import User
from ..quality.cli import ASSERT_HELP, add_latency_option, add_report_options
from .call import EXIT_STATUS
from .held_call import finish_call, hold_call
from .live import Received, count_video
from .options import Media, add_impairment_options, add_media_options, add_reconnect_option, open_media, seconds
from .signals import HangUpSignal, Interrupted
from .summary import JSON_HELP, CallSummary, cancelled, report_recording
from .text import shown

if TYPE_CHECKING:
    from ..orbit import OrbitCall
    from ..orbit.call import CallType
    from .orbit_target import OrbitTarget

DEMO_CALLER = "demo-caller"
_LOCAL = ("Without ORBIT_SECRET_KEY (or with --local) a local Orbit-compatible server runs in this process"
          " and a demo user there plays back everything it hears, 0.3 s late: send a tone or a file"
          " (--play to listen) and you get your own audio back.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("orbit", help="place or answer an Orbit call (a local server and an echoing demo user"
                                          " when ORBIT_SECRET_KEY is unset)")
    actions = p.add_subparsers(dest="orbit_action", required=True, metavar="ACTION")
    epilog = f"{EXIT_STATUS}\n\n{JSON_HELP}\n\n{ASSERT_HELP}"
    c = actions.add_parser("call", help="call an Orbit user", description=f"Call USER. {_LOCAL} USER is that"
                           " demo user's name then.", epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument("user", metavar="USER", help="whom to call: an external id, or an Orbit user id")
    c.add_argument("--type", choices=("voice", "video"), help="call type (default: video when --video is set)")
    _add_common(c, ring_default=30.0, ring_help="give up if USER has not answered within S seconds (default 30)")
    c.set_defaults(run=lambda args: asyncio.run(_call(args)))
    a = actions.add_parser("answer", help="answer the next incoming Orbit call",
                           description=f"Answer the next call to the bot user. {_LOCAL} It calls you: that is the"
                           " demo, unless --no-demo, which prints how to call in from another terminal.",
                           epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--call-id", help="answer this call rather than waiting for the next one")
    a.add_argument("--no-demo", action="store_true", help="with the local server: wait for a real caller")
    _add_common(a, ring_default=None, ring_help="give up if no call comes within S seconds (default: wait)")
    a.set_defaults(run=lambda args: asyncio.run(_answer(args)))


def _add_common(p: argparse.ArgumentParser, *, ring_default: float | None, ring_help: str) -> None:
    p.add_argument("--as", dest="name", default="peerbot", metavar="NAME",
                   help="external id of the bot user this command acts as (upserted; default peerbot)")
    add_media_options(p)
    add_reconnect_option(p)
    add_impairment_options(p)
    p.add_argument("--ring-timeout", type=seconds, default=ring_default, metavar="S", help=ring_help)
    p.add_argument("--metrics-interval", type=seconds, metavar="S", help="submit call quality every S seconds")
    p.add_argument("--local", action="store_true", help="use a local server even if ORBIT_SECRET_KEY is set")
    add_report_options(p)
    add_latency_option(p)


async def _call(args: argparse.Namespace) -> int:
    from .. import orbit
    from ..local.demo_user import echo_participant
    from .orbit_target import orbit_target

    console = Console(highlight=False, soft_wrap=True, stderr=args.json)
    hang_up = HangUpSignal()
    if not args.user.strip():  # before any request: an empty USER would otherwise be looked up
        raise ConfigurationError("USER must name whom to call (an external id or an Orbit user id), got ''")
    summary = CallSummary("orbit call", exit_status=1, end_reason="", recording=args.record)
    async with contextlib.AsyncExitStack() as stack:
        media = open_media(args)
        stack.callback(media.close)
        call_type: CallType = args.type or ("video" if media.video is not None else "voice")
        try:  # a signal stops the set-up as well as the ring: a slow server is not waited for
            target = await hang_up.run(stack.enter_async_context(
                orbit_target(args.name, local=_local(args), ring_timeout=args.ring_timeout)))
            console.print(f"On {target.description} as {_who(target.user)}")
            if target.server is not None:
                await stack.enter_async_context(echo_participant(target, args.user))
                console.print(f"  {args.user} is a local demo user: it answers and plays back what it hears,"
                              " 0.3 s late")
            callee = await hang_up.run(target.find_user(args.user))
        except Interrupted:
            return _interrupted(summary, console, hang_up, args)
        if callee.id == target.user.id:
            raise ConfigurationError(f"{args.user} is this command's own user: call someone else, or pick --as NAME")
        console.print(f"Calling {_who(callee)}, {call_type} call")
        probe = " with latency markers" if media.probe is not None else ""
        console.print(f"  sending audio: {media.source_text}{probe}   video: {args.video}")
        session = orbit.call(callee.id, media.audio, media.video, type=call_type, ring_timeout=args.ring_timeout,
                             metrics_interval=args.metrics_interval, record=args.record, reconnect=args.reconnect,
                             impair=media.impair, **target.call_kwargs)
        return await _hold_call(session, args, console, hang_up, media, target, callee.external_id, summary)


async def _answer(args: argparse.Namespace) -> int:
    from .. import orbit
    from ..local.demo_user import echo_participant
    from .orbit_target import orbit_target

    console = Console(highlight=False, soft_wrap=True, stderr=args.json)
    hang_up = HangUpSignal()
    summary = CallSummary("orbit answer", exit_status=1, end_reason="", recording=args.record)
    async with contextlib.AsyncExitStack() as stack:
        media = open_media(args)
        stack.callback(media.close)
        try:
            target = await hang_up.run(stack.enter_async_context(orbit_target(args.name, local=_local(args))))
        except Interrupted:
            return _interrupted(summary, console, hang_up, args)
        console.print(f"On {target.description} as {_who(target.user)}")
        if target.server is not None:
            server = target.server
            console.print(f"  to call in: ORBIT_BASE_URL={server.base_url} ORBIT_SECRET_KEY={server.secret_key}"
                          f" ORBIT_CLIENT_ID={server.publishable_key} peerbot orbit call {target.user.external_id}"
                          " --as you")
            if not args.no_demo:
                await stack.enter_async_context(echo_participant(
                    target, DEMO_CALLER, calls=target.user.id, type="video" if media.video is not None else "voice",
                    ring_timeout=30.0))
                console.print(f"  {DEMO_CALLER} is calling (a local demo user that plays back what it hears;"
                              " --no-demo waits for you instead)")
        wait = f" (up to {args.ring_timeout:g} s)" if args.ring_timeout else ""
        console.print(f"Waiting for {'call ' + args.call_id if args.call_id else 'a call'}{wait}")
        console.print(f"  answering with audio: {media.source_text}   video: {args.video}")
        session = orbit.answer(media.audio, media.video, call_id=args.call_id,
                               ring_timeout=args.ring_timeout,  # None (no --ring-timeout): wait until Ctrl-C
                               metrics_interval=args.metrics_interval, record=args.record, reconnect=args.reconnect,
                               impair=media.impair, **target.call_kwargs)
        return await _hold_call(session, args, console, hang_up, media, target, None, summary)


def _interrupted(summary: CallSummary, console: Console, hang_up: HangUpSignal, args: argparse.Namespace) -> int:
    return cancelled(summary, console, hang_up, args.json)


async def _hold_call(session: OrbitCall, args: argparse.Namespace, console: Console, hang_up: HangUpSignal,
                     media: Media, target: OrbitTarget, other: str | None, summary: CallSummary) -> int:
    """Set the call up (a signal cancels), hold it with the live line, hang up, print the summary."""
    started = time.monotonic()
    try:
        await hang_up.run(session.start())  # start() ends the call on the server on its way out
    except Interrupted:
        return _interrupted(summary, console, hang_up, args)
    except NoCallError:  # the wait for call:incoming, so --ring-timeout was given
        summary.end_reason = f"no call came within {args.ring_timeout:g} s"
        console.print(summary.end_reason.capitalize())
        return summary.finish(args.json)
    except CallNotConnectedError as exc:
        summary.end_reason = f"not connected ({exc.outcome}): {_outcome(exc, session.callee_id, other)}"
        console.print(f"Call {shown(summary.end_reason)}")
        return summary.finish(args.json)
    except ConfigurationError:
        raise
    except PeerbotError as exc:  # signalling or ICE failed: a failed call, not bad usage
        summary.end_reason = f"not connected: {exc}"
        console.print(f"Call {shown(summary.end_reason)}")
        return summary.finish(args.json)
    summary.call_id = session.call_id
    got = Received()
    try:
        other = other or await _caller(target, session.call_id or "")
    except BaseException:
        await session.close()
        raise
    with_whom = shown(f"call {session.call_id} ({session.type}){' with ' + other if other else ''}")
    if session.role == "caller":
        console.print(f"  connected in {(time.monotonic() - started) * 1000:.0f} ms: {with_whom}")
    else:
        console.print(f"  answered after {time.monotonic() - started:.1f} s: {with_whom}")
    # The call lasts from here: the ring is not part of it.
    counting = [count_video(session, got)] if session.type == "video" else []
    held = await hold_call(session, media, got, summary, console, hang_up, args.duration, tasks=counting)
    if held.ending == "interrupted":
        summary.exit_status, summary.end_reason = hang_up.exit_status, f"hung up ({hang_up.reason})"
    elif held.ending == "duration":
        summary.exit_status, summary.end_reason = 0, f"hung up after --duration {args.duration:g} s"
    else:  # the far side hung up (normally: exit 0) or the call failed
        normal = held.error is None or session.ended_by_remote == "hangup"
        summary.exit_status = 0 if normal else 1
        summary.end_reason = held.error or held.end_reason or "the call ended"
    video = f", {got.video_frames} video frames" if session.type == "video" else ""
    console.print(f"Call ended after {summary.duration_s:.1f} s: {shown(summary.end_reason)}")
    console.print(f"  sent:     {summary.packets_sent} RTP packets ({media.source_text}, video {args.video})")
    console.print(f"  received: {got.audio_seconds:.1f} s of audio in {got.audio_frames} frames{video}")
    console.print(f"  heard:    {got.heard()}")
    console.print(f"  {summary.quality()}")
    console.print(f"  {summary.reconnections()}")
    if target.server is not None:
        console.print(f"  server:   call {shown(session.call_id)} {target.server.calls[session.call_id].status}")
    if args.metrics_interval:
        console.print(f"  metrics:  {session.metrics_submitted} samples submitted")
    report_recording(summary, session.recorder, console)
    return finish_call(args, summary, held, media, console, with_whom)


def _local(args: argparse.Namespace) -> bool | None:
    return True if args.local else None


def _who(user: User) -> str:
    return shown(user.external_id if user.external_id == user.id else f"{user.external_id} ({user.id})")


def _outcome(exc: CallNotConnectedError, callee_id: str | None, name: str | None) -> str:
    who = name or "the other party"
    if exc.outcome == "rejected":
        return f"{who} rejected the call"
    if exc.outcome == "missed":
        return f"{who} did not answer"
    return str(exc).replace(callee_id, who) if callee_id else str(exc)


async def _caller(target: OrbitTarget, call_id: str) -> str | None:
    """Who called, when the server is ours to ask (Orbit has no route for it)."""
    if target.server is None:
        return None
    call = target.server.calls.get(call_id)
    return (await target.backend.users.get(call.caller_id)).external_id if call else None
