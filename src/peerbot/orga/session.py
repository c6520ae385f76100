"""An Orga realtime session: the Orga client's signalling joined to one engine ``Peer``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..media.streams import ConvertedStream
from ..session import PeerSession
from .client import OrgaClient
from .events import Event, parse_event, session_update_message
from .params import SessionParams, validate_params
from .routes import DATA_CHANNEL_LABEL

log = logging.getLogger(__name__)


class OrgaSession(PeerSession):
    """A live Orga realtime session. Use ``async with peerbot.orga.connect(...) as session``.

    Sends ``source``'s audio and ``video``'s video; receives the assistant's audio through
    ``audio_frames()`` and data-channel events through ``events()``.
    """

    def __init__(
        self,
        source: Any = None,
        video: Any = None,
        *,
        client: OrgaClient,
        params: SessionParams,
        ice_servers: list[dict[str, Any]] | None = None,
        relay_only: bool = False,
        codecs: list[str] | None = None,
        gather_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        liveness_timeout: float = 5.0,
        turn_tls_ca: str | Path | None = None,
        record: str | Path | None = None,
    ) -> None:
        super().__init__(source, video, record=record, relay_only=relay_only, codecs=codecs,
                         gather_timeout=gather_timeout, liveness_timeout=liveness_timeout, turn_tls_ca=turn_tls_ca)
        self._client = client
        self.params = params
        self._ice_override = ice_servers
        self._connect_timeout = connect_timeout
        self.conversation_id: str | None = None

    async def start(self) -> None:
        """Fetch the session config, negotiate the call, and wait until media can flow."""
        try:
            config = await self._client.get_session_config()
            ice = self._ice_override if self._ice_override is not None else config.ice_servers
            peer = self._new_peer(ice)
            # The official client's shape: audio sendrecv, video sendonly, one data channel.
            peer.add_transceiver("audio", self._audio_track, "sendrecv" if self._audio_track else "recvonly")
            peer.add_transceiver("video", self._video_track, "sendonly")
            self._channel = peer.create_data_channel(DATA_CHANNEL_LABEL)
            sdp = await peer.create_offer()
            answer, self.conversation_id = await self._client.create_call(
                config.ephemeral_token, {"sdp": sdp, "type": "offer"}, peer.local_candidates(), self.params
            )
            await peer.accept_answer(answer["sdp"])
            await peer.wait_connected(self._connect_timeout)
            self._start_recording(with_video=False)  # Orga sends no video: our video is sendonly
        except BaseException:
            await self.close()
            raise
        finally:
            await self._client.aclose()

    # --- what the application reads ---------------------------------------------------

    def events(self) -> ConvertedStream[Event]:
        """Typed data-channel events from the session's start (nothing is missed by subscribing late)."""
        self._require_peer()
        return ConvertedStream(self._channel.messages(), lambda message: [parse_event(message)])

    async def update(self, *, voice: str | None = None, model: str | None = None, temperature: float | None = None,
                     instructions: str | None = None, modalities: list[str] | None = None) -> None:
        """Send ``session.update``; the server answers with ``session.updated`` in ``events()``."""
        validate_params(voice=voice, model=model, temperature=temperature, modalities=modalities)
        self._require_peer()
        await self._channel.send(session_update_message(
            voice=voice, model=model, temperature=temperature, instructions=instructions,
            modalities=modalities or list(self.params.modalities)))


def connect(
    source: Any = None,
    video: Any = None,
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
    ``connect_timeout``, ``liveness_timeout``, ``turn_tls_ca`` (CA of a ``turns:`` server), ``record``.
    """
    params = SessionParams(voice=voice, model=model, temperature=temperature, instructions=instructions,
                           modalities=tuple(modalities), return_transcription=return_transcription, history=history)
    client = OrgaClient(api_key=api_key, user_email=user_email, base_url=base_url, timeout=timeout)
    return OrgaSession(source, video, client=client, params=params, **options)
