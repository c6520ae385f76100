"""Answering bot: an Orbit user that picks up every call, greets the caller and records what they say.

Each call: the greeting (default samples/hello.wav), then silence; the caller's audio goes to
--record-dir/<call id>.wav; when the call ends its id, length and why it ended are printed and
the bot waits for the next one. One call at a time: a call that rings meanwhile is not answered.
Runs against Orbit when ORBIT_SECRET_KEY is set (with ORBIT_BASE_URL and ORBIT_CLIENT_ID), else
against a local Orbit server started here (see peerbot.cli.orbit_target): it then prints how to
call the bot from another terminal (`peerbot orbit call answering-bot --as you`) and places one
demo call itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

import peerbot.media
import peerbot.orbit
from peerbot.errors import PeerbotError
from peerbot.cli.orbit_target import OrbitTarget, orbit_target

HELLO = Path(__file__).resolve().parent.parent / "samples" / "hello.wav"
DEMO_SECONDS = 5.0  # the greeting is about 4 s


async def take_call(target: OrbitTarget, args: argparse.Namespace, number: int) -> None:
    """Answer the next call, hold it until it ends, keep its recording under the call's id."""
    partial = args.record_dir / f".call-{number}.wav"  # the id is known only once answered
    greeting = peerbot.media.File(args.greeting) if args.greeting else peerbot.media.Silence()
    try:
        async with peerbot.orbit.answer(greeting, ring_timeout=None, record=partial,
                                        **target.call_kwargs) as call:
            answered = time.monotonic()
            caller = await caller_name(target, call.call_id or "")
            print(f"call {call.call_id}{' from ' + caller if caller else ''}: answered")
            try:
                reason = await asyncio.wait_for(call.closed(), args.max_duration)
            except TimeoutError:
                reason = f"the bot hung up after --max-duration {args.max_duration:g} s"
            lasted = time.monotonic() - answered
    except PeerbotError as exc:  # e.g. the caller gave up while we picked up
        print(f"call not taken: {exc}")
        return
    saved = args.record_dir / f"{call.call_id}.wav"
    if partial.exists():
        partial.rename(saved)
    print(f"call {call.call_id}: {lasted:.1f} s, ended: {reason}; recorded to {saved}")


async def caller_name(target: OrbitTarget, call_id: str) -> str | None:
    # Only the local server can say who called: Orbit has no route to read a call.
    call = target.server.calls.get(call_id) if target.server else None
    return (await target.backend.users.get(call.caller_id)).external_id if call else None


async def demo_call(target: OrbitTarget) -> None:
    """Call the bot as another user with a 550 Hz tone; say how loud the greeting was."""
    caller = await target.as_user("demo-caller")
    peak, heard = 0, 0.0
    try:
        async with peerbot.orbit.call(target.user.id, peerbot.media.Tone(550), **caller.call_kwargs) as call:
            async for frame in call.audio_frames(sample_rate=16000, channels=1):
                peak, heard = max(peak, int(np.abs(frame.data.astype(np.int32)).max())), heard + frame.duration
                if heard >= DEMO_SECONDS:
                    break
    except PeerbotError as exc:
        print(f"demo call failed: {exc}")
        return
    print(f"demo-caller heard {heard:.1f} s of the bot, peak {20 * np.log10(max(peak, 1) / 32768):.1f} dBFS,"
          " and hung up")


async def run(args: argparse.Namespace) -> None:
    args.record_dir.mkdir(parents=True, exist_ok=True)
    async with orbit_target(args.name) as target:
        print(f"answering calls to {target.user.external_id} ({target.user.id}) on {target.description}")
        demo = None
        if target.server is not None:
            server = target.server
            print(f"  call it: ORBIT_BASE_URL={server.base_url} ORBIT_SECRET_KEY={server.secret_key}"
                  f" ORBIT_CLIENT_ID={server.publishable_key} peerbot orbit call {target.user.external_id} --as you")
            demo = asyncio.create_task(demo_call(target))
        taken = 0
        while args.max_calls is None or taken < args.max_calls:
            taken += 1
            await take_call(target, args, taken)
        if demo is not None:
            await demo


def main() -> int:
    sys.stdout.reconfigure(line_buffering=True)  # one line per call, even into a pipe
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--as", dest="name", default="answering-bot", metavar="NAME",
                        help="the bot user's external id (upserted; default answering-bot)")
    parser.add_argument("--greeting", type=Path, default=HELLO if HELLO.is_file() else None,
                        help="audio file played when a call is answered (default: samples/hello.wav)")
    parser.add_argument("--no-greeting", dest="greeting", action="store_const", const=None, help="answer silently")
    parser.add_argument("--record-dir", type=Path, default=Path("recordings"),
                        help="where each call's recording goes, as <call id>.wav (default: ./recordings)")
    parser.add_argument("--max-calls", type=int, help="stop after this many calls (default: until Ctrl-C)")
    parser.add_argument("--max-duration", type=float, help="hang up a call after this many seconds")
    args = parser.parse_args()
    if args.greeting and not args.greeting.is_file():
        parser.error(f"greeting file not found: {args.greeting}")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except PeerbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
