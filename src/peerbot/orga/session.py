"""An Orga realtime session: the Orga client's signalling joined to one engine ``Peer``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

from ..engine.datachannel import DataChannel, Message
from ..engine.ice import IceServerEntry, check_ice_servers
from ..engine.impairment import Impairment, NetworkImpairment
from ..engine.options import positive_seconds
from ..engine.receive_mode import ReceiveMode
from ..errors import PeerConnectionError, SessionStateError
from ..media.source import MediaSource
from ..media.streams import StreamHub, Subscription
from ..session import PeerSession
from .client import OrgaClient
from .events import CallRecreated, Event, parse_event, session_update_message
from .params import SessionParams, validate_params
from .routes import DATA_CHANNEL_LABEL

log = logging.getLogger(__name__)

CALL_RECREATED = "peerbot.call_recreated"


class OrgaSession(PeerSession):
    """A live Orga realtime session. Use ``async with peerbot.orga.connect(...) as session``.

    Sends ``source``'s audio and ``video``'s video; receives the assistant's audio through
    ``audio_frames()`` and data-channel events through ``events()`` (Orga sends no video). When
    the connection is lost (the server went silent, ICE failed) the call is re-created with the
    same parameters, unless ``reconnect=False``; ``events()`` then yields ``CallRecreated``.
    """

    def __init__(
        self,
        source: MediaSource | None = None,
        video: MediaSource | None = None,
        *,
        client: OrgaClient,
        params: SessionParams,
        ice_servers: list[IceServerEntry] | None = None,
        relay_only: bool = False,
        codecs: list[str] | None = None,
        gather_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        liveness_timeout: float = 5.0,
        turn_tls_ca: str | Path | None = None,
        record: str | Path | None = None,
        reconnect: bool = True,
        reconnect_attempts: int = 3,
        reconnect_backoff: float = 0.5,
        impair: Impairment | NetworkImpairment | str | None = None,
        receive: ReceiveMode = "decode",
        rtp: Literal["lean", "aiortc"] = "lean",
    ) -> None:
        super().__init__(source, video, record=record, reconnect=reconnect, reconnect_attempts=reconnect_attempts,
                         reconnect_backoff=reconnect_backoff, relay_only=relay_only, codecs=codecs,
                         gather_timeout=gather_timeout, liveness_timeout=liveness_timeout, turn_tls_ca=turn_tls_ca,
                         impair=impair, receive=receive, rtp=rtp)
        self._ice_override = check_ice_servers(ice_servers) if ice_servers is not None else None
        self._connect_timeout = positive_seconds("connect_timeout", connect_timeout)
        self._client = client
        self.params = params
        self.conversation_id: str | None = None
        self._previous_conversation: str | None = None
        self._events: StreamHub[Event] = StreamHub(history=1000)
        self._hubs.append(self._events)
        self._channel: DataChannel | None = None

    async def _connect(self) -> None:
        config = await self._client.get_session_config()  # a fresh ephemeral token each time
        peer = self._new_peer(self._ice_override if self._ice_override is not None else config.ice_servers)
        # The official client's shape: audio sendrecv, video sendonly, one data channel.
        peer.add_transceiver("audio", self._audio_track, "sendrecv" if self._audio_track else "recvonly")
        peer.add_transceiver("video", self._video_track, "sendonly")
        self._channel = peer.create_data_channel(DATA_CHANNEL_LABEL, on_message=self._on_message)
        sdp = await peer.create_offer()
        answer, self.conversation_id = await self._client.create_call(
            config.ephemeral_token, {"sdp": sdp, "type": "offer"}, peer.local_candidates(), self.params
        )
        await peer.accept_answer(answer["sdp"])
        await peer.wait_connected(self._connect_timeout)

    async def _reconnect_once(self) -> None:
        self._previous_conversation = self.conversation_id
        await self._connect()

    def _reconnected(self, outage: float) -> None:
        log.info("Orga call re-created: conversation %s", self.conversation_id)
        self._events.publish(CallRecreated(CALL_RECREATED, {}, conversation_id=self.conversation_id or "",
                                           previous_conversation_id=self._previous_conversation,
                                           outage_seconds=round(outage, 2)))

    def _on_message(self, message: Message) -> None:
        self._events.publish(parse_event(message))

    async def _close_signalling(self) -> None:
        await self._client.aclose()

    # --- what the application reads ---------------------------------------------------

    def events(self) -> Subscription[Event]:
        """Typed data-channel events from the session's start (nothing is missed by subscribing
        late), across reconnections; ends like ``audio_frames()``."""
        self._require_started()
        return self._events.subscribe(1000)

    async def update(self, *, voice: str | None = None, model: str | None = None, temperature: float | None = None,
                     instructions: str | None = None, modalities: list[str] | None = None) -> None:
        """Send ``session.update``; the server answers with ``session.updated`` in ``events()``.

        During a reconnection it waits for the re-created call's data channel and sends there;
        ``SessionEndedError`` if the session ends first (closed, or reconnecting failed).
        """
        validate_params(voice=voice, model=model, temperature=temperature, modalities=modalities,
                        instructions=instructions)
        self._require_started()
        if self._channel is None:
            raise SessionStateError("the OrgaSession has no data channel (its set-up failed)")
        message = session_update_message(voice=voice, model=model, temperature=temperature, instructions=instructions,
                                         modalities=modalities or list(self.params.modalities))
        while True:
            peer = await self._wait_for_connection()
            channel = self._channel
            try:
                await channel.send(message)
                return
            except PeerConnectionError:
                if not peer.ended:
                    raise
                # The connection was lost while the channel opened: send on the next one.


def connect(
    source: MediaSource | None = None,
    video: MediaSource | None = None,
    *,
    api_key: str | None = None,
    user_email: str | None = None,
    base_url: str | None = None,
    voice: str = "alloy",
    model: str = "orga-1-beta",
    temperature: float = 0.5,
    instructions: str | None = None,
    modalities: tuple[str, ...] = ("audio", "video"),
    return_transcription: bool = False,
    history: bool = True,
    timeout: float = 10.0,
    **options: Any,
) -> OrgaSession:
    """Open an Orga realtime session: ``async with peerbot.orga.connect(source=Tone()) as s``.

    Credentials fall back to ``ORGA_API_KEY``, ``ORGA_USER_EMAIL`` and ``ORGA_BASE_URL``.
    Invalid settings raise ``ConfigurationError`` here, before any request. ``options`` go to
    the session: ``ice_servers`` (override), ``relay_only``, ``codecs``, ``gather_timeout``,
    ``connect_timeout``, ``liveness_timeout``, ``turn_tls_ca`` (CA of a ``turns:`` server), ``record``,
    ``impair`` (an ``Impairment``, ``NetworkImpairment`` or spec such as ``"loss=5%,delay=80ms"``),
    ``reconnect`` (default True), ``reconnect_attempts`` and ``reconnect_backoff``; ``receive="count"``
    (RTP counted and timed, not decoded: no ``audio_frames()``) and ``rtp`` (see ``engine.Peer``).
    """
    params = SessionParams(voice=voice, model=model, temperature=temperature, instructions=instructions,
                           modalities=tuple(modalities), return_transcription=return_transcription, history=history)
    client = OrgaClient(api_key=api_key, user_email=user_email, base_url=base_url, timeout=timeout)
    return OrgaSession(source, video, client=client, params=params, **options)
