"""From what the runner noted (our utterances' send times, the far side's speech segments, the
events with their arrival times) to each turn's figures. Pure functions of monotonic times, so
they are checked on synthetic timelines as well as on real calls.

- **Voice to voice**: the end of our speech sent (its last voiced frame) → the start of the first
  far-side speech segment after it. When the far side was already speaking as we finished, there is no
  such latency (it talked over us): the turn notes it.
- **Answer duration**: from that start through every segment that follows within the turn's
  ``answer_silence`` of the previous one.
- **Barge-in**: the first sound of the next turn's speech sent → the end of the far-side segment
  under it (where its sound stops), provided that end comes while we still speak and the far side
  stays silent from there until our interruption ends (a pause it resumes from is not a stop).
  Speech that goes on past the end of our interruption (an agent that talks through it and ends
  its reply afterwards), or no such end within ``STOP_TIMEOUT``: it did not stop. Begun in a
  pause of the answer that never resumes: stopped, in 0 ms (noted).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from ..orga.events import Event, InputTranscriptionCompleted, ResponseOutputItemDone
from .results import BargeIn, ExpectationResult, TurnEvent, TurnResult, UpdateResult
from .script import Expect, Turn

__all__ = ["STOP_TIMEOUT", "Span", "TurnRecord", "UpdateRecord", "measure_turn", "event_text"]

STOP_TIMEOUT = 2.0
"""Seconds after our barge-in began within which the far side must stop to count as stopped."""

Span = tuple[float, float | None]  # far-side speech, monotonic (end None: it went on to the end)


@dataclass
class TurnRecord:
    """What the runner noted of a turn: monotonic times. ``said``: when our speech's first sound
    and its end went out (``Utterance``); ``gave_up``: why the runner stopped waiting, if it did."""

    number: int
    turn: Turn
    started_at: float
    ended_at: float = 0.0
    said: tuple[float, float] | None = None
    gave_up: str | None = None


@dataclass
class UpdateRecord:
    """What the runner noted of an update step."""

    number: int
    fields: dict[str, object]
    started_at: float
    ack_at: float | None = None
    error: str | None = None


def event_text(event: Event) -> str | None:
    """The text an event carries: a transcript, a reply, else None."""
    if isinstance(event, InputTranscriptionCompleted):
        return event.transcript
    if isinstance(event, ResponseOutputItemDone):
        return event.text
    return None


def measure_turn(record: TurnRecord, far: Sequence[Span], events: Sequence[tuple[float, Event]], *,
                 origin: float, window_end: float, interrupter: TurnRecord | None = None) -> TurnResult:
    """The figures of one turn. ``far``: every far-side speech segment of the conversation, in
    order; ``events``: those that arrived during the turn (``[started_at, window_end)``);
    ``interrupter``: the next turn, when this one has ``barge_in_after``."""
    turn = record.turn

    def t(x: float) -> float:
        return round(x - origin, 3)

    failures: list[str] = []
    notes: list[str] = []
    turn_events = tuple(TurnEvent(e.type, t(at), event_text(e)) for at, e in events)
    expectations = tuple(_check(expect, events, origin) for expect in turn.expect)  # t: as the events'
    failures += [_unmet(expect, events) for expect, r in zip(turn.expect, expectations) if not r.passed]
    base = TurnResult(record.number, "say" if turn.speaks else "silence", turn.label, t(record.started_at),
                      t(record.ended_at), events=turn_events, expectations=expectations)
    if not turn.speaks:
        spoke = sum(max(0.0, min(record.ended_at, math.inf if e is None else e) - max(record.started_at, s))
                    for s, e in far)
        if spoke > 0:
            notes.append(f"the far side spoke {spoke:.2f} s during the silence")
        return replace(base, far_side_speech_s=round(spoke, 3), failures=tuple(failures), notes=tuple(notes))
    if record.said is None:
        return replace(base, failures=(record.gave_up or "our utterance was not sent", *failures))
    speech_start, speech_end = record.said
    under = next((i for i, (s, e) in enumerate(far) if s < speech_end and _after(e, speech_end)), None)
    first = under if under is not None else next(
        (i for i, (s, _) in enumerate(far) if speech_end <= s < window_end), None)
    v2v = None
    if under is not None:
        notes.append("the far side was speaking when our utterance ended: no voice-to-voice latency")
    elif first is not None:
        v2v = round((far[first][0] - speech_end) * 1000, 1)
    barge_in = None
    answer = None
    response = None
    if first is None:
        failures.insert(0, record.gave_up or f"no answer within {turn.timeout:g} s")
    else:
        limit = interrupter.said[1] if interrupter is not None and interrupter.said else window_end
        end = _answer_end(far, first, turn.answer_silence, limit)
        if end is not None and record.gave_up and end > record.ended_at:
            end = None  # still going when we stopped waiting (cut by what came next): its length is unknown
        answer = (t(far[first][0]), None if end is None else t(end))
        response = None if end is None else round(end - far[first][0], 3)
        if record.gave_up:
            failures.insert(0, record.gave_up)
        if turn.barge_in_after is not None:
            barge_in = _barge_in(far, first, turn, interrupter, failures, notes)
    return replace(base, said=(t(speech_start), t(speech_end)), answer=answer, v2v_ms=v2v, response_s=response,
                   barge_in=barge_in, failures=tuple(failures), notes=tuple(notes))


def measure_update(record: UpdateRecord, origin: float) -> UpdateResult:
    """An update step's result: ``ack_ms`` from sending to ``session.updated``."""
    ack = None if record.ack_at is None else round((record.ack_at - record.started_at) * 1000, 1)
    return UpdateResult(record.number, dict(record.fields), round(record.started_at - origin, 3), ack, record.error)


def _answer_end(far: Sequence[Span], first: int, gap: float, limit: float) -> float | None:
    end = far[first][1]
    for start, following in far[first + 1:]:
        if end is None or start >= limit or start - end >= gap:
            break
        end = following
    return end


def _barge_in(far: Sequence[Span], first: int, turn: Turn, interrupter: TurnRecord | None,
              failures: list[str], notes: list[str]) -> BargeIn | None:
    assert turn.barge_in_after is not None
    planned = turn.barge_in_after
    if interrupter is None or interrupter.said is None:
        failures.append("the barge-in was not sent")
        return None
    ours, ours_end = interrupter.said
    at = round(ours - far[first][0], 3)
    answer_end = _answer_end(far, first, turn.answer_silence, ours)
    if answer_end is not None and answer_end + turn.answer_silence <= ours:
        failures.append(f"the answer ended {answer_end - far[first][0]:.2f} s in, before the barge-in at"
                        f" {planned:g} s: nothing to interrupt")
        return None
    # The far-side speech going on at our first sound, or the next one if we began in a pause.
    going = next((i for i in range(first, len(far)) if _after(far[i][1], ours)), None)
    if going is None or far[going][0] >= ours_end:
        quiet_since = answer_end if answer_end is not None else ours
        notes.append(f"our barge-in began in a pause of the answer ({ours - quiet_since:.2f} s after its sound"
                     " stopped), and it did not resume")
        # Stopped, but nothing was cut: no stop latency to count (a 0 would flatter the p95).
        return BargeIn(planned, at, None, True)
    stop = None
    for i in range(going, len(far)):
        end = far[i][1]
        if end is None:
            break
        resumed = i + 1 < len(far) and far[i + 1][0] < ours_end
        if not resumed:
            stop = end
            break
    if stop is not None and stop > ours_end and stop - ours <= STOP_TIMEOUT:
        # Its speech went on to after ours was over: it talked through the whole interruption (an
        # agent that does not stop just ends its reply there); a stop must come while we speak.
        failures.append(f"the far side did not stop while we talked over it: its speech went on"
                        f" {stop - ours_end:.2f} s past the end of ours ({stop - ours:.2f} s after our barge-in"
                        " began)")
        return BargeIn(planned, at, None, False)
    if stop is not None and stop - ours <= STOP_TIMEOUT:
        return BargeIn(planned, at, round(max(0.0, stop - ours) * 1000, 1), True)
    if stop is not None:
        notes.append(f"the far side's speech ended {stop - ours:.2f} s after our barge-in began")
    failures.append(f"the far side did not stop within {STOP_TIMEOUT:g} s of our barge-in")
    return BargeIn(planned, at, None, False)


def _after(end: float | None, moment: float) -> bool:
    """Whether speech ending at ``end`` (None: it never ended) was still going at ``moment``."""
    return end is None or end > moment


def _check(expect: Expect, events: Sequence[tuple[float, Event]], since: float) -> ExpectationResult:
    wanted = _normal(expect.contains) if expect.contains is not None else None
    for at, event in events:
        if event.type != expect.event_type:
            continue
        text = event_text(event)
        if text is None:
            text = json.dumps(event.raw, ensure_ascii=False)[:2000]
        if wanted is None or wanted in _normal(text):
            return ExpectationResult(str(expect), True, text[:500], round(at - since, 3))
    return ExpectationResult(str(expect), False)


def _unmet(expect: Expect, events: Sequence[tuple[float, Event]]) -> str:
    texts = [event_text(e) or "" for _, e in events if e.type == expect.event_type]
    if not texts:
        return f"expected {expect}: no {expect.event} event came during the turn"
    shown = "; ".join(repr(text[:80]) for text in texts[:3])
    return f"expected {expect}: got {shown}"


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())
