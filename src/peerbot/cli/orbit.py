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

from ..errors import CallNotConnectedError, ConfigurationError
from ..orbit import User
from .live import Received, add_media_options, count_audio, count_video, hang_up_on_signals, hold, play
from .sources import audio_source, video_source

if TYPE_CHECKING:
    from ..local.orbit_target import OrbitTarget
    from ..orbit import OrbitCall

DEMO_CALLER = "demo-caller"
_LOCAL = ("Without ORBIT_SECRET_KEY (or with --local) a local Orbit-compatible server runs in this process"
          " and a demo user there plays back everything it hears, 0.3 s late: send a tone or a file"
          " (--play to listen) and you get your own audio back.")


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("orbit", help="place or answer an Orbit call (a local server and an echoing demo user"
                                          " when ORBIT_SECRET_KEY is unset)")
    actions = p.add_subparsers(dest="orbit_action", required=True, metavar="ACTION")
    c = actions.add_parser("call", help="call an Orbit user", description=f"Call USER. {_LOCAL} USER is that"
                           " demo user's name then.")
    c.add_argument("user", metavar="USER", help="whom to call: an external id, or an Orbit user id")
    c.add_argument("--type", choices=("voice", "video"), help="call type (default: video when --video is set)")
    _add_common(c, ring_default=30.0, ring_help="give up if USER has not answered within S seconds (default 30)")
    c.set_defaults(run=lambda args: asyncio.run(_call(args)))
    a = actions.add_parser("answer", help="answer the next incoming Orbit call",
                           description=f"Answer the next call to the bot user. {_LOCAL} It calls you: that is the"
                           " demo, unless --no-demo, which prints how to call in from another terminal.")
    a.add_argument("--call-id", help="answer this call rather than waiting for the next one")
    a.add_argument("--no-demo", action="store_true", help="with the local server: wait for a real caller")
    _add_common(a, ring_default=None, ring_help="give up if no call comes within S seconds (default: wait)")
    a.set_defaults(run=lambda args: asyncio.run(_answer(args)))


def _add_common(p: argparse.ArgumentParser, *, ring_default: float | None, ring_help: str) -> None:
    p.add_argument("--as", dest="name", default="peerbot", metavar="NAME",
                   help="external id of the bot user this command acts as (upserted; default peerbot)")
    add_media_options(p)
    p.add_argument("--ring-timeout", type=float, default=ring_default, metavar="S", help=ring_help)
    p.add_argument("--metrics-interval", type=float, metavar="S", help="submit call quality every S seconds")
    p.add_argument("--local", action="store_true", help="use a local server even if ORBIT_SECRET_KEY is set")


async def _call(args: argparse.Namespace) -> int:
    from .. import orbit
    from ..local.orbit_target import echo_participant, orbit_target

    console = Console(highlight=False, soft_wrap=True)
    stop = hang_up_on_signals()
    source, video = audio_source(args.source, args.mic_device), video_source(args.video)
    call_type = args.type or ("video" if video is not None else "voice")
    async with orbit_target(args.name, local=_local(args), ring_timeout=args.ring_timeout) as target, \
            contextlib.AsyncExitStack() as demo:
        console.print(f"On {target.description} as {_who(target.user)}")
        if target.server is not None:
            await demo.enter_async_context(echo_participant(target, args.user))
            console.print(f"  {args.user} is a local demo user: it answers and plays back what it hears, 0.3 s late")
        callee = await target.find_user(args.user)
        if callee.id == target.user.id:
            raise ConfigurationError(f"{args.user} is this command's own user: call someone else, or pick --as NAME")
        console.print(f"Calling {_who(callee)}, {call_type} call")
        console.print(f"  sending audio: {args.source}   video: {args.video}")
        session = orbit.call(callee.id, source, video, type=call_type, ring_timeout=args.ring_timeout,
                             metrics_interval=args.metrics_interval, record=args.record, **target.call_kwargs)
        return await _hold_call(session, args, console, stop, target, callee.external_id)


async def _answer(args: argparse.Namespace) -> int:
    from .. import orbit
    from ..local.orbit_target import echo_participant, orbit_target

    console = Console(highlight=False, soft_wrap=True)
    stop = hang_up_on_signals()
    source, video = audio_source(args.source, args.mic_device), video_source(args.video)
    async with orbit_target(args.name, local=_local(args)) as target, contextlib.AsyncExitStack() as demo:
        console.print(f"On {target.description} as {_who(target.user)}")
        if target.server is not None:
            server = target.server
            console.print(f"  to call in: ORBIT_BASE_URL={server.base_url} ORBIT_SECRET_KEY={server.secret_key}"
                          f" ORBIT_CLIENT_ID={server.publishable_key} peerbot orbit call {target.user.external_id}"
                          " --as you")
            if not args.no_demo:
                await demo.enter_async_context(echo_participant(
                    target, DEMO_CALLER, calls=target.user.id, type="video" if video is not None else "voice",
                    ring_timeout=30.0))
                console.print(f"  {DEMO_CALLER} is calling (a local demo user that plays back what it hears;"
                              " --no-demo waits for you instead)")
        wait = f" (up to {args.ring_timeout:g} s)" if args.ring_timeout else ""
        console.print(f"Waiting for {'call ' + args.call_id if args.call_id else 'a call'}{wait}")
        console.print(f"  answering with audio: {args.source}   video: {args.video}")
        session = orbit.answer(source, video, call_id=args.call_id, ring_timeout=args.ring_timeout,
                               metrics_interval=args.metrics_interval, record=args.record, **target.call_kwargs)
        return await _hold_call(session, args, console, stop, target, None)


async def _hold_call(session: OrbitCall, args: argparse.Namespace, console: Console, stop: asyncio.Event,
                     target: OrbitTarget, other: str | None) -> int:
    """Set the call up (Ctrl-C cancels), hold it with the live line, hang up, print the summary."""
    started = time.monotonic()
    setup = asyncio.create_task(session.start())
    stopper = asyncio.create_task(stop.wait())
    await asyncio.wait({setup, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    if not setup.done():
        setup.cancel()  # start() ends the call on the server on its way out
        await asyncio.gather(setup, return_exceptions=True)
        console.print("Cancelled before the call connected (interrupted)")
        return 130
    try:
        setup.result()
    except CallNotConnectedError as exc:
        console.print(f"Call not connected ({exc.outcome}): {_outcome(exc, session.callee_id, other)}")
        return 1
    except TimeoutError:
        if session.call_id is None:  # the wait for call:incoming, so --ring-timeout was given
            console.print(f"No call came within {args.ring_timeout:g} s")
        else:
            console.print(f"Call not connected: set-up of call {session.call_id} timed out")
        return 1
    got = Received()
    try:
        other = other or await _caller(target, session.call_id)
        with_whom = f"call {session.call_id} ({session.type}){' with ' + other if other else ''}"
        if session.role == "caller":
            console.print(f"  connected in {(time.monotonic() - started) * 1000:.0f} ms: {with_whom}")
        else:  # the wait for a ring is not part of the call: count from here
            console.print(f"  answered after {time.monotonic() - started:.1f} s: {with_whom}")
            started = time.monotonic()
        tasks = [asyncio.create_task(count_audio(session, got))]
        if session.type == "video":
            tasks.append(asyncio.create_task(count_video(session, got)))
        if args.play:
            tasks.append(asyncio.create_task(play(session, args.speaker_device)))
        ending = await hold(session, got, started, console, stop, args.duration)
        stats = session.stats()
        error = session.peer.error  # taken before hanging up: how the far side leaves after that is moot
        for task in tasks:
            task.cancel()
    finally:
        await session.close()
    if ending == "interrupted":
        reason = "hung up (interrupted)"
    elif error is not None:
        reason = error
    else:
        reason = f"hung up after --duration {args.duration:g} s"
    video = f", {got.video_frames} video frames" if session.type == "video" else ""
    console.print(f"Call ended after {time.monotonic() - started:.1f} s: {reason}")
    console.print(f"  sent:     {stats.packets_sent} RTP packets ({args.source}, video {args.video})")
    console.print(f"  received: {got.audio_seconds:.1f} s of audio in {got.audio_frames} frames{video}")
    console.print(f"  heard:    {got.heard()}")
    if target.server is not None:
        console.print(f"  server:   call {session.call_id} {target.server.calls[session.call_id].status}")
    if args.metrics_interval:
        console.print(f"  metrics:  {session.metrics_submitted} samples submitted")
    if args.record:
        console.print(f"  recorded to {args.record}")
    return 0 if error is None or session.ended_by_remote == "hangup" else 1


def _local(args: argparse.Namespace) -> bool | None:
    return True if args.local else None


def _who(user: User) -> str:
    return user.external_id if user.external_id == user.id else f"{user.external_id} ({user.id})"


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
