"""Scripted conversations with voice agents, measured on the wire at the caller.

A :class:`Script` of turns (say something, then wait for the answer, barge in on it, or stay
silent; ``session.update`` steps; expectations on the events) runs over an Orga session or an
Orbit call whose audio source is an :class:`UtteranceSource`::

    script = Script([Turn(say="What is the weather like today?",
                          expect=[Expect("transcript", contains="weather")])])
    source = UtteranceSource()
    async with peerbot.orga.connect(source=source, return_transcription=True) as session:
        result = await converse(script, session, source)
    print(result.summary()["v2v_ms_p95"])

Per turn: voice-to-voice latency (the end of our speech as sent → the first received
audio the VAD calls speech), answer duration, barge-in stop latency and whether it stopped, the
turn's events and expectations. ``peerbot converse SCRIPT`` is the command line.
"""

from __future__ import annotations

from .listener import FarSideSpeech, SpeechSegment
from .loader import load_script, parse_script
from .measure import STOP_TIMEOUT
from .report import write_conversation_report
from .results import (
    SUMMARY_METRICS,
    BargeIn,
    ConversationResult,
    ExpectationResult,
    TurnEvent,
    TurnResult,
    UpdateResult,
    summarize_turns,
)
from .runner import ConversationRunner, converse, prepare_utterances
from .script import Expect, Script, Step, Turn, Update
from .thresholds import CONVERSATION, parse_threshold
from .utterance import SentUtterance, Utterance, UtteranceSource

__all__ = [
    "CONVERSATION", "STOP_TIMEOUT", "SUMMARY_METRICS", "BargeIn", "ConversationResult", "ConversationRunner", "Expect",
    "ExpectationResult", "FarSideSpeech", "Script", "SentUtterance", "SpeechSegment", "Step", "Turn", "TurnEvent",
    "TurnResult", "Update", "UpdateResult", "Utterance", "UtteranceSource", "converse", "load_script",
    "parse_script", "parse_threshold", "prepare_utterances", "summarize_turns", "write_conversation_report",
]
