"""Talk to the AI from your desktop: microphone in, speaker out, what was said printed as text.

The microphone cancels the speaker's echo (and suppresses noise, evens out the level), so the
assistant does not hear itself on a laptop without headphones: libwebrtc's audio processing, as
browsers have it (`pip install 'peerbot[desktop]'`). Every Speaker of the process feeds what it
plays to that echo canceller; nothing to wire.

Runs against Orga when ORGA_API_KEY is set (with ORGA_USER_EMAIL), else against the embedded
echo server (see peerbot.cli.orga_target), which plays your voice back. Ctrl-C hangs up.
`peerbot talk` is the full command: level meters, mute and push-to-talk keys, --record.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import peerbot.media
import peerbot.orga
from peerbot.errors import AudioDeviceError, ConfigurationError, PeerbotError
from peerbot.media import format_devices
from peerbot.orga.events import ErrorEvent, InputTranscriptionCompleted, ResponseOutputItemDone
from peerbot.cli.orga_target import orga_target


async def print_text(session: peerbot.orga.OrgaSession) -> None:
    async for event in session.events():
        if isinstance(event, InputTranscriptionCompleted):
            print(f"you: {event.transcript}", flush=True)
        elif isinstance(event, ResponseOutputItemDone):
            print(f"ai:  {event.text}", flush=True)
        elif isinstance(event, ErrorEvent) or event.type == "error":
            print(f"(error event: {getattr(event, 'error', '') or event.raw.get('error')})", file=sys.stderr)


async def run(args: argparse.Namespace) -> None:
    # Both devices are looked up before connecting, so a bad one fails fast.
    async with peerbot.media.Speaker(args.output) as speaker:
        clean = args.echo_cancellation  # off with headphones: there is no echo to cancel
        mic = peerbot.media.Microphone(args.input, echo_cancellation=clean, noise_suppression=clean, auto_gain=clean)
        print(f"microphone: {mic.device_name}  speaker: {speaker.device_name}", file=sys.stderr)
        async with orga_target() as target, peerbot.orga.connect(
            source=mic, voice=args.voice, instructions=args.instructions,
            modalities=("audio",), return_transcription=True, **target.connect_kwargs,
        ) as session:
            print(f"connected to {target.description}: start talking (Ctrl-C to hang up)", file=sys.stderr)
            work = (speaker.play(session.audio_frames()), print_text(session), session.closed())
            tasks = [asyncio.create_task(c) for c in work]
            done, _ = await asyncio.wait(tasks, timeout=args.duration, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for task in done:
                print(f"session ended: {task.result() or 'stream finished'}", file=sys.stderr)  # re-raises errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    device = "index or part of the name (default: the system's)"
    parser.add_argument("--input", "-i", metavar="DEVICE", help=f"microphone: {device}")
    parser.add_argument("--output", "-o", metavar="DEVICE", help=f"speaker: {device}")
    parser.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    parser.add_argument("--voice", default="alloy", choices=peerbot.orga.VOICES, help="assistant voice")
    parser.add_argument("--instructions", help="system instructions for the assistant")
    parser.add_argument("--duration", type=float, help="hang up after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--no-echo-cancellation", dest="echo_cancellation", action="store_false",
                        help="send the microphone as it is (with headphones)")
    args = parser.parse_args()
    try:
        if args.list_devices:
            print(format_devices())
            return 0
        asyncio.run(run(args))
    except AudioDeviceError as exc:
        print(f"audio device problem: {exc}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:  # e.g. echo cancellation without the livekit wheel
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hung up", file=sys.stderr)
        return 130
    except PeerbotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
