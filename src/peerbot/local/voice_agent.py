"""The far side of a local Orga call as a voice agent: it listens, waits for the end of a turn,
thinks, and answers aloud with what it understood; it stops when talked over.

What a voice-agent test needs to check its instrument against, with the agent's own clock:

- listening: libwebrtc's VAD (``media.vad``) on the caller's 48 kHz audio, so speech edges map
  exactly onto the arrival times of the frames that carried them;
- endpointing: the turn ends ``endpointing`` seconds after the last voiced audio was received;
- thinking: the reply starts ``think_time`` after the endpoint, on the nearest 20 ms frame tick.
  Recognition (pocketsphinx, fed as the caller speaks, in a child process: ``_recognizer``) and
  synthesis (``media.speech_synthesis``, in a thread) run during that time; when they take longer
  the reply goes out as soon as it is ready and its ``late`` says by how much;
- replying: "you said: <what was recognised>" (or "I did not catch that"), trimmed to start with
  speech in its first frame;
- barge-in: the caller's speech starting during the reply cuts it from the next frame on (and
  drops a reply still being prepared), unless ``barge_in=False``.

Every step is an ``AgentEvent`` in ``call.timeline`` (and a DEBUG log line), stamped with
``time.monotonic()`` of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import av
import numpy as np
from aiortc.mediastreams import MediaStreamTrack

from ..engine.ice import IceServerEntry
from ..errors import ConfigurationError, SessionEndedError
from ..media.speech_synthesis import synthesize
from ..media.streams import Subscription
from ..media.vad import SpeechEdge, VoiceActivityDetector
from ..orga.params import SessionParams
from ._assistant_call import AssistantCall
from ._recognizer import SAMPLE_RATE as RECOGNIZER_RATE
from ._recognizer import SpeechRecognizer
from .reply_track import ReplyTrack

__all__ = ["AgentCall", "AgentEvent", "DEFAULT_ENDPOINTING", "DEFAULT_THINK_TIME", "EVENT_KINDS",
           "check_agent_settings"]

log = logging.getLogger(__name__)

EVENT_KINDS = ("speech_started", "speech_ended", "endpoint", "reply_started", "reply_stopped", "reply_finished")
RATE = 48000  # what the caller's audio is decoded to and the reply is sent at
DEFAULT_ENDPOINTING, DEFAULT_THINK_TIME = 0.5, 0.7
MAX_SECONDS = 60.0  # endpointing and think time beyond this are mistakes, not settings
# Audio before the VAD's start given to the recognizer. Short: pocketsphinx normalises with a live
# cepstral mean, which pre-speech noise skews (a longer lead-in came out as inserted words: over 13
# flite sentences through Opus, 5 word errors in 90 with 0.06 s, 11 with 0.3 s).
LEAD_IN = 0.06
NOTHING_HEARD = "I did not catch that"
MAX_REPLY_CHARS = 600


@dataclass(frozen=True)
class AgentEvent:
    """One step of a call: ``kind`` (one of ``EVENT_KINDS``) at ``at`` (``time.monotonic()``)."""

    kind: str
    at: float
    detail: dict[str, Any] = field(default_factory=dict)


def check_agent_settings(endpointing: object, think_time: object, barge_in: object) -> tuple[float, float, bool]:
    """The settings as numbers, else ``ConfigurationError`` saying which one is wrong."""
    values = []
    for name, value in (("endpointing", endpointing), ("think_time", think_time)):
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                or not 0 <= value <= MAX_SECONDS):
            raise ConfigurationError(f"{name} must be a number of seconds from 0 to {MAX_SECONDS:g}, got {value!r}")
        values.append(float(value))
    if not isinstance(barge_in, bool):
        raise ConfigurationError(f"barge_in must be True or False, got {barge_in!r}")
    return values[0], values[1], barge_in


def reply_text(transcript: str) -> str:
    """What the agent answers to ``transcript`` (a long one is cut: the reply stays under a minute)."""
    return f"you said: {transcript[:MAX_REPLY_CHARS]}" if transcript else NOTHING_HEARD


def speech_only(pcm: np.ndarray, sample_rate: int) -> np.ndarray:
    """``pcm`` from its first voiced 20 ms frame to the end of its last (as the VAD hears it)."""
    vad = VoiceActivityDetector(sample_rate, min_silence=0.2)
    edges = vad.feed(pcm) + vad.flush()
    if not edges:
        return pcm
    start = round(edges[0].position * sample_rate)
    end = round(edges[-1].position * sample_rate) if edges[-1].kind == "end" else pcm.size
    return pcm[start:end]


def spoken_reply(text: str, sample_rate: int = RATE) -> np.ndarray:
    """``text`` synthesised, at ``sample_rate`` mono, starting with speech in its first sample (blocks)."""
    speech = synthesize(text)
    frame = av.AudioFrame.from_ndarray(speech.samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = speech.sample_rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    pieces = [f.to_ndarray().reshape(-1) for f in [*resampler.resample(frame), *resampler.resample(None)]]
    return speech_only(np.concatenate(pieces), sample_rate) if pieces else np.zeros(0, dtype=np.int16)


class _ArrivalClock:
    """When each sample of the received stream arrived: stream positions to monotonic times."""

    def __init__(self, keep_samples: int) -> None:
        self._chunks: deque[tuple[int, float]] = deque()  # (end sample, arrival), in order
        self._total = 0
        self._keep = keep_samples

    def add(self, samples: int, arrived: float) -> None:
        self._total += samples
        self._chunks.append((self._total, arrived))
        while self._chunks and self._chunks[0][0] < self._total - self._keep:
            self._chunks.popleft()

    def arrival(self, sample: int) -> float:
        """When sample number ``sample`` arrived (the oldest kept time for older ones)."""
        for end, arrived in self._chunks:
            if end > sample:
                return arrived
        return self._chunks[-1][1] if self._chunks else time.monotonic()


class _LeadIn:
    """The last second of recognizer-rate audio, to give the recognizer the start of an utterance."""

    def __init__(self, sample_rate: int, seconds: float = 1.0) -> None:
        self._rate = sample_rate
        self._audio = np.zeros(0, dtype=np.int16)
        self._total = 0  # samples seen
        self._keep = int(seconds * sample_rate)

    def add(self, pcm: np.ndarray) -> None:
        self._audio = np.concatenate((self._audio, pcm))[-self._keep:]
        self._total += pcm.size

    def since(self, position: float) -> np.ndarray:
        """The kept audio from ``position`` seconds into the stream on."""
        first = self._total - self._audio.size
        return self._audio[max(0, round(position * self._rate) - first):]


class AgentCall(AssistantCall):
    """One call answered by the voice agent (see the module); ``timeline`` lists what happened.

    ``endpointing`` and ``think_time`` are seconds (0 to 60); ``barge_in=False`` makes replies play
    to the end whatever the caller does (what was said meanwhile is answered after).
    """

    def __init__(
        self,
        params: SessionParams,
        *,
        ice_servers: Iterable[IceServerEntry] = (),
        endpointing: float = DEFAULT_ENDPOINTING,
        think_time: float = DEFAULT_THINK_TIME,
        barge_in: bool = True,
        connect_timeout: float = 30.0,
        on_closed: Callable[[AssistantCall], None] | None = None,
    ) -> None:
        self.endpointing, self.think_time, self.barge_in = check_agent_settings(endpointing, think_time, barge_in)
        super().__init__(params, ice_servers=ice_servers, connect_timeout=connect_timeout, on_closed=on_closed)
        self.timeline: list[AgentEvent] = []
        self.turns = 0  # utterances answered (replies queued)
        self._track = ReplyTrack(self._on_reply_mark, sample_rate=RATE)
        self._recognizer = SpeechRecognizer(f"call {self.conversation_id}")
        self._in_utterance = False
        self._generation = 0  # bumped by a barge-in: replies of older turns are not played
        self._recorded = asyncio.Event()  # set, then replaced, at each event

    @property
    def audio_frames_sent(self) -> int:
        """20 ms audio frames sent to the caller so far, reply and silence alike."""
        return self._track.frames_sent

    @property
    def reply_frames(self) -> int:
        """Sent frames that carried some reply audio."""
        return self._track.reply_frames

    def events(self, kind: str) -> list[AgentEvent]:
        """The timeline's events of one kind, in order."""
        return [e for e in self.timeline if e.kind == kind]

    async def wait_for(self, kind: str, count: int = 1) -> AgentEvent:
        """The ``count``-th event of ``kind``, once it has happened (wrap in a timeout)."""
        while True:
            events = self.events(kind)
            if len(events) >= count:
                return events[count - 1]
            await self._recorded.wait()

    async def answer(self, offer_sdp: str) -> str:
        await self._recognizer.start()  # its model loads while ICE and DTLS connect
        return await super().answer(offer_sdp)

    # --- media -----------------------------------------------------------------------

    def _prepare_media(self) -> MediaStreamTrack:
        self._spawn(self._listen(self._peer.audio.hub.subscribe(maxsize=100)))
        return self._track

    async def _stop_media(self) -> None:
        self._track.stop()
        await self._recognizer.close()

    async def _listen(self, frames: Subscription[av.AudioFrame]) -> None:
        mono = av.AudioResampler(format="s16", layout="mono", rate=RATE)  # no rate change: no delay
        to_recognizer = av.AudioResampler(format="s16", layout="mono", rate=RECOGNIZER_RATE)
        vad = VoiceActivityDetector(RATE, min_silence=self.endpointing)
        clock = _ArrivalClock(int((self.endpointing + 2.0) * RATE))
        lead_in = _LeadIn(RECOGNIZER_RATE)
        with contextlib.suppress(SessionEndedError):  # the peer failed: what was heard still counts
            async for frame in frames:
                arrived = time.monotonic()
                for piece in mono.resample(frame):
                    clock.add(piece.samples, arrived)
                    heard = [p.to_ndarray().reshape(-1) for p in to_recognizer.resample(piece)]
                    pcm = np.concatenate(heard) if heard else np.zeros(0, dtype=np.int16)
                    lead_in.add(pcm)
                    if self._in_utterance:
                        self._recognizer.feed(pcm)
                    for edge in vad.feed(piece.to_ndarray().reshape(-1)):
                        self._on_edge(edge, clock, lead_in, arrived)
        for edge in vad.flush():  # the caller's audio ended mid-utterance: nobody is left to answer
            self._record("speech_ended", clock.arrival(round(edge.position * RATE) - 1),
                         {"position": edge.position, "stream_ended": True})
        self._in_utterance = False

    def _on_edge(self, edge: SpeechEdge, clock: _ArrivalClock, lead_in: _LeadIn, arrived: float) -> None:
        if edge.kind == "start":
            self._record("speech_started", clock.arrival(round(edge.position * RATE)), {"position": edge.position})
            if self.barge_in:
                self._generation += 1  # replies still being prepared are dropped
                if self._track.interrupt():
                    log.debug("call %s: barge-in", self.conversation_id)
            self._recognizer.begin(lead_in.since(edge.position - LEAD_IN))
            self._in_utterance = True
            return
        ended_at = clock.arrival(round(edge.position * RATE) - 1)
        self._record("speech_ended", ended_at, {"position": edge.position})
        # Decided by the arrival of the audio that completed the silence.
        self._record("endpoint", arrived, {"silence": arrived - ended_at})
        self._in_utterance = False
        self._spawn(self._reply(arrived + self.think_time, self._generation))

    async def _reply(self, due: float, generation: int) -> None:
        transcript = await self._recognizer.finish()
        if self.params.return_transcription:
            await self._send_heard(transcript)
            self.transcripts_sent += 1
        text = reply_text(transcript)
        try:
            pcm = await asyncio.to_thread(spoken_reply, text, RATE)
        except ConfigurationError as exc:  # no TTS installed: the turn goes unanswered aloud
            log.warning("call %s cannot speak its reply: %s", self.conversation_id, exc)
            return
        if generation != self._generation:
            log.debug("call %s drops the reply %r: the caller spoke again", self.conversation_id, text)
            return
        late = max(0.0, time.monotonic() - due)
        if late > 0:
            log.info("call %s: the reply to %r was ready %.0f ms late", self.conversation_id, transcript, late * 1000)
        self.turns += 1
        self._track.play(pcm, due, {"text": text, "heard": transcript, "due": due, "late": late,
                                     "duration": pcm.size / RATE})

    def _on_reply_mark(self, kind: str, at: float, detail: dict[str, Any]) -> None:
        if kind == "reply_started":
            self._spawn(self._send_reply_text(detail["text"]))
        self._record(kind, at, detail)

    def _record(self, kind: str, at: float, detail: dict[str, Any]) -> None:
        self.timeline.append(AgentEvent(kind, at, detail))
        self._recorded.set()
        self._recorded = asyncio.Event()
        log.debug("call %s: %s at %.3f %s", self.conversation_id, kind, at, detail)
