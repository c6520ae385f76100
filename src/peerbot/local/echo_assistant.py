"""The far side of a local Orga call: an engine peer that echoes the caller's voice.

It plays the part of the Orga assistant honestly: it speaks the protocol's data-channel events,
plays the caller's own audio back after a delay, counts the video it receives, and, when asked
for transcription, reports how long each burst of speech lasted rather than pretending to
understand it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import av

from ..engine.datachannel import DataChannel, Message
from ..engine.ice import IceServerEntry
from ..engine.peer import Peer
from ..media.streams import Subscription
from ..errors import ConfigurationError, PeerConnectionError, SessionEndedError
from ..orga.events import (
    CONVERSATION_CREATED,
    INPUT_TRANSCRIPTION_COMPLETED,
    RESPONSE_OUTPUT_ITEM_DONE,
    SESSION_CREATED,
    SESSION_UPDATED,
)
from ..orga.params import SessionParams
from ..orga.routes import DATA_CHANNEL_LABEL
from ._json_api import ApiError, decode_json
from ._session import SESSION_UPDATE_FIELDS, apply_fields, new_id, session_object
from ._speech import SpeechBurstDetector
from .echo_track import DelayedEchoTrack
from .reflector import ParkedAudioTrack

log = logging.getLogger(__name__)
_CLOSE_SECONDS = 3.0

SESSION_UPDATE = "session.update"


def error_message(code: str, message: str) -> dict[str, Any]:
    """The ``error`` event sent back for a client message the assistant cannot use."""
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}


class EchoCall:
    """One call answered by the echo assistant, over an engine ``Peer`` in the answerer's role.

    Counters (``audio_frames_received``, ``video_frames_received``, ``messages_received``,
    ``audio_frames_sent``) let tests check what crossed the wire. The call closes itself when its
    peer ends (the caller hung up or went silent, ICE failed) or never connects within
    ``connect_timeout``; ``on_closed`` then runs once.
    """

    def __init__(
        self,
        params: SessionParams,
        *,
        ice_servers: Iterable[IceServerEntry] = (),
        echo_delay: float = 0.2,
        connect_timeout: float = 30.0,
        on_closed: Callable[[EchoCall], None] | None = None,
        reflect: bool = False,
    ) -> None:
        self.conversation_id = new_id("conv")
        self.session_id = new_id("sess")
        self.params = params
        self.messages_received = 0
        self.transcripts_sent = 0
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        # Reflecting (``reflector``): the caller's RTP goes straight back, nothing is decoded.
        self.reflect = reflect
        self._peer = Peer(ice_servers, on_data_channel=self._on_data_channel, reflect=reflect)
        self._echo = DelayedEchoTrack(echo_delay)
        self._parked = ParkedAudioTrack() if reflect else None
        self._channel: DataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"EchoCall({self.conversation_id!r}, state={self.connection_state!r})"

    @property
    def session(self) -> dict[str, Any]:
        """The session object as ``session.created`` / ``session.updated`` show it."""
        return session_object(self.session_id, self.params)

    @property
    def peer(self) -> Peer:
        """The engine peer answering the call: its state, stats and data channels."""
        return self._peer

    @property
    def connection_state(self) -> str:
        """The peer's state: ``new``, ``connecting``, ``connected``, ``closed`` or ``failed``."""
        return self._peer.state

    @property
    def audio_frames_received(self) -> int:
        """Audio frames decoded from the caller so far."""
        return self._peer.audio.frames_received

    @property
    def video_frames_received(self) -> int:
        """Video frames decoded from the caller so far."""
        return self._peer.video.frames_received

    @property
    def audio_frames_sent(self) -> int:
        """20 ms audio frames sent to the caller so far, echo and silence alike (reflected packets when reflecting)."""
        return self.packets_reflected if self.reflect else self._echo.frames_sent

    @property
    def packets_reflected(self) -> int:
        """RTP packets sent straight back to the caller (reflecting calls only)."""
        reflector = self._peer.reflector
        return reflector.packets_reflected if reflector is not None else 0

    @property
    def echoed_frames(self) -> int:
        """Sent frames that carried some of the caller's audio."""
        return self._echo.echoed_frames

    @property
    def closed(self) -> bool:
        """True once ``close`` has finished."""
        return self._closed.is_set()

    async def answer(self, offer_sdp: str) -> str:
        """Apply the caller's offer and return the answer SDP, its ICE candidates gathered.

        Raises ``SdpError`` when aiortc cannot parse or answer the offer (``IceFailedError`` when
        gathering fails); the caller then closes the call.
        """
        if self._parked is not None:
            answer = await self._peer.accept_offer(offer_sdp, audio=self._parked)
            self._spawn(self._close_when_peer_ends())
            return answer
        # Subscribed before answering, so that no frame arrives unheard.
        self._spawn(self._echo_audio(self._peer.audio.hub.subscribe(maxsize=100)))
        answer = await self._peer.accept_offer(offer_sdp, audio=self._echo)
        self._spawn(self._close_when_peer_ends())
        return answer

    async def close(self) -> None:
        """Stop every task and the peer; safe to call more than once, never raises."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            # Bounded: a server's shutdown must complete whatever state a call is in.
            try:
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), _CLOSE_SECONDS)
                await asyncio.wait_for(self._peer.close("closed by the server"), _CLOSE_SECONDS)
            except asyncio.TimeoutError:
                log.debug("call %s did not close within %g s; left to the loop", self.conversation_id,
                          _CLOSE_SECONDS)
            self._echo.stop()
            if self._parked is not None:
                self._parked.stop()
        finally:
            self._closed.set()
            log.debug("call %s closed", self.conversation_id)
            if self._on_closed is not None:
                self._on_closed(self)

    async def wait_closed(self) -> None:
        """Return once the call has closed."""
        await self._closed.wait()

    # --- the peer --------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_when_peer_ends(self) -> None:
        try:
            await self._peer.wait_connected(self._connect_timeout)
        except PeerConnectionError as exc:
            log.info("call %s did not connect: %s", self.conversation_id, exc)
        else:
            await self._peer.closed()
        # Not one of self._tasks: close() cancels those, and must not cancel itself.
        if not self._closing and self._close_task is None:
            self._close_task = asyncio.ensure_future(self.close())

    def _on_data_channel(self, channel: DataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL or self._channel is not None:
            log.debug("call %s ignores data channel %r", self.conversation_id, channel.label)
            return
        self._channel = channel
        self._spawn(self._converse(channel))

    # --- media -----------------------------------------------------------------------

    async def _echo_audio(self, frames: Subscription[av.AudioFrame]) -> None:
        rate = self._echo.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        speech = SpeechBurstDetector()
        with contextlib.suppress(SessionEndedError):  # the peer failed: what was heard still counts
            async for frame in frames:
                arrived_at = time.monotonic()
                for mono in resampler.resample(frame):
                    pcm = mono.to_ndarray().reshape(-1)
                    self._echo.push(pcm, arrived_at)
                    burst = speech.feed(pcm, rate)
                    if burst is not None:
                        await self._send_transcript(burst)
        burst = speech.flush()
        if burst is not None:
            await self._send_transcript(burst)

    # --- data channel ----------------------------------------------------------------

    async def _converse(self, channel: DataChannel) -> None:
        await self._send({"type": SESSION_CREATED, "session": self.session})
        await self._send({"type": CONVERSATION_CREATED, "conversation": {"id": self.conversation_id}})
        with contextlib.suppress(SessionEndedError):
            async for message in channel.messages():
                await self._send(self._on_message(message))

    async def _send(self, message: dict[str, Any]) -> None:
        if self._channel is None:
            return
        try:
            await self._channel.send(json.dumps(message))
        except PeerConnectionError:  # the channel closed: the caller is gone
            log.debug("call %s dropped a %s event: the data channel is closed",
                      self.conversation_id, message.get("type"))

    async def _send_transcript(self, seconds: float) -> None:
        if not self.params.return_transcription:
            return
        # Placeholders that say what happened: this assistant hears energy, not words.
        transcript = f"({seconds:.1f} s of speech)"
        heard = {"type": INPUT_TRANSCRIPTION_COMPLETED, "item_id": new_id("item"), "content_index": 0}
        await self._send({**heard, "transcript": transcript})
        reply = f"echo: {transcript}"
        content = [{"type": "text", "text": reply}]
        item = {"id": new_id("item"), "type": "message", "role": "assistant", "content": content}
        await self._send({"type": RESPONSE_OUTPUT_ITEM_DONE, "text": reply, "item": item})
        self.transcripts_sent += 1

    def _on_message(self, message: Message) -> dict[str, Any]:
        self.messages_received += 1
        try:
            return self._reply_to(message)
        except Exception:  # a bad message must never take the call down
            log.exception("call %s failed to handle a client message", self.conversation_id)
            return error_message("internal_error", "the message could not be handled")

    def _reply_to(self, message: Message) -> dict[str, Any]:
        if isinstance(message, bytes):
            return error_message("unsupported_message", "binary messages are not supported; send JSON text")
        try:
            decoded = decode_json(message)  # strict, and refuses nesting that would exhaust the stack
        except ApiError as exc:
            return error_message("invalid_json", exc.message)
        if not isinstance(decoded, dict):
            return error_message("invalid_message", "the message must be a JSON object")
        kind = decoded.get("event", decoded.get("type"))
        if kind != SESSION_UPDATE:
            shown = kind[:64] if isinstance(kind, str) else type(kind).__name__
            return error_message("unknown_event", f"unknown event {shown!r}; expected {SESSION_UPDATE!r}")
        data = decoded.get("data", {})
        if not isinstance(data, dict):
            return error_message("invalid_session_update", "'data' must be an object")
        try:
            self.params = apply_fields(self.params, data, allowed=SESSION_UPDATE_FIELDS)
        except ConfigurationError as exc:
            return error_message("invalid_session_update", str(exc))
        return {"type": SESSION_UPDATED, "session": self.session}
