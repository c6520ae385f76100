"""The embedded server's voice agent over real loopback sessions: it understands flite's speech,
answers on its own clock (endpointing, then think time), stops when talked over, and its
settings are checked where they are given (constructor, ``peerbot serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from peerbot import orga
from peerbot.cli import serve as serve_command
from peerbot.cli.main import main
from peerbot.errors import ConfigurationError
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.local.voice_agent import AgentCall, AgentEvent, speech_only
from peerbot.media import AudioSource
from peerbot.media.speech_synthesis import synthesize
from peerbot.media.vad import VoiceActivityDetector
from peerbot.orga import events as ev

from conftest import USER_EMAIL

TURN_TIMEOUT = 15.0


@functools.lru_cache(maxsize=None)
def spoken(text: str) -> tuple[np.ndarray, int]:
    speech = synthesize(text)
    return speech.samples, speech.sample_rate


def word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions, insertions and deletions between two word sequences (Levenshtein over words)."""
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, 1):
        previous, row[0] = row[0], i
        for j, other in enumerate(hyp, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != other))
    return row[-1]


@dataclass
class Heard:
    """What the caller hears: when each start and end of speech in the received audio arrived."""

    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)


async def listen(session: orga.OrgaSession, heard: Heard) -> None:
    vad = VoiceActivityDetector(48000)
    arrivals: list[tuple[int, float]] = []  # (end sample, arrival)
    total = 0
    async for frame in session.audio_frames(sample_rate=48000, channels=1):
        arrived = time.monotonic()
        total += frame.samples
        arrivals = [*arrivals[-200:], (total, arrived)]
        for edge in vad.feed(frame.data.reshape(-1)):
            sample = round(edge.position * 48000) - (edge.kind == "end")  # an end is after its last sample
            (heard.starts if edge.kind == "start" else heard.ends).append(next(t for end, t in arrivals if end > sample))


@dataclass
class Conversation:
    server: LocalOrgaServer
    session: orga.OrgaSession
    source: AudioSource
    call: AgentCall
    heard: Heard

    async def say(self, text: str) -> None:
        """Send ``text`` spoken by flite and return once its last sample has been sent."""
        samples, rate = spoken(text)
        await self.source.capture(samples, rate)
        await self.source.wait_for_playout()

    async def event(self, kind: str, count: int = 1) -> AgentEvent:
        return await asyncio.wait_for(self.call.wait_for(kind, count), TURN_TIMEOUT)


@contextlib.asynccontextmanager
async def conversation(**agent: object) -> AsyncIterator[Conversation]:
    async with LocalOrgaServer(assistant="agent", **agent) as server:
        source = AudioSource(sample_rate=16000, queue_seconds=20.0)
        async with orga.connect(source, api_key=server.api_key, base_url=server.base_url, user_email=USER_EMAIL,
                                return_transcription=True) as session:
            call = server.calls[session.conversation_id]
            assert isinstance(call, AgentCall)
            heard = Heard()
            listening = asyncio.create_task(listen(session, heard))
            try:
                yield Conversation(server, session, source, call, heard)
            finally:
                listening.cancel()
                await asyncio.gather(listening, return_exceptions=True)


async def transcripts(session: orga.OrgaSession, count: int) -> list[str]:
    got: list[str] = []
    async for event in session.events():
        if isinstance(event, ev.InputTranscriptionCompleted):
            got.append(event.transcript)
            if len(got) == count:
                break
    return got


SENTENCES = ("what is the weather like in paris tomorrow morning", "turn off the lights in the kitchen",
             "i would like to order a large pizza")


async def test_the_agent_transcribes_flite_sentences_with_a_low_word_error_rate_and_says_them_back():
    # Measured on flite slt through Opus and pocketsphinx's bundled US English model, decoded live:
    # the first two exactly, the third at most loses its "a": 0 or 1 error in 24 words (WER <= 4 %).
    # Over 13 such sentences the same path makes 5 errors in 90 words (5.6 %).
    async with conversation(endpointing=0.4, think_time=0.2) as talk:
        reading = asyncio.create_task(transcripts(talk.session, len(SENTENCES)))
        for count, sentence in enumerate(SENTENCES, 1):
            await talk.say(sentence)  # the next one talks over (and so drops) the reply to this one
            await talk.event("endpoint", count)
        heard = await asyncio.wait_for(reading, TURN_TIMEOUT)
        reply = await talk.event("reply_finished")  # the one to the last sentence
    errors = sum(word_errors(ref, hyp) for ref, hyp in zip(SENTENCES, heard))
    words = sum(len(s.split()) for s in SENTENCES)
    print(f"\nheard {heard}; WER {errors}/{words} = {errors / words:.1%}")
    assert heard[0] == SENTENCES[0]
    assert errors / words <= 0.10
    assert reply.detail["text"] == f"you said: {heard[-1]}"


async def test_the_reply_starts_think_time_after_an_endpoint_that_is_endpointing_after_the_speech():
    endpointing, think_time = 0.4, 0.7
    async with conversation(endpointing=endpointing, think_time=think_time) as talk:
        for turn, phrase in enumerate(("hello how are you today", "can you tell me the time", "wait a moment please"), 1):
            await talk.say(phrase)
            await talk.event("reply_finished", turn)
        timeline = talk.call.timeline
        starts = list(talk.heard.starts)
    ended = [e.at for e in timeline if e.kind == "speech_ended"]
    endpoints = [e.at for e in timeline if e.kind == "endpoint"]
    replies = [e for e in timeline if e.kind == "reply_started"]
    silence_ms = [round((p - e) * 1000, 1) for e, p in zip(ended, endpoints)]
    think_ms = [round((r.at - p) * 1000, 1) for p, r in zip(endpoints, replies)]
    # The caller's own VAD on what it received: the reply's first frame is already speech. (A VAD
    # that has heard no speech yet takes three frames of the Opus-coded onset: ~60 ms on turn 1.)
    heard_ms = [round((min(s for s in starts if s >= r.at - 0.01) - r.at) * 1000, 1) for r in replies]
    print(f"\nendpoint - speech end {silence_ms} ms (want {endpointing * 1000:g}); reply - endpoint {think_ms} ms"
          f" (want {think_time * 1000:g}); heard at the caller {heard_ms} ms after the reply left")
    assert len(ended) == len(endpoints) == len(replies) == 3
    assert all(abs(ms - endpointing * 1000) <= 40 for ms in silence_ms)
    assert all(abs(ms - think_time * 1000) <= 40 for ms in think_ms)
    assert all(r.detail["late"] == 0 for r in replies)  # recognition and synthesis fit in the think time
    assert all(0 <= ms <= 100 for ms in heard_ms)  # one way through Opus and the jitter buffer


async def test_speaking_over_the_reply_stops_it_within_150_ms_and_the_interruption_is_answered():
    async with conversation(endpointing=0.3, think_time=0.2) as talk:
        await talk.say(SENTENCES[0])  # answered with 3 s of speech
        started = await talk.event("reply_started")
        await asyncio.sleep(0.8)  # past the pause after "you said"
        await talk.say("wait a moment please")
        stopped = await talk.event("reply_stopped")
        interruption = await talk.event("speech_started", 2)
        answer = await talk.event("reply_started", 2)
        assert not talk.call.events("reply_finished")  # the first never finished; the second is playing
        fell_silent = max(end for end in talk.heard.ends if end <= stopped.at + 0.06)
        heard_again = [start for start in talk.heard.starts if stopped.at < start < answer.at - 0.01]
    stop_ms = (stopped.at - interruption.at) * 1000
    print(f"\nreply stopped {stop_ms:.0f} ms after the caller started over it,"
          f" {stopped.at - started.at:.2f} s into the reply; the caller's VAD put its end at"
          f" {(fell_silent - stopped.at) * 1000:+.0f} ms from that")
    assert stopped.detail["barged_in"] is True
    assert 0 < stop_ms <= 150
    # The caller's VAD agrees: the last speech ended by then (earlier when the cut fell in a pause
    # between words), and nothing was heard again until the answer.
    assert stopped.at - fell_silent <= 0.25 and not heard_again
    assert answer.detail["heard"] == "wait a moment please"


async def test_with_barge_in_off_the_reply_plays_to_its_end_and_the_interruption_is_answered_after():
    async with conversation(endpointing=0.3, think_time=0.2, barge_in=False) as talk:
        await talk.say(SENTENCES[0])  # answered with 3 s of speech
        started = await talk.event("reply_started")
        await asyncio.sleep(0.3)
        await talk.say("wait a moment please")
        finished = await talk.event("reply_finished")
        answer = await talk.event("reply_started", 2)
        assert not talk.call.events("reply_stopped")  # (the second is stopped when the call ends)
    assert finished.at - started.at == pytest.approx(started.detail["duration"], abs=0.04)
    assert [e.detail["barged_in"] for e in talk.call.events("reply_stopped")] == [False]  # cut by the hang-up
    # Its turn ended while the first reply played: it waited for the end (send ticks jitter by ms).
    assert answer.at >= finished.at - 0.02 and answer.at - answer.detail["due"] > 0.3
    assert answer.detail["heard"] == "wait a moment please"


def test_speech_only_trims_the_silence_flite_puts_before_and_after_speech():
    samples, rate = spoken("hello")
    trimmed = speech_only(samples, rate)
    assert 0.1 < (samples.size - trimmed.size) / rate < 0.6
    first = trimmed[: rate // 50].astype(np.float64)  # the first 20 ms frame
    assert 20 * math.log10(np.sqrt(np.mean(first**2)) / 32768) > -50  # already speech, above the VAD's floor


@pytest.mark.parametrize("settings, message", [
    ({"endpointing": -0.1}, "endpointing must be a number of seconds"),
    ({"think_time": math.nan}, "think_time must be a number of seconds"),
    ({"think_time": math.inf}, "think_time must be a number of seconds"),
    ({"endpointing": "0.5"}, "endpointing must be a number of seconds"),
    ({"barge_in": "no"}, "barge_in must be True or False"),
    ({"assistant": "robot"}, "assistant must be one of echo, agent"),
    ({"assistant": "agent", "reflect": True}, "reflect"),
])
def test_bad_agent_settings_are_configuration_errors_naming_the_setting(settings, message):
    with pytest.raises(ConfigurationError, match=message):
        LocalOrgaServer(**settings)


def serve(*argv: str) -> int | str | None:
    try:
        return main(["serve", "--port", "0", *argv])
    except SystemExit as exc:  # a usage error, from argparse
        return exc.code


@pytest.mark.parametrize("argv, message", [
    (["--assistant", "agent", "--think-time", "-1"], "--think-time: expected a number of seconds >= 0"),
    (["--assistant", "agent", "--endpointing", "nan"], "--endpointing: expected a number of seconds >= 0"),
    (["--assistant", "agent", "--endpointing", "61"], "expected at most 60 seconds"),
    (["--assistant", "parrot"], "invalid choice: 'parrot'"),
    (["--think-time", "0.3"], "--think-time tunes the voice agent: add --assistant agent"),
    (["--no-barge-in"], "--no-barge-in tunes the voice agent"),
    (["--think-time", "0.3", "--no-barge-in"], "--think-time, --no-barge-in tune the voice agent"),
    (["--assistant", "agent", "--reflect"], "--assistant agent does not go with --reflect"),
    (["--assistant", "agent", "--orbit"], "--assistant agent does not go with --orbit"),
    (["--assistant", "agent", "--echo-delay", "0.5"], "--echo-delay tunes the echo assistant: it does nothing with"
                                                      " --assistant agent"),
    (["--reflect", "--echo-delay", "0.5"], "--echo-delay tunes the echo assistant: it does nothing with --reflect"),
    (["--orbit", "--echo-delay", "0"], "--echo-delay tunes the echo assistant: it does nothing with --orbit"),
])
def test_serve_refuses_bad_agent_flags_with_one_error_line_and_exit_2(argv, message, capsys):
    assert serve(*argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


def test_serve_hands_the_agent_flags_to_the_server(monkeypatch, capsys):
    given: dict[str, object] = {}

    def recording_server(*args: object, **kwargs: object) -> None:
        given.update(kwargs)
        raise ConfigurationError("recorded")

    monkeypatch.setattr(serve_command, "LocalOrgaServer", recording_server)
    assert serve("--assistant", "agent", "--endpointing", "0.25", "--think-time", "1.5", "--no-barge-in") == 2
    assert "recorded" in capsys.readouterr().err
    assert (given["assistant"], given["endpointing"], given["think_time"], given["barge_in"]) == ("agent", 0.25, 1.5, False)
    given.clear()
    assert serve("--echo-delay", "0.5") == 2 and given["echo_delay"] == 0.5 and given["assistant"] == "echo"
    given.clear()
    assert serve() == 2 and given["echo_delay"] == 0.2  # the echo assistant's default
    assert serve() == 2
    assert (given["assistant"], given["endpointing"], given["think_time"], given["barge_in"]) == ("echo", 0.5, 0.7, True)
