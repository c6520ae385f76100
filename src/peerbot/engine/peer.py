"""The engine: one WebRTC peer over aiortc's RTCPeerConnection, knowing nothing of signalling.

It adds transceivers and data channels, gathers candidates non-trickle within a bound,
applies the far side's description, and watches the connection. aiortc never reports
``disconnected``, so a watchdog ends the peer when nothing (RTP, RTCP, SCTP) has arrived for
``liveness_timeout`` seconds: a vanished far side is noticed in seconds, not at ICE consent
expiry (30 s).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from ..errors import IceFailedError, PeerConnectionError, SdpError
from ..media.streams import TrackReader
from .datachannel import DataChannel
from .ice import rtc_configuration
from .stats import CallStats, StatsTracker
from .turn import relay_failure, tls_context

log = logging.getLogger(__name__)

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
PeerState = Literal["new", "connecting", "connected", "closed", "failed"]


@dataclass(frozen=True)
class CandidatePairInfo:
    """The selected pair: candidate types (host, srflx, prflx, relay) and, for relay, how the
    TURN server is reached (udp, tcp or tls)."""

    local_type: str
    local_address: str
    remote_type: str
    remote_address: str
    relay_transport: str | None = None

    def __str__(self) -> str:
        via = f" via TURN/{self.relay_transport}" if self.relay_transport else ""
        return f"{self.local_type} {self.local_address} -> {self.remote_type} {self.remote_address}{via}"


class Peer:
    """A WebRTC peer connection with bounded gathering, liveness watchdog and frame readers.

    ``audio`` and ``video`` are ``TrackReader``s for what the far side sends. ``closed()``
    returns the reason the peer ended; ``error`` is that reason when the end was not asked for.

    ``turn_tls_ca`` is a PEM CA bundle that a ``turns:`` server's certificate must chain to,
    instead of the system's trust store (which ``SSL_CERT_FILE`` can replace); verification
    and the host-name check stay on either way.
    """

    def __init__(
        self,
        ice_servers: Iterable[Mapping[str, Any]] | None = None,
        *,
        relay_only: bool = False,
        gather_timeout: float = 5.0,
        liveness_timeout: float = 5.0,
        stats_interval: float = 1.0,
        codecs: Iterable[str] | None = None,
        audio_jitter_frames: int = 1,
        turn_tls_ca: str | os.PathLike[str] | None = None,
    ) -> None:
        self._turn_tls = tls_context(turn_tls_ca) if turn_tls_ca is not None else None
        self._pc = RTCPeerConnection(rtc_configuration(ice_servers, relay_only=relay_only))
        self.gather_timeout = gather_timeout
        self.liveness_timeout = liveness_timeout
        self.stats_interval = stats_interval
        self.codecs = [c.lower() for c in codecs or []]
        self.audio_jitter_frames = audio_jitter_frames
        self.audio = TrackReader("audio")
        self.video = TrackReader("video")
        self.state: PeerState = "new"
        self.error: str | None = None
        self.end_reason: str | None = None
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._stats = StatsTracker()
        self._watchdog: asyncio.Task[None] | None = None
        self._channels: dict[str, DataChannel] = {}
        self._remote_candidates: list[Any] = []
        self._expected_close: str | None = None
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._pc.on("datachannel", self._on_datachannel)

    # --- building the offer -----------------------------------------------------------

    def add_transceiver(self, kind: Literal["audio", "video"], track: MediaStreamTrack | None, direction: Direction) -> None:
        """Add an audio or video transceiver; ``track`` is what we send (None sends nothing)."""
        if track is not None and direction in ("recvonly", "inactive"):
            direction = "sendrecv" if direction == "recvonly" else "sendonly"
        transceiver = self._pc.addTransceiver(track or kind, direction=direction)
        self._prefer_codecs(transceiver, kind)

    def _prefer_codecs(self, transceiver: Any, kind: str) -> None:
        if not self.codecs:
            return
        available = RTCRtpSender.getCapabilities(kind).codecs
        chosen = [c for c in available if c.mimeType.split("/")[1].lower() in self.codecs]
        if chosen:
            transceiver.setCodecPreferences(chosen)

    def create_data_channel(self, label: str) -> DataChannel:
        """Open a data channel before the offer so that it is negotiated in it."""
        channel = DataChannel(self._pc.createDataChannel(label))
        self._channels[label] = channel
        return channel

    async def create_offer(self) -> str:
        """Create the offer and gather candidates (non-trickle); return the complete SDP."""
        self._set_state("connecting")
        offer = await self._pc.createOffer()
        await self._set_local(offer)
        return self._pc.localDescription.sdp

    async def accept_offer(
        self, sdp: str, *, audio: MediaStreamTrack | None = None, video: MediaStreamTrack | None = None
    ) -> str:
        """Answer a far side's offer (the answerer's role) sending ``audio``/``video`` on the
        offered transceivers of their kind; return the complete answer SDP."""
        self._set_state("connecting")
        await self._set_remote(sdp, "offer")
        for transceiver in self._pc.getTransceivers():
            track = {"audio": audio, "video": video}[transceiver.kind]
            if track is not None and transceiver.sender.track is None:
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"
            self._prefer_codecs(transceiver, transceiver.kind)
        await self._set_local(await self._pc.createAnswer())
        await self._flush_remote_candidates()
        return self._pc.localDescription.sdp

    async def accept_answer(self, sdp: str) -> None:
        """Apply the far side's answer; ``SdpError`` if it is malformed or does not fit."""
        await self._set_remote(sdp, "answer")
        await self._flush_remote_candidates()

    async def add_remote_candidate(self, candidate: str, sdp_mid: str | None = None,
                                   sdp_mline_index: int | None = None) -> bool:
        """Add a candidate the far side trickled; kept until its description is applied.

        A malformed candidate is logged and ignored (returns False): it must not end the call.
        """
        text = candidate[2:] if candidate.startswith("a=") else candidate
        if not text.strip():
            return False  # end-of-candidates
        try:
            parsed = candidate_from_sdp(text.split(":", 1)[1] if text.startswith("candidate:") else text)
        except (ValueError, IndexError, AssertionError) as exc:  # aiortc asserts on the field count
            log.warning("ignoring a malformed remote ICE candidate %r: %s", text[:80], exc)
            return False
        parsed.sdpMid = sdp_mid
        # Neither given: the first (bundled) section, as the candidate can only be meant for it.
        parsed.sdpMLineIndex = 0 if sdp_mid is None and sdp_mline_index is None else sdp_mline_index
        self._remote_candidates.append(parsed)
        if self._pc.remoteDescription is not None:
            await self._flush_remote_candidates()
        return True

    async def _flush_remote_candidates(self) -> None:
        pending, self._remote_candidates = self._remote_candidates, []
        for parsed in pending:
            try:
                await self._pc.addIceCandidate(parsed)
            except Exception as exc:  # a candidate for a section we do not have, a closed peer...
                log.warning("remote ICE candidate not added: %s", exc)

    async def _set_remote(self, sdp: str, kind: str) -> None:
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise SdpError(f"the {kind} is not an SDP (it must start with 'v=0')")
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises ValueError, KeyError, InvalidStateError...
            raise SdpError(f"the {kind} SDP could not be applied: {exc or type(exc).__name__}") from exc

    async def _set_local(self, description: RTCSessionDescription) -> None:
        connections = self._bound_gathering()
        started = time.monotonic()
        try:
            # The bound inside aioice covers STUN/TURN; this one guards against anything else.
            await asyncio.wait_for(self._pc.setLocalDescription(description), self.gather_timeout + 5)
        except asyncio.TimeoutError:
            raise IceFailedError(f"ICE gathering did not finish within {self.gather_timeout + 5:g} s") from None
        if not self.local_candidates():
            # aioice drops why a TURN allocation failed: ask the server once more to tell the user.
            # Bundled, so the first transport's ICE connection is every transport's.
            turn_reason = None
            if connections:
                waited = time.monotonic() - started
                turn_reason = await relay_failure(connections[0], timeout=self.gather_timeout, waited=waited)
            raise IceFailedError(
                f"no ICE candidates were gathered: {turn_reason}" if turn_reason else
                "no ICE candidates were gathered: the STUN/TURN server refused or did not answer"
                " (check the TURN credentials), and host candidates are not allowed or not present"
            )

    def _bound_gathering(self) -> list[Any]:
        # aioice waits for STUN/TURN answers for a fixed 5 s; make that our configurable bound.
        transports = [t.sender.transport for t in self._pc.getTransceivers() if t.sender.transport]
        if self._pc.sctp is not None:
            transports.append(self._pc.sctp.transport)
        connections = []
        for dtls in transports:
            connection = dtls.transport.iceGatherer._connection
            connections.append(connection)
            if not isinstance(connection.get_component_candidates, functools.partial):
                connection.get_component_candidates = functools.partial(
                    connection.get_component_candidates, timeout=self.gather_timeout
                )
            if self._turn_tls is not None and connection.turn_ssl:
                connection.turn_ssl = self._turn_tls  # aioice hands it to create_connection(ssl=...)
        return connections

    def local_candidates(self) -> list[dict[str, Any]]:
        """Candidates of the first (bundled) media section, as ``{candidate, sdpMid, sdpMLineIndex}``."""
        description = self._pc.localDescription
        if description is None:
            return []
        candidates: list[dict[str, Any]] = []
        mid: str | None = None
        index = -1
        for line in description.sdp.splitlines():
            if line.startswith("m="):
                if index >= 0 and candidates:
                    break
                index += 1
                mid = None
            elif line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:"):
                candidates.append({"candidate": line[2:], "sdpMid": mid, "sdpMLineIndex": index})
        for candidate in candidates:
            candidate["sdpMid"] = candidate["sdpMid"] or mid
        return candidates

    # --- while connected --------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "audio":
            self._set_audio_jitter_buffer(track)
        (self.audio if track.kind == "audio" else self.video).attach(track)

    def _set_audio_jitter_buffer(self, track: MediaStreamTrack) -> None:
        # aiortc holds 4 packets (80 ms) of received audio before decoding, on top of the
        # network delay. Its buffer only reorders (timing jitter is left to the consumer), so
        # one packet, the minimum, keeps the added latency at 20 ms.
        for receiver in self._pc.getReceivers():
            if receiver.track is track:
                receiver._RTCRtpReceiver__jitter_buffer = JitterBuffer(capacity=16, prefetch=self.audio_jitter_frames)

    def _on_datachannel(self, channel: Any) -> None:
        self._channels[channel.label] = DataChannel(channel)

    def data_channel(self, label: str) -> DataChannel | None:
        """The channel with this label, created here or opened by the far side."""
        return self._channels.get(label)

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        log.debug("connection state %s", state)
        if state == "connected" and not self._ended.is_set():
            self._set_state("connected")
            self._connected.set()
            if self._watchdog is None:
                self._watchdog = asyncio.create_task(self._watch(), name="peerbot-liveness")
        elif self._expected_close is not None and state in ("failed", "closed"):
            asyncio.ensure_future(self._end(self._expected_close, error=False))
        elif state == "failed":
            asyncio.ensure_future(self._end("ICE failed: no candidate pair could connect", error=True))
        elif state == "closed" and not self._ended.is_set():
            asyncio.ensure_future(self._end("the far side closed the connection", error=True))

    def expect_close(self, reason: str) -> None:
        """We are hanging up: the far side closing from now on ends the peer with ``reason``, not an error."""
        self._expected_close = reason

    async def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait for DTLS to be up; raise if the peer ends or the timeout passes first."""
        waiter = asyncio.ensure_future(self._connected.wait())
        ender = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({waiter, ender}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            ender.cancel()
        if self._connected.is_set() and not self._ended.is_set():
            return
        if not self._ended.is_set():
            await self._end(f"no connection within {timeout:g} s (ICE checks did not succeed)", error=True)
            raise IceFailedError(self.error or "")
        raise PeerConnectionError(self.end_reason or "the peer ended before connecting")

    async def _watch(self) -> None:
        last_count, last_seen = -1, time.monotonic()
        while not self._ended.is_set():
            await asyncio.sleep(self.stats_interval)
            try:
                self._stats.update(await self._pc.getStats(), self._clock_rates())
            except Exception:  # stats must never take the call down
                log.debug("getStats failed", exc_info=True)
                continue
            now = time.monotonic()
            if self._stats.transport_packets_received != last_count:
                last_count, last_seen = self._stats.transport_packets_received, now
            elif now - last_seen > self.liveness_timeout:
                silent = f"the far side went silent: nothing received for {self.liveness_timeout:g} s"
                await self._end(self._expected_close or silent, error=self._expected_close is None)
                return

    def _clock_rates(self) -> dict[str, int]:
        # The negotiated codec's RTP clock: jitter is reported in its units (8 kHz for PCMU).
        return {t.kind: t._codecs[0].clockRate for t in self._pc.getTransceivers() if t._codecs}

    def candidate_pair(self) -> CandidatePairInfo | None:
        """The ICE candidate pair carrying media, once connected (aiortc's stats omit it)."""
        transceivers = self._pc.getTransceivers()
        dtls = transceivers[0].sender.transport if transceivers else self._pc.sctp and self._pc.sctp.transport
        connection = dtls.transport._connection if dtls else None
        pair = connection._nominated.get(1) if connection else None
        if pair is None:
            return None
        local, remote = pair.local_candidate, pair.remote_candidate
        relay = connection.turn_transport if local.type == "relay" else None
        if relay and connection.turn_ssl:
            relay = "tls"
        return CandidatePairInfo(local.type, f"{local.host}:{local.port}", self._signalled_type(remote),
                                 f"{remote.host}:{remote.port}", relay)

    def _signalled_type(self, remote: Any) -> str:
        # A far side that checks before our answer is applied is learnt as peer-reflexive, and
        # aioice keeps that type even once the same address is signalled: report the signalled one.
        if remote.type == "prflx" and self._pc.remoteDescription is not None:
            for line in self._pc.remoteDescription.sdp.splitlines():
                fields = line.split()
                if line.startswith("a=candidate:") and len(fields) > 7 and (fields[4], fields[5]) == (remote.host, str(remote.port)):
                    return fields[7]
        return remote.type

    def stats(self) -> CallStats:
        """The latest quality figures (refreshed every ``stats_interval`` seconds)."""
        return self._stats.latest

    # --- ending -----------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def closed(self) -> str:
        """Wait until the peer has ended and return why."""
        await self._ended.wait()
        return self.end_reason or ""

    async def close(self, reason: str = "closed by the application", *, error: bool = False) -> None:
        """Close the connection, stop readers and tasks; safe to call more than once.

        With ``error`` the reason reaches readers as ``SessionEndedError`` (e.g. the far side hung up).
        """
        await self._end(reason, error=error)

    async def _end(self, reason: str, *, error: bool) -> None:
        if self._ended.is_set():
            return
        self._ended.set()
        self.end_reason = reason
        self.error = reason if error else None
        self._set_state("failed" if error else "closed")
        if error:
            log.info("peer ended: %s", reason)
        await asyncio.gather(self.audio.stop(self.error), self.video.stop(self.error))
        for channel in self._channels.values():
            channel.hub.end(self.error)
        if self._watchdog is not None and self._watchdog is not asyncio.current_task():
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        await self._pc.close()

    def _set_state(self, state: PeerState) -> None:
        self.state = state
