"""What every local Orga call shares, whoever answers it: the engine peer in the answerer's role,
the data channel's events and ``session.update``, and a bounded close.

Subclasses bring the media: ``_prepare_media`` returns the track the assistant sends (and starts
listening), ``_stop_media`` stops it. ``EchoCall`` (``echo_assistant``) and ``AgentCall``
(``voice_agent``) are the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from aiortc.mediastreams import MediaStreamTrack

from ..engine.datachannel import DataChannel, Message
from ..engine.ice import IceServerEntry
from ..engine.peer import Peer
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

log = logging.getLogger(__name__)
_CLOSE_SECONDS = 3.0

SESSION_UPDATE = "session.update"


def error_message(code: str, message: str) -> dict[str, Any]:
    """The ``error`` event sent back for a client message the assistant cannot use."""
    return {"type": "error", "error": {"type": "invalid_request_error", "code": code, "message": message}}


class AssistantCall:
    """One call answered by a local assistant, over an engine ``Peer`` in the answerer's role.

    The call closes itself when its peer ends (the caller hung up or went silent, ICE failed) or
    never connects within ``connect_timeout``; ``on_closed`` then runs once.
    """

    def __init__(
        self,
        params: SessionParams,
        *,
        ice_servers: Iterable[IceServerEntry] = (),
        connect_timeout: float = 30.0,
        on_closed: Callable[[AssistantCall], None] | None = None,
        reflect: bool = False,
    ) -> None:
        self.conversation_id = new_id("conv")
        self.session_id = new_id("sess")
        self.params = params
        self.messages_received = 0
        self.transcripts_sent = 0
        self._connect_timeout = connect_timeout
        self._on_closed = on_closed
        self._peer = Peer(ice_servers, on_data_channel=self._on_data_channel, reflect=reflect)
        self._channel: DataChannel | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._closing = False
        self._close_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.conversation_id!r}, state={self.connection_state!r})"

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
        """20 ms audio frames sent to the caller so far."""
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """True once ``close`` has finished."""
        return self._closed.is_set()

    async def answer(self, offer_sdp: str) -> str:
        """Apply the caller's offer and return the answer SDP, its ICE candidates gathered.

        Raises ``SdpError`` when aiortc cannot parse or answer the offer (``IceFailedError`` when
        gathering fails); the caller then closes the call.
        """
        # Media is wired before answering, so that no frame arrives unheard.
        answer = await self._peer.accept_offer(offer_sdp, audio=self._prepare_media())
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
            await self._stop_media()
        finally:
            self._closed.set()
            log.debug("call %s closed", self.conversation_id)
            if self._on_closed is not None:
                self._on_closed(self)

    async def wait_closed(self) -> None:
        """Return once the call has closed."""
        await self._closed.wait()

    # --- media, the subclass's part --------------------------------------------------

    def _prepare_media(self) -> MediaStreamTrack:
        """Start listening to the caller; return the audio track sent back."""
        raise NotImplementedError

    async def _stop_media(self) -> None:
        """Stop what ``_prepare_media`` started (its tasks are already cancelled); never raises."""

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

    async def _send_heard(self, transcript: str) -> None:
        """``conversation.item.input_audio_transcription.completed``: what the caller said."""
        heard = {"type": INPUT_TRANSCRIPTION_COMPLETED, "item_id": new_id("item"), "content_index": 0}
        await self._send({**heard, "transcript": transcript})

    async def _send_reply_text(self, text: str) -> None:
        """``response.output_item.done`` carrying the assistant's reply as text."""
        content = [{"type": "text", "text": text}]
        item = {"id": new_id("item"), "type": "message", "role": "assistant", "content": content}
        await self._send({"type": RESPONSE_OUTPUT_ITEM_DONE, "text": text, "item": item})

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
