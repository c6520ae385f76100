"""The far side of a local Orga call: an aiortc peer that echoes the caller's voice.

It plays the part of the Orga assistant honestly: it speaks the protocol's data-channel events,
plays the caller's own audio back after a delay, counts the video it receives, and, when asked
for transcription, reports how long each burst of speech lasted rather than pretending to
understand it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import av
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdatachannel import RTCDataChannel

from ..errors import ConfigurationError, SdpError
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
from ._pc_close import close_peer_connection
from ._session import SESSION_UPDATE_FIELDS, apply_fields, new_id, session_object
from ._speech import SpeechBurstDetector
from .echo_track import DelayedEchoTrack

log = logging.getLogger(__name__)

SESSION_UPDATE = "session.update"


def error_message(code: str, message: str) -> dict[str, Any]:
    """The ``error`` event sent back for a client message the assistant cannot use."""
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}


class EchoCall:
    """One call answered by the echo assistant over its own ``RTCPeerConnection``.

    Counters (``audio_frames_received``, ``video_frames_received``, ``messages_received``,
    ``audio_frames_sent``) let tests check what crossed the wire. The call closes itself when the
    connection fails or closes, or never connects within ``connect_timeout``; ``on_closed`` then
    runs once.
    """

    def __init__(
        self,
        params: SessionParams,
        *,
        ice_servers: Sequence[RTCIceServer] = (),
        echo_delay: float = 0.2,
        connect_timeout: float = 30.0,
        on_closed: Callable[[EchoCall], None] | None = None,
    ) -> None:
        self.conversation_id = new_id("conv")
        self.session_id = new_id("sess")
        self.params = params
        self.audio_frames_received = 0
        self.video_frames_received = 0
        self.messages_received = 0
        self.transcripts_sent = 0
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        # An explicit list, never None: aiortc falls back to Google's STUN server otherwise.
        self._pc = RTCPeerConnection(RTCConfiguration(iceServers=list(ice_servers)))
        self._echo = DelayedEchoTrack(echo_delay)
        self._channel: RTCDataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self._closed = asyncio.Event()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None
        self._pc.on("track", self._on_track)
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("connectionstatechange", self._on_connection_state)

    def __repr__(self) -> str:
        return f"EchoCall({self.conversation_id!r}, state={self.connection_state!r})"

    @property
    def session(self) -> dict[str, Any]:
        """The session object as ``session.created`` / ``session.updated`` show it."""
        return session_object(self.session_id, self.params)

    @property
    def connection_state(self) -> str:
        """The peer connection's ``connectionState``."""
        return self._pc.connectionState

    @property
    def audio_frames_sent(self) -> int:
        """20 ms audio frames sent to the caller so far, echo and silence alike."""
        return self._echo.frames_sent

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

        Raises ``SdpError`` when aiortc cannot parse or negotiate the offer; the caller then
        closes the call.
        """
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=offer_sdp, type="offer"))
            if any(t.kind == "audio" for t in self._pc.getTransceivers()):
                # Fills the offered audio transceiver, so the answer says sendrecv.
                self._pc.addTrack(self._echo)
            answer = await self._pc.createAnswer()
            await self._pc.setLocalDescription(answer)  # waits for ICE gathering: non-trickle
        except Exception as exc:  # aiortc raises ValueError, AssertionError, AttributeError…
            raise SdpError(f"the offer could not be applied: {str(exc)[:200] or type(exc).__name__}") from exc
        self._spawn(self._close_unless_connected())
        return self._pc.localDescription.sdp

    async def close(self) -> None:
        """Stop every task and the peer connection; safe to call more than once, never raises."""
        if self._closing:
            await self._closed.wait()
            return
        self._closing = True
        try:
            current = asyncio.current_task()
            tasks = [t for t in self._tasks if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._echo.stop()
            await close_peer_connection(self._pc)
        finally:
            self._closed.set()
            log.debug("call %s closed", self.conversation_id)
            if self._on_closed is not None:
                self._on_closed(self)

    async def wait_closed(self) -> None:
        """Return once the call has closed."""
        await self._closed.wait()

    # --- peer connection events ------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _schedule_close(self) -> None:
        # Not one of self._tasks: close() cancels those, and must not cancel itself.
        if not self._closing and self._close_task is None:
            self._close_task = asyncio.ensure_future(self.close())

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        log.debug("call %s connection %s", self.conversation_id, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._schedule_close()

    async def _close_unless_connected(self) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), self._connect_timeout)
        except asyncio.TimeoutError:
            log.info("call %s did not connect within %.0f s; closing it", self.conversation_id, self._connect_timeout)
            self._schedule_close()

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._spawn(self._consume_audio(track))
        elif track.kind == "video":
            self._spawn(self._count_video(track))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != DATA_CHANNEL_LABEL:
            log.debug("call %s ignores data channel %r", self.conversation_id, channel.label)
            return
        self._channel = channel
        channel.on("message", self._on_message)
        # aiortc emits "datachannel" once the channel is open, so the greeting can go now.
        self._send({"type": SESSION_CREATED, "session": self.session})
        self._send({"type": CONVERSATION_CREATED, "conversation": {"id": self.conversation_id}})

    # --- media -----------------------------------------------------------------------

    async def _consume_audio(self, track: MediaStreamTrack) -> None:
        rate = self._echo.sample_rate
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        speech = SpeechBurstDetector()
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                break
            assert isinstance(frame, av.AudioFrame)  # an audio track's frames
            self.audio_frames_received += 1
            arrived_at = time.monotonic()
            for mono in resampler.resample(frame):
                pcm = mono.to_ndarray().reshape(-1)
                self._echo.push(pcm, arrived_at)
                burst = speech.feed(pcm, rate)
                if burst is not None:
                    self._send_transcript(burst)
        burst = speech.flush()
        if burst is not None:
            self._send_transcript(burst)

    async def _count_video(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                await track.recv()
            except MediaStreamError:
                return
            self.video_frames_received += 1

    # --- data channel ----------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        if self._channel is not None and self._channel.readyState == "open":
            self._channel.send(json.dumps(message))

    def _send_transcript(self, seconds: float) -> None:
        if not self.params.return_transcription:
            return
        # Placeholders that say what happened: this assistant hears energy, not words.
        transcript = f"({seconds:.1f} s of speech)"
        heard = {"type": INPUT_TRANSCRIPTION_COMPLETED, "item_id": new_id("item"), "content_index": 0}
        self._send({**heard, "transcript": transcript})
        reply = f"echo: {transcript}"
        content = [{"type": "text", "text": reply}]
        item = {"id": new_id("item"), "type": "message", "role": "assistant", "content": content}
        self._send({"type": RESPONSE_OUTPUT_ITEM_DONE, "text": reply, "item": item})
        self.transcripts_sent += 1

    def _on_message(self, message: str | bytes) -> None:
        self.messages_received += 1
        try:
            reply = self._reply_to(message)
        except Exception:  # a bad message must never take the call down
            log.exception("call %s failed to handle a client message", self.conversation_id)
            reply = error_message("internal_error", "the message could not be handled")
        self._send(reply)

    def _reply_to(self, message: str | bytes) -> dict[str, Any]:
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
