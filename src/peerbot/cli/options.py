"""The calling commands' media options, checked before any request: a bad one is exit 2, nothing opened."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from ..engine.impairment import Impairment, NetworkImpairment
from ..errors import ConfigurationError, MediaError
from ..ice_servers import IceServer, InvalidIceServer, ice_server_from_text
from .sources import audio_source, video_source


def add_media_options(p: argparse.ArgumentParser) -> None:
    """--source, --mic-device, --video, --play, --speaker-device, --record, --duration, --json."""
    p.add_argument("--source", default="tone", metavar="mic|tone[:HZ]|silence|none|FILE[:loop]",
                   help="audio to send (default: a 440 Hz tone)")
    p.add_argument("--mic-device", help="microphone name or index (see 'peerbot devices')")
    for name, what in PROCESSING_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", dest=name, action="store_true",
                       help=f"with --source mic: {what} (libwebrtc's, pip install 'peerbot[desktop]')")
    p.add_argument("--video", default="none", metavar="pattern|none|FILE[:loop]", help="video to send")
    p.add_argument("--play", action="store_true", help="play received audio on the speaker")
    p.add_argument("--speaker-device", help="speaker name or index")
    p.add_argument("--record", metavar="PATH", help="record received media (.wav, .ogg, .mp4, .webm, .mkv)")
    p.add_argument("--duration", type=seconds, default=None, metavar="S", help="hang up after S seconds")
    p.add_argument("--json", action="store_true",
                   help="print the end summary as one JSON object on stdout (the rest goes to stderr)")


# The microphone's audio processing, off by default here (``peerbot talk`` turns it all on).
PROCESSING_OPTIONS = {"echo_cancellation": "cancel the echo of what --play plays",
                      "noise_suppression": "suppress steady background noise",
                      "auto_gain": "even out the microphone's level"}


def add_reconnect_option(p: argparse.ArgumentParser) -> None:
    """--no-reconnect: end the call at the first lost connection instead of rebuilding it."""
    p.add_argument("--no-reconnect", dest="reconnect", action="store_false",
                   help="end the call when its connection is lost (default: rebuild it, up to 3 attempts)")


def add_impairment_options(p: argparse.ArgumentParser) -> None:
    """--impair (both ways), --impair-out, --impair-in: network impairment in user space, no root needed."""
    spec = "loss=5%%,burst=1%%/25%%,delay=80ms,jitter=20ms,reorder,rate=500kbps,queue=100ms,outage=5s+3s,seed=1"
    p.add_argument("--impair", type=impairment, metavar="SPEC",  # %% is argparse's escape of %
                   help=f"impair the network both ways, e.g. '{spec}' (every key optional)")
    p.add_argument("--impair-out", type=impairment, metavar="SPEC", help="impair what we send (overrides --impair)")
    p.add_argument("--impair-in", type=impairment, metavar="SPEC", help="impair what we receive (overrides --impair)")


def impairment(text: str) -> Impairment:
    """An ``--impair`` spec (argparse type): a bad one is a usage error, before anything starts."""
    try:
        return Impairment.parse(text)
    except ConfigurationError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def network_impairment(args: argparse.Namespace) -> NetworkImpairment | None:
    """What ``--impair``/``--impair-out``/``--impair-in`` ask for, per direction; None for nothing."""
    both = getattr(args, "impair", None)
    send, receive = getattr(args, "impair_out", None) or both, getattr(args, "impair_in", None) or both
    network = NetworkImpairment(send, receive) if send or receive else None
    return network if network is not None and network.active else None


def whole_number(text: str, ok: Callable[[int], bool], expected: str) -> int:
    """``text`` as a whole number that ``ok`` accepts, else argparse's error ``expected, got 'text'``."""
    if not (text.isascii() and text.isdigit()) or not ok(int(text)):  # "²" is a digit too
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}")
    return int(text)


def number(text: str, ok: Callable[[float], bool], expected: str, out_of_range: str | None = None, *,
           parse: Callable[[str], float] = float) -> float:
    """``text`` as a finite number that ``ok`` accepts, else argparse's error: ``expected`` for what
    does not parse, ``out_of_range`` (default: the same) for what ``ok`` refuses."""
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{expected}, got {text!r}") from None
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"{out_of_range or expected}, got {text!r}")
    return value


def count(text: str) -> int:
    """A whole number >= 1 (argparse type)."""
    return whole_number(text, lambda n: n >= 1, "expected a whole number of at least 1")


def port(text: str) -> int:
    """A TCP port, 0 (any free one) to 65535 (argparse type)."""
    return whole_number(text, lambda n: n <= 65535, "expected a port from 0 to 65535 (0 picks a free one)")


def seconds(text: str) -> float:
    """A positive, finite number of seconds (argparse type)."""
    return number(text, lambda v: v > 0, "expected a number of seconds", "must be more than 0 seconds")


def delay(text: str) -> float:
    """A finite number of seconds >= 0 (argparse type)."""
    return number(text, lambda v: v >= 0, "expected a number of seconds >= 0")


def agent_seconds(text: str) -> float:
    """The embedded voice agent's think time or endpointing: 0 to its maximum (argparse type)."""
    from ..local.voice_agent import MAX_SECONDS  # the agent's own bound, imported only where it is used

    value = delay(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_SECONDS:g} seconds, got {text!r}")
    return value


@dataclass
class Media:
    """What the options asked for, opened: sources, the speaker, where to record, ICE servers."""

    source: Any = None
    source_text: str = ""  # --source as the user gave it, with the microphone's processing named
    video: Any = None
    speaker: Any = None  # a Speaker when --play
    record: str | None = None
    ice_servers: list[IceServer] | None = None
    impair: NetworkImpairment | None = None
    probe: Any = None  # a LatencyProbe when --latency-probe: what is sent, with --source's audio mixed in

    @property
    def audio(self) -> Any:
        """The audio to hand the session: the probe when there is one, else ``--source``'s."""
        return self.probe if self.probe is not None else self.source

    def source_audio_track(self) -> Any:
        """``--source``'s audio track (for the probe to mix in), or None."""
        from ..media.source import track_of

        return track_of(self.source, "audio")

    def close(self) -> None:
        """Release the speaker and the sources: also what no session took (stopping twice is harmless)."""
        if self.speaker is not None:
            self.speaker.close()
        for source in (self.source, self.video, self.probe):
            if source is not None:
                source.stop()


def open_media(args: argparse.Namespace) -> Media:
    """Check every media option and open the devices and files, or raise ``ConfigurationError``."""
    processing = {name: True for name in PROCESSING_OPTIONS if getattr(args, name, False)}
    if processing and args.source != "mic":
        given = ", ".join(f"--{name.replace('_', '-')}" for name in processing)
        raise ConfigurationError(f"{given}: only with --source mic (the microphone's audio processing)")
    if args.mic_device is not None and args.source != "mic":
        raise ConfigurationError("--mic-device: only with --source mic (the microphone to send from)")
    if args.speaker_device is not None and not args.play:
        raise ConfigurationError("--speaker-device: only with --play (the speaker to play the received audio on)")
    media = Media(record=args.record, ice_servers=ice_servers(getattr(args, "ice_server", None)),
                  impair=network_impairment(args))
    try:
        if args.record:
            from ..media.recorder import check_record_path, check_writable

            check_writable(check_record_path(args.record))  # a container peerbot writes, in a place it can
        if args.play:  # the output device is looked up now, as the microphone is
            from ..media import Speaker

            device = args.speaker_device
            media.speaker = Speaker(device=int(device) if device and device.isdigit() else device)
        media.source = audio_source(args.source, args.mic_device, **processing)
        named = ", ".join(name.replace("_", " ") for name in processing)
        media.source_text = f"{args.source} ({named})" if named else args.source
        media.video = video_source(args.video)
        if getattr(args, "latency_probe", False):
            from ..quality import LatencyProbe

            media.probe = LatencyProbe()
    except MediaError as exc:
        media.close()
        raise ConfigurationError(str(exc)) from None
    except BaseException:
        media.close()
        raise
    return media


def ice_servers(texts: list[str] | None) -> list[IceServer] | None:
    """``--ice-server`` values (JSON objects or stun:/turn: URLs); ``None`` keeps the service's own."""
    if not texts:
        return None
    try:
        return [ice_server_from_text(text) for text in texts]
    except InvalidIceServer as exc:
        raise ConfigurationError(f"--ice-server: {exc}") from None
