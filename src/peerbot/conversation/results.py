"""What a conversation measured: per turn, per conversation, and over several conversations.

Times in a result are seconds since the conversation started (``t`` fields) or durations; every
figure is measured at the caller, on the wire: our side from the samples we sent, the far side's
from the audio and events we received.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..quality.metrics import Metric

__all__ = ["BargeIn", "ConversationResult", "ExpectationResult", "SUMMARY_METRICS", "TurnEvent", "TurnResult",
           "UpdateResult", "summarize_turns"]


@dataclass(frozen=True)
class TurnEvent:
    """A data-channel event of the turn: its type, its text (transcript or reply, if any) and
    ``t``, when it arrived."""

    type: str
    t: float
    text: str | None = None


@dataclass(frozen=True)
class ExpectationResult:
    """An expectation of the turn and whether an event met it (``matched``: that event's text, ``t``:
    its arrival, in seconds since the conversation started, like every other ``t``)."""

    expectation: str
    passed: bool
    matched: str | None = None
    t: float | None = None


@dataclass(frozen=True)
class BargeIn:
    """The next turn talking over this turn's answer.

    ``planned_s``: the script's ``barge_in_after``; ``at_s``: how far into the answer our voice
    actually started; ``stop_ms``: from the first sound of our speech sent to where the far side's
    sound stopped (None when it did not stop, or was already quiet: we began in a pause);
    ``stopped``: whether it stopped while we were still speaking (and within ``STOP_TIMEOUT``) and
    stayed silent for the rest of what we said.
    """

    planned_s: float
    at_s: float | None
    stop_ms: float | None
    stopped: bool


@dataclass(frozen=True)
class TurnResult:
    """One turn, as measured.

    ``v2v_ms``: voice to voice, from the end of our speech sent (its last voiced frame) to the first
    received audio the VAD calls speech (None without an answer, or when the far side was already speaking
    as we finished); ``response_s``: how long the answer lasted (pauses shorter than the turn's
    ``answer_silence`` included); ``said``: our speech (``t`` of its first sound, of its end); ``failures``: why the
    turn failed (empty: it passed); ``notes``: what else is worth knowing.
    """

    number: int
    kind: str  # "say", "silence"
    label: str
    started_t: float
    ended_t: float
    said: tuple[float, float] | None = None
    answer: tuple[float, float | None] | None = None
    v2v_ms: float | None = None
    response_s: float | None = None
    barge_in: BargeIn | None = None
    far_side_speech_s: float | None = None  # a silent turn: how long the far side spoke meanwhile
    events: tuple[TurnEvent, ...] = ()
    expectations: tuple[ExpectationResult, ...] = ()
    failures: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        """Whether anything of the turn failed (no answer, no stop, an expectation unmet)."""
        return bool(self.failures)

    def to_dict(self) -> dict[str, Any]:
        """The turn as the JSON report holds it."""
        return {**asdict(self), "failed": self.failed}


@dataclass(frozen=True)
class UpdateResult:
    """A ``session.update`` step: when it was sent, whether ``session.updated`` came (``ack_ms``)."""

    number: int
    fields: dict[str, Any]
    sent_t: float
    ack_ms: float | None
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "failed": self.failed}


SUMMARY_METRICS: Mapping[str, Metric] = {m.name: m for m in (
    Metric("v2v_ms", "ms", "gauge", "voice-to-voice latency"),
    Metric("response_s", "s", "gauge", "answer duration"),
    Metric("barge_in_stop_ms", "ms", "gauge", "barge-in stop latency"),
    Metric("turns", "", "cumulative", "turns"),
    Metric("turns_failed", "", "cumulative", "turns failed"),
    Metric("expectations", "", "cumulative", "expectations"),
    Metric("expectations_failed", "", "cumulative", "expectations failed"),
    Metric("barge_ins", "", "cumulative", "barge-ins"),
    Metric("barge_ins_not_stopped", "", "cumulative", "barge-ins the far side did not stop for"),
    Metric("updates_failed", "", "cumulative", "updates not acknowledged"),
    Metric("conversations", "", "cumulative", "conversations"),
    Metric("conversations_failed", "", "cumulative", "conversations failed"),
)}
"""The figures of a conversation summary: three over turns (with ``_p50 _p95 _min _max _mean``;
the plain name is the mean), the rest counts."""

OVER_TURNS = ("v2v_ms", "response_s", "barge_in_stop_ms")
STATISTICS = ("p50", "p95", "min", "max", "mean")


@dataclass
class ConversationResult:
    """One conversation: its turns and updates, the speech of both sides (``caller_speech``,
    ``far_speech``: ``(from, to)`` in ``t``), the events, and whether it ran to the end (``error``:
    why not; ``interrupted``: stopped by the user)."""

    script: str
    index: int = 0
    conversation_id: str | None = None
    started_at: float = 0.0  # time.time() of t = 0
    duration_s: float = 0.0
    turns: list[TurnResult] = field(default_factory=list)
    updates: list[UpdateResult] = field(default_factory=list)
    caller_speech: list[tuple[float, float]] = field(default_factory=list)
    far_speech: list[tuple[float, float | None]] = field(default_factory=list)
    events: list[TurnEvent] = field(default_factory=list)
    error: str | None = None
    interrupted: bool = False
    origin: float = field(default=0.0, repr=False)  # time.monotonic() of t = 0, to compare with other clocks
    call_quality: dict[str, Any] = field(default_factory=dict)  # the session's summary (quality.summarize)
    history: list[dict[str, Any]] = field(default_factory=list)  # its per-second samples

    @property
    def failed(self) -> bool:
        """A turn or update failed, or the conversation did not run to its end."""
        return (self.error is not None or any(t.failed for t in self.turns) or any(u.failed for u in self.updates))

    def summary(self) -> dict[str, float | None]:
        """p50/p95/min/max/mean over the turns, and the counts (see :data:`SUMMARY_METRICS`)."""
        return summarize_turns([self])

    def to_dict(self) -> dict[str, Any]:
        """The conversation as the JSON report holds it."""
        return {"index": self.index, "script": self.script, "conversation_id": self.conversation_id,
                "duration_s": self.duration_s, "failed": self.failed, "error": self.error,
                "interrupted": self.interrupted, "summary": self.summary(),
                "turns": [t.to_dict() for t in self.turns], "updates": [u.to_dict() for u in self.updates],
                "caller_speech": self.caller_speech, "far_speech": self.far_speech,
                "events": [asdict(e) for e in self.events], "call_quality": self.call_quality}


def summarize_turns(conversations: Iterable[ConversationResult]) -> dict[str, float | None]:
    """The summary over every turn of ``conversations`` (one, or all of a ``--parallel`` run)."""
    conversations = list(conversations)
    turns = [t for c in conversations for t in c.turns]
    values: dict[str, list[float]] = {
        "v2v_ms": [t.v2v_ms for t in turns if t.v2v_ms is not None],
        "response_s": [t.response_s for t in turns if t.response_s is not None],
        "barge_in_stop_ms": [t.barge_in.stop_ms for t in turns if t.barge_in and t.barge_in.stop_ms is not None],
    }
    summary: dict[str, float | None] = {}
    for name in OVER_TURNS:
        stats = _statistics(values[name])
        summary[name] = stats["mean"]
        summary.update({f"{name}_{s}": v for s, v in stats.items()})
    barge_ins = [t.barge_in for t in turns if t.barge_in is not None]
    summary.update({
        "turns": float(len(turns)),
        "turns_failed": float(sum(t.failed for t in turns)),
        "expectations": float(sum(len(t.expectations) for t in turns)),
        "expectations_failed": float(sum(not e.passed for t in turns for e in t.expectations)),
        "barge_ins": float(len(barge_ins)),
        "barge_ins_not_stopped": float(sum(not b.stopped for b in barge_ins)),
        "updates_failed": float(sum(u.failed for c in conversations for u in c.updates)),
        "conversations": float(len(conversations)),
        "conversations_failed": float(sum(c.failed for c in conversations)),
    })
    return summary


def _statistics(values: Sequence[float]) -> dict[str, float | None]:
    # Linear-interpolated percentiles, as the call-quality summary's (numpy's default).
    if not values:
        return dict.fromkeys(STATISTICS)
    array = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(array, 50)), "p95": float(np.percentile(array, 95)),
            "min": float(array.min()), "max": float(array.max()),
            "mean": min(max(float(array.mean()), float(array.min())), float(array.max()))}
