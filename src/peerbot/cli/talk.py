"""``peerbot talk``: talk with the assistant from a desktop, microphone in and speaker out.

Echo cancellation, noise suppression and automatic gain are on (libwebrtc's, as browsers have
them: ``pip install 'peerbot[desktop]'``), so that the assistant does not hear itself through a
laptop's speakers. A live line shows your level and the assistant's; transcripts are printed as
they arrive. Keys (when stdin is a terminal): ``m`` mutes, ``p`` switches push-to-talk (hold space
to talk), ``q`` hangs up, as Ctrl-C does (exit 130). Against Orga when ``ORGA_API_KEY`` is set,
otherwise against the embedded server, which plays your voice back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import sys
import time
import wave
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack
from rich.console import Console
from rich.live import Live
from rich.text import Text

from ..errors import ConfigurationError, PeerbotError
from ..orga import events as ev
from ..orga.params import MODELS, VOICES
from .held_call import echo_canceller_line
from .options import seconds, whole_number
from .signals import HangUpSignal, Interrupted
from .text import shown

EXIT_STATUS = "exit status: 0 normal end (q, --duration, the far side hung up), 1 the call failed, " \
              "2 bad usage, settings or devices, 130/143 SIGINT/SIGTERM"
KEYS = "keys: m mute/unmute, p push-to-talk on/off (then hold space to talk), q hang up"
RECORD_RATE = 48000
_METER_FLOOR = -60.0  # dBFS at the meter's left end
# Seconds a space keeps push-to-talk open: past the keyboard's repeat delay, then between repeats.
_HOLD_FIRST, _HOLD_REPEAT = 0.6, 0.15


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("talk", help="talk with the assistant: microphone, speaker, echo cancellation",
                            description=(__doc__ or "").replace("``", ""), epilog=f"{KEYS}\n{EXIT_STATUS}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mic-device", "-i", metavar="DEVICE", help="microphone: index or part of the name"
                   " (see 'peerbot devices'; default: the system's)")
    p.add_argument("--speaker-device", "-o", metavar="DEVICE", help="speaker: index or part of the name")
    p.add_argument("--voice", default="alloy", choices=VOICES)
    p.add_argument("--model", default=MODELS[0], choices=MODELS)
    p.add_argument("--instructions", default=None, help="system instructions for the assistant")
    p.add_argument("--record", metavar="PATH.wav",
                   help="record both sides to a stereo WAV: you left, the assistant right")
    p.add_argument("--duration", type=seconds, default=None, metavar="S", help="hang up after S seconds")
    p.add_argument("--push-to-talk", action="store_true", help="start in push-to-talk: hold space to talk")
    p.add_argument("--no-echo-cancellation", dest="echo_cancellation", action="store_false",
                   help="send the microphone's echo of the speaker too (for headphones)")
    p.add_argument("--no-noise-suppression", dest="noise_suppression", action="store_false")
    p.add_argument("--no-auto-gain", dest="auto_gain", action="store_false")
    p.add_argument("--stream-delay", type=_stream_delay, metavar="MS", default=None,
                   help="speaker-to-microphone delay for the echo canceller (default: from the devices' latencies)")
    p.add_argument("--local", action="store_true", help="use the embedded server even if ORGA_API_KEY is set")
    p.set_defaults(run=run)


def _stream_delay(text: str) -> int:
    from ..media.audio_processing import MAX_STREAM_DELAY_MS

    return whole_number(text, lambda ms: ms <= MAX_STREAM_DELAY_MS,
                        f"expected whole milliseconds from 0 to {MAX_STREAM_DELAY_MS}")


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_talk(args))


async def _talk(args: argparse.Namespace) -> int:
    from .. import orga
    from .orga_target import orga_target

    console = Console(highlight=False, soft_wrap=True)
    keys = sys.stdin.isatty()
    if args.push_to_talk and not keys:
        raise ConfigurationError("--push-to-talk needs a terminal to read the space key from; stdin is not one")
    if args.stream_delay is not None and not args.echo_cancellation:
        raise ConfigurationError("--stream-delay is the echo canceller's setting: it cannot go with"
                                 " --no-echo-cancellation")
    path = _record_path(args.record)
    hang_up = HangUpSignal()
    controls = Controls(push_to_talk=args.push_to_talk)
    mic, speaker = _open_devices(args)
    you, assistant = LevelMeter(), LevelMeter()
    outgoing = Outgoing(mic, controls, you)
    recording: StereoRecording | None = None
    try:
        async with orga_target(local=True if args.local else None) as target:
            session = orga.connect(outgoing, voice=args.voice, model=args.model, instructions=args.instructions,
                                   modalities=("audio",), return_transcription=True, **target.connect_kwargs)
            console.print(f"Calling {target.description}")
            console.print(f"  microphone: {shown(mic.device_name)} ({_processing_text(mic)})")
            console.print(f"  speaker:    {shown(speaker.device_name)}")
            try:
                await hang_up.run(session.start())
            except BaseException:
                await session.close()
                raise
            console.print("Connected: start talking" + (f" ({KEYS})" if keys else " (Ctrl-C hangs up)"))
            started = time.monotonic()
            if path is not None:  # from now: both sides start together at the file's beginning
                recording = outgoing.recording = StereoRecording(path)
            tasks = [asyncio.create_task(_play(session, speaker, assistant, recording)),
                     asyncio.create_task(_print_transcripts(session, console))]
            try:
                with _key_reader(controls.key if keys else None):
                    ending = await _hold(session, console, hang_up, controls, args.duration, started,
                                         status=lambda: _status(you, assistant, controls, started, console.width),
                                         devices=(mic, speaker))
            finally:
                for task in tasks:
                    task.cancel()
                error, end_reason = session.error, session.end_reason
                await session.close()
    except Interrupted:
        console.print(f"Call cancelled before it connected ({hang_up.reason})")
        return hang_up.exit_status
    except ConfigurationError:
        raise
    except PeerbotError as exc:  # signalling or ICE failed
        console.print(f"Call failed: {shown(exc)}")
        return 1
    finally:
        outgoing.stop()
        speaker.close()
        if recording is not None:
            recording.close()
    if ending == "interrupted":
        status, reason = hang_up.exit_status, f"hung up ({hang_up.reason})"
    elif error is not None:
        status, reason = 1, str(error)
    elif ending == "duration":
        status, reason = 0, f"hung up after --duration {args.duration:g} s"
    elif ending == "key":
        status, reason = 0, "hung up (q)"
    else:
        status, reason = 0, end_reason or "the session ended"
    console.print(f"Call ended after {time.monotonic() - started:.1f} s: {shown(reason)}")
    _print_summary(console, outgoing, assistant, mic.processing, recording, path)
    return status


def _print_summary(console: Console, outgoing: Outgoing, assistant: LevelMeter, processing: Any,
                   recording: StereoRecording | None, path: Path | None) -> None:
    console.print(f"  you: {outgoing.sent_seconds:.1f} s sent ({outgoing.silenced_seconds:.1f} s of it muted);"
                  f" assistant: {assistant.seconds:.1f} s heard")
    if (line := echo_canceller_line(processing)) is not None:
        console.print(line)
    if recording is not None:
        console.print(f"  recorded {recording.seconds:.1f} s to {shown(path)} (stereo: left you, right the assistant)")


def _record_path(record: str | None) -> Path | None:
    if record is None:
        return None
    from ..media.recorder import check_writable

    path = Path(record)
    if path.suffix.lower() != ".wav":
        raise ConfigurationError(f"--record {record}: peerbot talk records a stereo .wav"
                                 " (you left, the assistant right)")
    check_writable(path)
    return path


def _open_devices(args: argparse.Namespace) -> tuple[Any, Any]:
    """The microphone (with its processing) and the speaker that feeds its echo canceller."""
    from ..media import Microphone, Speaker

    mic = Microphone(_device(args.mic_device), echo_cancellation=args.echo_cancellation,
                     noise_suppression=args.noise_suppression, auto_gain=args.auto_gain,
                     stream_delay_ms=args.stream_delay)
    reference = mic.processing if mic.processing is not None and mic.processing.echo_cancellation else None
    try:
        speaker = Speaker(_device(args.speaker_device), echo_reference=reference)
    except BaseException:
        mic.stop()
        raise
    return mic, speaker


def _device(spec: str | None) -> str | int | None:
    return int(spec) if spec is not None and spec.isascii() and spec.isdigit() else spec  # "²" is a name


def _processing_text(mic: Any) -> str:
    p = mic.processing
    if p is None:
        return "no processing"
    stages = [name for name, on in (("echo cancellation", p.echo_cancellation), ("noise suppression",
              p.noise_suppression), ("auto gain", p.auto_gain)) if on]
    return ", ".join(stages) or "high-pass filter only"


# --- what is sent and what is heard ----------------------------------------------------


class Controls:
    """Mute and push-to-talk, driven by keys: whether the microphone is sent right now."""

    def __init__(self, *, push_to_talk: bool = False, clock: Callable[[], float] = time.monotonic) -> None:
        self.muted = False
        self.push_to_talk = push_to_talk
        self.quit = False
        self._clock = clock
        self._talk_until = 0.0
        self._last_space = -math.inf

    @property
    def sending(self) -> bool:
        return not self.muted and (not self.push_to_talk or self._clock() < self._talk_until)

    def key(self, char: str) -> None:
        if char in "mM":
            self.muted = not self.muted
        elif char in "pP":
            self.push_to_talk, self._talk_until = not self.push_to_talk, 0.0
        elif char in "qQ":
            self.quit = True
        elif char == " " and self.push_to_talk:
            # A terminal sends no key-up: a held key repeats, after a first delay longer than the repeats.
            now = self._clock()
            repeat = now - self._last_space < _HOLD_FIRST
            self._talk_until, self._last_space = now + (_HOLD_REPEAT if repeat else _HOLD_FIRST), now

    def state(self) -> str:
        if self.muted:
            return "MUTED (m)"
        if self.push_to_talk:
            return "talking" if self.sending else "hold space to talk"
        return "live"


class LevelMeter:
    """The level of recent audio in dBFS, falling back at 20 dB/s like a VU meter's needle."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = 0.0
        self._clock = clock
        self._db, self._at = _METER_FLOOR, clock()

    def add(self, samples: np.ndarray, sample_rate: int) -> None:
        self.seconds += samples.shape[-1] / sample_rate
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
        db = 20 * math.log10(rms / 32768) if rms > 0 else _METER_FLOOR
        self._db, self._at = max(db, self.db), self._clock()

    @property
    def db(self) -> float:
        return max(_METER_FLOOR, self._db - 20 * (self._clock() - self._at))

    def bar(self, width: int = 16) -> str:
        filled = round(width * (self.db - _METER_FLOOR) / -_METER_FLOOR)
        return "█" * filled + "░" * (width - filled)


class StereoRecording:
    """Both sides of the talk in one 48 kHz stereo WAV, you on the left and the assistant on the
    right, placed by when they were sent and heard: a side that went quiet is padded with silence."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        wav = wave.open(str(path), "wb")
        wav.setnchannels(2)
        wav.setsampwidth(2)
        wav.setframerate(RECORD_RATE)
        self._wav: wave.Wave_write | None = wav
        self._clock = clock
        self._start = clock()
        self._pending: list[list[np.ndarray]] = [[], []]  # per side, from self._written on
        self._ends = [0, 0]  # per side: the sample index its pending audio reaches
        self._written = 0

    @property
    def seconds(self) -> float:
        return self._written / RECORD_RATE

    def add(self, side: int, samples: np.ndarray) -> None:
        """``samples``: mono int16 at 48 kHz that ``side`` (0 you, 1 the assistant) sent or heard just now."""
        now = round((self._clock() - self._start) * RECORD_RATE)
        gap = now - len(samples) - self._ends[side]
        if gap > RECORD_RATE // 10:  # it went quiet (a mute, a pause in the stream): silence until now
            self._append(side, np.zeros(gap, np.int16))
        self._append(side, samples.astype(np.int16, copy=False))
        self._flush(now - RECORD_RATE // 2)  # what both sides had half a second to deliver

    def close(self) -> None:
        if self._wav is None:
            return
        self._flush(max(self._ends))
        wav, self._wav = self._wav, None
        wav.close()

    def _append(self, side: int, samples: np.ndarray) -> None:
        self._pending[side].append(samples)
        self._ends[side] += len(samples)

    def _flush(self, upto: int) -> None:
        for side in (0, 1):
            if self._ends[side] < upto:
                self._append(side, np.zeros(upto - self._ends[side], np.int16))
        n = min(self._ends) - self._written
        if n <= 0 or self._wav is None:
            return
        left, right = (self._take(side, n) for side in (0, 1))
        self._wav.writeframes(np.column_stack((left, right)).astype("<i2").tobytes())
        self._written += n

    def _take(self, side: int, n: int) -> np.ndarray:
        data = np.concatenate(self._pending[side])
        self._pending[side] = [data[n:]] if len(data) > n else []
        return data[:n]


class Outgoing(MediaStreamTrack):
    """The microphone as sent: metered, silenced while muted (or push-to-talk is not held), recorded."""

    kind = "audio"

    def __init__(self, mic: Any, controls: Controls, meter: LevelMeter) -> None:
        super().__init__()
        self.sent_seconds = 0.0
        self.silenced_seconds = 0.0
        self.recording: StereoRecording | None = None  # set once the call is connected
        self._mic, self._controls, self._meter = mic, controls, meter
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RECORD_RATE)

    async def recv(self) -> av.AudioFrame:
        frame = await self._mic.recv()
        data = frame.to_ndarray()
        self._meter.add(data, frame.sample_rate)  # the meter shows the microphone even when muted
        duration = frame.samples / frame.sample_rate
        self.sent_seconds += duration
        if not self._controls.sending:
            self.silenced_seconds += duration
            silent = av.AudioFrame.from_ndarray(np.zeros_like(data), format="s16", layout=frame.layout.name)
            silent.sample_rate, silent.pts, silent.time_base = frame.sample_rate, frame.pts, frame.time_base
            frame, data = silent, np.zeros_like(data)
        if self.recording is not None:
            self.recording.add(0, self._as_recorded(data, frame.sample_rate, frame.layout.name))
        return frame

    def _as_recorded(self, data: np.ndarray, rate: int, layout: str) -> np.ndarray:
        copy = av.AudioFrame.from_ndarray(data, format="s16", layout=layout)
        copy.sample_rate = rate
        out = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(copy)]
        return np.concatenate(out) if out else np.zeros(0, np.int16)

    def stop(self) -> None:
        super().stop()
        self._mic.stop()


async def _play(session: Any, speaker: Any, meter: LevelMeter, recording: StereoRecording | None) -> None:
    async def heard() -> AsyncIterator[Any]:
        async for frame in session.audio_frames(sample_rate=RECORD_RATE, channels=1):
            meter.add(frame.data, frame.sample_rate)
            if recording is not None:
                recording.add(1, frame.data[0])
            yield frame

    with contextlib.suppress(PeerbotError):  # the call ending ends playback
        await speaker.play(heard())


async def _print_transcripts(session: Any, console: Console) -> None:
    with contextlib.suppress(PeerbotError):
        async for event in session.events():
            if isinstance(event, ev.InputTranscriptionCompleted):
                console.print(f"[bold]you:[/bold] {shown(event.transcript)}")
            elif isinstance(event, ev.ResponseOutputItemDone):
                console.print(f"[bold cyan]assistant:[/bold cyan] {shown(event.text)}")
            elif isinstance(event, ev.ErrorEvent):
                console.print(f"[red]bad message:[/red] {shown(event.error)}")


# --- the terminal ----------------------------------------------------------------------


@contextlib.contextmanager
def _key_reader(on_key: Callable[[str], None] | None) -> Iterator[None]:
    """Keys as they are pressed (no Enter, no echo), while the block runs; Ctrl-C still signals."""
    if on_key is None:
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def read() -> None:
        for char in os.read(fd, 64).decode(errors="ignore"):
            on_key(char)

    tty.setcbreak(fd)  # keeps ISIG: Ctrl-C is still SIGINT, which HangUpSignal takes
    loop.add_reader(fd, read)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


async def _hold(session: Any, console: Console, hang_up: HangUpSignal, controls: Controls, duration: float | None,
                started: float, *, status: Callable[[], Text], devices: tuple[Any, ...]) -> str:
    """Show the live line until the call ends: ``interrupted``, ``key``, ``duration`` or ``closed``."""
    ender = asyncio.create_task(session.closed())
    stopper = asyncio.create_task(hang_up.wait())
    reported: set[str] = set()
    live = Live(status(), console=console, refresh_per_second=10, transient=True) if console.is_terminal else None
    try:
        with live if live is not None else contextlib.nullcontext():
            while not (ender.done() or stopper.done() or controls.quit):
                if duration is not None and time.monotonic() - started >= duration:
                    return "duration"
                await asyncio.wait({ender, stopper}, timeout=0.1)
                for device in devices:  # an unplugged device: say so once, the call goes on
                    error = getattr(device, "device_error", None)
                    if error and error not in reported:
                        reported.add(error)
                        console.print(f"[yellow]{shown(error)}; the call goes on[/yellow]")
                if live is not None:
                    live.update(status())
    finally:
        ender.cancel()
        stopper.cancel()
    if stopper.done() and not stopper.cancelled():
        return "interrupted"
    return "key" if controls.quit else "closed"


def _status(you: LevelMeter, assistant: LevelMeter, controls: Controls, started: float, width: int) -> Text:
    line = (f"you {you.bar()} {you.db:4.0f} dB │ assistant {assistant.bar()} {assistant.db:4.0f} dB"
            f" │ {controls.state()} │ {time.monotonic() - started:.0f} s")
    return Text(line[: max(1, width - 1)], no_wrap=True)
