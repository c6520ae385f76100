"""Running a script over a session: speak each turn, listen to the far side, note the times.

One :class:`UtteranceSource` is the session's audio (silence between turns, real time); a task
runs the received audio through the VAD (:class:`FarSideSpeech`), another notes each data-channel
event with its arrival time. Waits follow the far side's audio as it arrives (is the answer over,
when to barge in); the figures are computed once the conversation is over (:mod:`.measure`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ConfigurationError, PeerbotError
from ..orga.events import SESSION_UPDATED, Event
from ..quality.metrics import summarize
from .listener import FarSideSpeech
from .measure import TurnRecord, UpdateRecord, event_text, measure_turn, measure_update
from .results import ConversationResult, TurnEvent
from .script import Script, Turn, Update
from .utterance import SAMPLE_RATE, Utterance, UtteranceSource

log = logging.getLogger(__name__)

__all__ = ["ConversationRunner", "converse", "prepare_utterances"]

UPDATE_ACK_TIMEOUT = 5.0
PRIMING_SECONDS = 3.0
_SEND_MARGIN = 5.0  # beyond an utterance's own length, the longest its sending may take


def prepare_utterances(script: Script) -> dict[int, Utterance]:
    """Each speaking turn's audio by step number (1-based): text through the TTS, files decoded.
    Blocking (TTS runs a program): call it before the call, or in a thread."""
    cache: dict[tuple[str, str], Utterance] = {}
    prepared = {}
    for number, step in enumerate(script.steps, 1):
        if not isinstance(step, Turn) or not step.speaks:
            continue
        key = ("say", step.say) if step.say is not None else ("audio", str(step.audio))
        if key not in cache:
            try:
                cache[key] = Utterance.from_text(step.say) if step.say is not None else Utterance.from_file(
                    step.audio or "")
            except ConfigurationError as exc:
                where = f"{script.source}: " if script.source is not None else ""  # as the loader's errors
                raise ConfigurationError(f"{where}turn {number}: {exc}") from None
        prepared[number] = cache[key]
    return prepared


class ConversationRunner:
    """Runs ``script`` over ``session`` (an Orga session or an Orbit call, started, whose audio
    source is ``source``). ``run()`` returns the :class:`ConversationResult`; ``stop()`` ends it
    early (the result says ``interrupted``). While it runs, ``step``, ``phase``, ``turns_done``,
    ``failures`` and ``live_v2v_ms`` (latencies on the arrival clock, for a progress display) show
    where it is."""

    def __init__(self, script: Script, session: Any, source: UtteranceSource, *,
                 utterances: Mapping[int, Utterance] | None = None, index: int = 0) -> None:
        if script.needs_events and not (hasattr(session, "events") and hasattr(session, "update")):
            raise ConfigurationError(f"{type(session).__name__} has no data-channel events: a script with"
                                     " 'expect' or 'update' needs an Orga session")
        if not isinstance(source, UtteranceSource):
            raise ConfigurationError("the session's audio source must be the UtteranceSource given here")
        self.script = script
        self.session = session
        self.source = source
        self.index = index
        self._utterances = dict(utterances) if utterances is not None else None
        self.far = FarSideSpeech()
        self.events: list[tuple[float, Event]] = []
        self._event_arrived = asyncio.Event()
        self._stop = asyncio.Event()
        self._records: list[TurnRecord | UpdateRecord] = []
        self.step = 0
        self.phase = "starting"
        self.turns_done = 0
        self.failures = 0
        self.live_v2v_ms: list[float] = []
        self.error: str | None = None

    def stop(self) -> None:
        """End the conversation after the current wait (the result is marked ``interrupted``)."""
        self._stop.set()

    async def run(self) -> ConversationResult:
        """Run every step; the measured conversation."""
        if self._utterances is None:
            self._utterances = await asyncio.to_thread(prepare_utterances, self.script)
        self._prime_vad()
        origin, started_at = time.monotonic(), time.time()
        tasks = [asyncio.create_task(self._listen(), name="peerbot-conversation-listen")]
        if hasattr(self.session, "events"):
            tasks.append(asyncio.create_task(self._collect_events(), name="peerbot-conversation-events"))
        try:
            await self._run_steps()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.far.finish()
        self.phase = "done"
        return self._result(origin, started_at, time.monotonic())

    def _prime_vad(self) -> None:
        # A few seconds of our own utterances: speech of the kind the far side's will be.
        assert self._utterances is not None
        pieces, seconds = [], 0.0
        for utterance in self._utterances.values():
            pieces.append(utterance.samples[round(utterance.speech_start * SAMPLE_RATE):
                                            round(utterance.speech_end * SAMPLE_RATE)])
            seconds += utterance.speech_end - utterance.speech_start
            if seconds >= PRIMING_SECONDS:
                break
        if pieces and self.far.frames == 0:
            self.far.prime(np.concatenate(pieces), SAMPLE_RATE)

    # --- steps --------------------------------------------------------------------------

    async def _run_steps(self) -> None:
        assert self._utterances is not None
        steps = self.script.steps
        for number, step in enumerate(steps, 1):
            if self._stop.is_set() or self._ended():
                break
            self.step = number
            if isinstance(step, Update):
                await self._update(number, step)
                continue
            record = TurnRecord(number, step, time.monotonic())
            self._records.append(record)
            if step.speaks:
                await self._speak(record, self._utterances[number])
                following = self._utterances.get(number + 1)
                if step.barge_in_after is not None and following is not None:
                    await self._wait_to_barge_in(record, following)
                else:
                    await self._wait_for_answer(record)
            else:
                self.phase = f"turn {number}: silent for {step.silence:g} s"
                assert step.silence is not None
                await self.far.wait_until(lambda: False, record.started_at + step.silence, self._stop)
            record.ended_at = time.monotonic()
            self.turns_done += 1
        if self._ended() and self.error is None:
            self.error = self._end_reason()

    async def _speak(self, record: TurnRecord, utterance: Utterance) -> None:
        self.phase = f"turn {record.number}: saying {utterance.label[:40]!r}"
        saying = asyncio.ensure_future(self.source.say(utterance))
        stop = asyncio.ensure_future(self._stop.wait())
        ended = asyncio.ensure_future(self.session.closed()) if hasattr(self.session, "closed") else stop
        try:
            await asyncio.wait({saying, stop, ended}, timeout=utterance.duration + _SEND_MARGIN,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            ended.cancel()
        if not saying.done():
            saying.cancel()
            self._give_up(record, "our utterance was not all sent (the call stopped taking audio)")
            return
        sent = saying.result()
        if sent.speech_started_at is not None and sent.speech_ended_at is not None:
            record.said = (sent.speech_started_at, sent.speech_ended_at)

    def _answer_started(self, since: float) -> bool:
        if not self.far.segments:
            return False
        last = self.far.segments[-1]
        return last.end is None or self.far.arrival_of(last.end) > since

    def _note_live_v2v(self, since: float) -> None:
        last = self.far.segments[-1]
        start = self.far.arrival_of(last.start)
        if start >= since:
            self.live_v2v_ms.append(round((start - since) * 1000, 1))

    async def _wait_for_answer(self, record: TurnRecord) -> None:
        turn = record.turn
        since = record.said[1] if record.said else time.monotonic()
        deadline = since + turn.timeout
        self.phase = f"turn {record.number}: waiting for the answer"
        if not await self.far.wait_until(lambda: self._answer_started(since), deadline, self._stop):
            self._give_up(record, f"no answer within {turn.timeout:g} s")
            return
        self._note_live_v2v(since)
        self.phase = f"turn {record.number}: listening to the answer"
        if not await self.far.wait_until(lambda: self.far.silent_for() >= turn.answer_silence, deadline, self._stop):
            quiet = self.far.silent_for()
            self._give_up(record, f"the answer went on past the {turn.timeout:g} s timeout" if quiet < 0.3 else
                          f"the answer was not followed by {turn.answer_silence:g} s of silence within the"
                          f" {turn.timeout:g} s timeout (quiet for {quiet:.1f} s when it came)")

    def _give_up(self, record: TurnRecord, why: str) -> None:
        """A wait of the turn ended without what it waited for: time, or the conversation's end."""
        if self._stop.is_set():
            why = "interrupted before the turn was over"
        elif self._ended():
            why = self._end_reason()
        record.gave_up = why
        self.failures += 1

    async def _wait_to_barge_in(self, record: TurnRecord, interruption: Utterance) -> None:
        turn = record.turn
        assert turn.barge_in_after is not None
        since = record.said[1] if record.said else time.monotonic()
        self.phase = f"turn {record.number}: waiting for the answer to barge in on"
        if not await self.far.wait_until(lambda: self._answer_started(since), since + turn.timeout, self._stop):
            self._give_up(record, f"no answer within {turn.timeout:g} s")
            return
        self._note_live_v2v(since)
        answer_start = self.far.arrival_of(self.far.segments[-1].start)
        # Our speech, not our utterance's leading silence, lands barge_in_after seconds into the answer.
        push_at = answer_start + turn.barge_in_after - interruption.speech_start
        self.phase = f"turn {record.number}: barging in after {turn.barge_in_after:g} s of the answer"
        await self.far.wait_until(lambda: self.far.silent_for() >= turn.answer_silence, push_at, self._stop)

    async def _update(self, number: int, step: Update) -> None:
        record = UpdateRecord(number, step.fields(), time.monotonic())
        self._records.append(record)
        self.phase = f"step {number}: session.update"
        try:
            await asyncio.wait_for(self.session.update(**step.fields()), UPDATE_ACK_TIMEOUT)
        except (PeerbotError, asyncio.TimeoutError) as exc:
            record.error = f"session.update was not sent: {exc or type(exc).__name__}"
            self.failures += 1
            return
        deadline = record.started_at + UPDATE_ACK_TIMEOUT
        while (ack := self._ack_after(record.started_at)) is None:
            left = deadline - time.monotonic()
            if left <= 0 or self._stop.is_set() or self._ended():
                break
            self._event_arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event_arrived.wait(), left)
        record.ack_at = ack
        if ack is None and not self._stop.is_set():
            record.error = f"no session.updated within {UPDATE_ACK_TIMEOUT:g} s"
            self.failures += 1

    def _ack_after(self, since: float) -> float | None:
        return next((at for at, e in self.events if at >= since and e.type == SESSION_UPDATED), None)

    # --- background ---------------------------------------------------------------------

    async def _listen(self) -> None:
        try:
            async for frame in self.session.audio_frames(sample_rate=SAMPLE_RATE, max_queue=500):
                self.far.feed(frame, time.monotonic())
        except PeerbotError as exc:  # the session ended abnormally
            self.error = self.error or str(exc)
        finally:
            self.far.finish()

    async def _collect_events(self) -> None:
        with contextlib.suppress(PeerbotError):
            async for event in self.session.events():
                self.events.append((time.monotonic(), event))
                self._event_arrived.set()

    def _ended(self) -> bool:
        return self.far.ended or getattr(self.session, "state", "connected") in ("closed", "failed")

    def _end_reason(self) -> str:
        return f"the session ended: {getattr(self.session, 'end_reason', None) or 'no more audio'}"

    # --- the result ---------------------------------------------------------------------

    def _result(self, origin: float, started_at: float, ended_at: float) -> ConversationResult:
        far = self.far.timed_segments()
        result = ConversationResult(self.script.name, index=self.index,
                                    conversation_id=getattr(self.session, "conversation_id", None)
                                    or getattr(self.session, "call_id", None),
                                    started_at=started_at, duration_s=round(ended_at - origin, 3),
                                    error=self.error, interrupted=self._stop.is_set(), origin=origin)
        for i, record in enumerate(self._records):
            window_end = self._records[i + 1].started_at if i + 1 < len(self._records) else ended_at
            if isinstance(record, UpdateRecord):
                result.updates.append(measure_update(record, origin))
                continue
            following = self._records[i + 1] if i + 1 < len(self._records) else None
            interrupter = following if record.turn.barge_in_after is not None and isinstance(following, TurnRecord) \
                else None
            events = [(at, e) for at, e in self.events if record.started_at <= at < window_end]
            result.turns.append(measure_turn(record, far, events, origin=origin, window_end=window_end,
                                             interrupter=interrupter))
        result.caller_speech = [(round(r.said[0] - origin, 3), round(r.said[1] - origin, 3))
                                for r in self._records if isinstance(r, TurnRecord) and r.said]
        result.far_speech = [(round(s - origin, 3), None if e is None else round(e - origin, 3)) for s, e in far]
        result.events = [TurnEvent(e.type, round(at - origin, 3), event_text(e)) for at, e in self.events]
        with contextlib.suppress(Exception):  # the call's quality is a bonus: never lose the conversation for it
            history = self.session.stats_history()
            result.history = [dict(s) for s in history]
            result.call_quality = dict(summarize(history))
        return result


async def converse(script: Script, session: Any, source: UtteranceSource, **options: Any) -> ConversationResult:
    """Run ``script`` over a started ``session`` whose audio source is ``source``: the measured conversation."""
    return await ConversationRunner(script, session, source, **options).run()
