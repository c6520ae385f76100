"""A conversation script: what the caller says, turn by turn, and what it waits for.

A :class:`Turn` says something (text spoken by the offline TTS, or an audio file) and then either
waits for the answer (over once the far side has been silent ``answer_silence`` seconds, given up
``timeout`` seconds after our utterance ended), or, with ``barge_in_after``, lets the *next* turn
talk over the answer that many seconds into it. A turn that says nothing stays silent for
``silence`` seconds. An :class:`Update` step sends ``session.update``. ``expect`` checks the
data-channel events that arrive during the turn.

Every value is checked when the object is made: a bad one is a ``ConfigurationError`` naming the
field (the file loader adds which turn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..media.speech_synthesis import MAX_TEXT_CHARS
from ..orga.params import validate_params

__all__ = ["EXPECT_EVENTS", "Expect", "Script", "Step", "Turn", "Update"]

MAX_SECONDS = 600.0  # any one wait or silence
MAX_STEPS = 500
MAX_EXPECTATIONS = 20
MAX_PHRASE_CHARS = 500
MIN_ANSWER_SILENCE = 0.3  # the VAD decides an end after 0.3 s without speech: a shorter silence is not seen

EXPECT_EVENTS = {
    "transcript": "conversation.item.input_audio_transcription.completed",
    "reply": "response.output_item.done",
}
"""Short names of the events an expectation may name; any other event type is given as it is."""


def seconds(name: str, value: object, *, low: float = 0.0, high: float = MAX_SECONDS,
            low_inclusive: bool = False) -> float:
    """``value`` as seconds within (``low``, ``high``], else ``ConfigurationError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds, got {_shown(value)}")
    above = value >= low if low_inclusive else value > low
    if not above or value > high:
        bound = "at least" if low_inclusive else "above"
        raise ConfigurationError(f"{name} must be {bound} {low:g} s and at most {high:g} s, got {value:g}")
    return float(value)


def _text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a string, got {_shown(value)}")
    if not value.strip():
        raise ConfigurationError(f"{name} is empty")
    if len(value) > limit:
        raise ConfigurationError(f"{name} is {len(value)} characters; at most {limit}")
    return value


def _shown(value: object) -> str:
    kind = type(value).__name__
    text = repr(value)
    return f"{kind} {text[:40]}{'…' if len(text) > 40 else ''}"


@dataclass(frozen=True)
class Expect:
    """An event the turn must bring: ``event`` (``"transcript"``: what the far side heard us say,
    ``"reply"``: its reply as text, or any event type) whose text contains ``contains`` (ignoring
    case and extra spaces; ``None``: any such event will do)."""

    event: str = "transcript"
    contains: str | None = None

    def __post_init__(self) -> None:
        _text("event", self.event, 200)
        if self.contains is not None:
            _text("contains", self.contains, MAX_PHRASE_CHARS)
        if self.contains is None and self.event in EXPECT_EVENTS:
            raise ConfigurationError(f"an expectation on a {self.event} needs 'contains', the phrase to find")

    @property
    def event_type(self) -> str:
        """The data-channel event type it looks for."""
        return EXPECT_EVENTS.get(self.event, self.event)

    def __str__(self) -> str:
        return f"{self.event} contains {self.contains!r}" if self.contains is not None else f"a {self.event} event"


@dataclass(frozen=True)
class Turn:
    """One turn of the caller. Give ``say`` (text for the TTS) or ``audio`` (a file), or neither and
    ``silence`` (seconds of saying nothing). After speaking, the turn waits for the answer until the
    far side has been silent ``answer_silence`` seconds (``timeout``: the longest wait, from the end
    of our utterance) or, with ``barge_in_after``, ends that many seconds into the answer so that
    the next turn talks over it. ``expect`` is checked against the events of the turn."""

    say: str | None = None
    audio: Path | str | None = None
    silence: float | None = None
    answer_silence: float = 1.0
    timeout: float = 15.0
    barge_in_after: float | None = None
    expect: tuple[Expect, ...] = ()
    name: str | None = None

    def __post_init__(self) -> None:
        if self.say is not None:
            _text("say", self.say, MAX_TEXT_CHARS)
        if self.audio is not None:
            if not isinstance(self.audio, (str, Path)) or not str(self.audio).strip():
                raise ConfigurationError(f"audio must be a file path, got {_shown(self.audio)}")
            object.__setattr__(self, "audio", Path(self.audio))
        if self.say is not None and self.audio is not None:
            raise ConfigurationError("a turn says text ('say') or plays a file ('audio'), not both")
        if self.silence is not None:
            seconds("silence", self.silence)
            if self.speaks:
                raise ConfigurationError("'silence' is a turn that says nothing: not with 'say' or 'audio'")
        elif not self.speaks:
            raise ConfigurationError("a turn needs 'say' (text), 'audio' (a file) or 'silence' (seconds)")
        seconds("answer_silence", self.answer_silence, low=MIN_ANSWER_SILENCE, low_inclusive=True, high=60.0)
        seconds("timeout", self.timeout)
        if self.speaks and self.barge_in_after is None and self.timeout <= self.answer_silence:
            raise ConfigurationError(f"timeout ({self.timeout:g} s) must be longer than answer_silence"
                                     f" ({self.answer_silence:g} s): the answer is over only after that much"
                                     " silence, which must come within the timeout")
        if self.barge_in_after is not None:
            seconds("barge_in_after", self.barge_in_after, low_inclusive=True)
            if not self.speaks:
                raise ConfigurationError("'barge_in_after' needs something said first: the answer it interrupts")
        if not isinstance(self.expect, (tuple, list)):
            raise ConfigurationError(f"expect must be a list of expectations, got {_shown(self.expect)}")
        if len(self.expect) > MAX_EXPECTATIONS:
            raise ConfigurationError(f"expect lists {len(self.expect)} expectations; at most {MAX_EXPECTATIONS}")
        if not all(isinstance(e, Expect) for e in self.expect):
            raise ConfigurationError("expect must hold Expect objects")
        object.__setattr__(self, "expect", tuple(self.expect))
        if self.name is not None:
            _text("name", self.name, 200)

    @property
    def speaks(self) -> bool:
        """Whether the turn says something (text or a file)."""
        return self.say is not None or self.audio is not None

    @property
    def label(self) -> str:
        """How reports name what the turn said."""
        if self.name:
            return self.name
        if self.say is not None:
            return self.say
        if self.audio is not None:
            return Path(self.audio).name
        return f"{self.silence:g} s of silence"


_UPDATE_FIELDS = ("voice", "model", "temperature", "instructions", "modalities")


@dataclass(frozen=True)
class Update:
    """A ``session.update`` step between turns (Orga sessions only): the fields given are sent."""

    voice: str | None = None
    model: str | None = None
    temperature: float | None = None
    instructions: str | None = None
    modalities: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.modalities, list):
            object.__setattr__(self, "modalities", tuple(self.modalities))
        validate_params(voice=self.voice, model=self.model, temperature=self.temperature,
                        modalities=self.modalities, instructions=self.instructions)
        if isinstance(self.instructions, str) and len(self.instructions) > 20_000:
            raise ConfigurationError(f"instructions are {len(self.instructions)} characters; at most 20000")
        if not self.fields():
            raise ConfigurationError(f"an update needs at least one of {', '.join(_UPDATE_FIELDS)}")

    def fields(self) -> dict[str, Any]:
        """The keyword arguments of ``session.update(...)``."""
        values = {name: getattr(self, name) for name in _UPDATE_FIELDS if getattr(self, name) is not None}
        if "modalities" in values:
            values["modalities"] = list(values["modalities"])
        return values


Step = Turn | Update


@dataclass(frozen=True)
class Script:
    """A conversation: ``steps`` (turns and updates) in order, and a ``name`` for reports."""

    steps: tuple[Step, ...]
    name: str = "conversation"
    source: Path | None = field(default=None, compare=False)  # the file it was loaded from

    def __post_init__(self) -> None:
        if isinstance(self.steps, list):
            object.__setattr__(self, "steps", tuple(self.steps))
        if not isinstance(self.steps, tuple) or not all(isinstance(s, (Turn, Update)) for s in self.steps):
            raise ConfigurationError("a script's steps are Turn and Update objects")
        if not any(isinstance(s, Turn) for s in self.steps):
            raise ConfigurationError("a script needs at least one turn")
        if len(self.steps) > MAX_STEPS:
            raise ConfigurationError(f"a script has at most {MAX_STEPS} steps, got {len(self.steps)}")
        _text("name", self.name, 200)
        for number, step in enumerate(self.steps, 1):
            if isinstance(step, Turn) and step.barge_in_after is not None:
                following = self.steps[number] if number < len(self.steps) else None
                if not isinstance(following, Turn) or not following.speaks:
                    raise ConfigurationError(f"turn {number}: barge_in_after needs a next turn that says something"
                                             " (it is what talks over the answer)")

    @property
    def turns(self) -> tuple[Turn, ...]:
        """The turns, without the updates."""
        return tuple(s for s in self.steps if isinstance(s, Turn))

    @property
    def needs_events(self) -> bool:
        """Whether the script expects events or updates the session (an Orga session, not an Orbit call)."""
        return any(isinstance(s, Update) or (isinstance(s, Turn) and s.expect) for s in self.steps)
