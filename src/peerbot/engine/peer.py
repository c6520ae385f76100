"""One WebRTC peer over aiortc's RTCPeerConnection, knowing nothing of signalling.

It adds transceivers and data channels, gathers candidates non-trickle within a bound,
applies the far side's description, and watches the connection. aiortc never reports
``disconnected``, so a watchdog ends the peer when nothing (RTP, RTCP, SCTP) has arrived for
``liveness_timeout`` seconds: a vanished far side is noticed in seconds, not at ICE consent
expiry (30 s). A peer ends once: a far side closing it (DTLS close) is a normal end, a
vanished far side or failed ICE an abnormal one (``error``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import av
from aioice import Candidate, Connection
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver, RTCSessionDescription
from aiortc.codecs import is_rtx
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import SessionDescription, candidate_from_sdp, candidate_to_sdp

from ..errors import IceFailedError, PeerConnectionError, SdpError
from ..media.encoded import EncodedAudioTrack
from ..media.streams import StreamHub, TrackReader
from . import _aiortc
from ._remote_sdp import check_remote_description
from .audio_jitter_buffer import AudioJitterBuffer
from .datachannel import DataChannel, Message
from .ice import IceServerEntry, rtc_configuration
from .impairment import ImpairedNetwork, Impairment, ImpairmentClock, NetworkImpairment, attach
from .options import PeerOptions
from .packet_clock import PacketClock, PacketStream
from .peer_stats import PeerStats
from .receive_mode import PacketCounter, ReceiveMode, RtpPlayoutMeter, RtpReflector
from .stats import PeerSnapshot, StatsRecorder, StatsReport
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

    ``audio`` and ``video`` are ``TrackReader``s for what the far side sends, into ``audio_hub`` /
    ``video_hub`` when given (a session's hubs, which outlive the peer: the peer never ends
    them) or into hubs of their own. ``closed()`` returns the reason the peer ended; ``error`` is
    that reason when the end was abnormal. The peer never stops the tracks it sends: their owner does.

    ``on_data_channel`` is called with each channel the far side opens, once it is open.

    ``impair`` applies network impairment (``Impairment``/``NetworkImpairment``) to every datagram of
    the peer's ICE sockets from the first check on; ``impairment`` then holds its counters.
    ``impair_clock`` is the call's timeline its outage windows count on: a session gives every
    Peer it builds the same one, so a reconnection continues the windows (None: a fresh one).

    ``turn_tls_ca`` is a PEM CA bundle that a ``turns:`` server's certificate must chain to,
    instead of the system's trust store (which ``SSL_CERT_FILE`` can replace); verification
    and the host-name check stay on either way. Bad settings raise ``ConfigurationError``.

    ``receive="count"`` receives without decoding (``receive_mode``): RTP is counted and timed at
    the socket, no decoder thread runs, ``audio``/``video`` readers get no frames and the audio
    hub's meter is an ``RtpPlayoutMeter``. ``rtp="lean"`` (the default) sends an
    ``EncodedAudioTrack`` from the process's ``PacketClock`` instead of aiortc's sender task;
    ``rtp="aiortc"`` keeps aiortc's own per-packet path for both (to compare against).
    ``reflect=True`` (count mode) sends each received audio packet back unchanged on the audio
    track given to ``accept_offer``, whose own frames are never read (its ``recv()`` may wait forever).
    """

    def __init__(
        self,
        ice_servers: Iterable[IceServerEntry] | None = None,
        *,
        relay_only: bool = False,
        gather_timeout: float = 5.0,
        liveness_timeout: float = 5.0,
        stats_interval: float = 1.0,
        codecs: Iterable[str] | None = None,
        audio_jitter_frames: int = 1,
        turn_tls_ca: str | os.PathLike[str] | None = None,
        impair: Impairment | NetworkImpairment | None = None,
        impair_clock: ImpairmentClock | None = None,
        audio_hub: StreamHub[av.AudioFrame] | None = None,
        video_hub: StreamHub[av.VideoFrame] | None = None,
        on_data_channel: Callable[[DataChannel], None] | None = None,
        receive: ReceiveMode = "decode",
        rtp: Literal["lean", "aiortc"] = "lean",
        reflect: bool = False,
    ) -> None:
        if reflect:
            receive = "count"  # what is reflected is never decoded
        self.options = PeerOptions(relay_only=relay_only, gather_timeout=gather_timeout,
                                   liveness_timeout=liveness_timeout, stats_interval=stats_interval,
                                   codecs=codecs, audio_jitter_frames=audio_jitter_frames,
                                   turn_tls_ca=turn_tls_ca, impair=impair, impair_clock=impair_clock,
                                   receive=receive, rtp=rtp)
        self.receive: ReceiveMode = self.options.receive
        if self.receive == "count":
            audio_hub = audio_hub if audio_hub is not None else StreamHub()
            if audio_hub.meter is None:
                audio_hub.meter = RtpPlayoutMeter()
        self.impairment: ImpairedNetwork | None = None  # its counters outlive the connection, for reports
        self._turn_tls = tls_context(turn_tls_ca) if turn_tls_ca is not None else None
        self._pc = RTCPeerConnection(rtc_configuration(ice_servers, relay_only=relay_only))
        self.gather_timeout = self.options.gather_timeout
        self.liveness_timeout = self.options.liveness_timeout
        self.stats_interval = self.options.stats_interval
        self.codecs = list(self.options.codecs or ())
        self.audio_jitter_frames = audio_jitter_frames
        self.audio: TrackReader[av.AudioFrame] = TrackReader("audio", audio_hub)
        self.video: TrackReader[av.VideoFrame] = TrackReader("video", video_hub)
        self.state: PeerState = "new"
        self.error: str | None = None
        self.end_reason: str | None = None
        self.last_received: float | None = None  # monotonic time something last arrived (per watchdog)
        self._connected = asyncio.Event()
        self._ended = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._stats = PeerStats(self._pc, {"audio": self.audio, "video": self.video})
        self._recorder = StatsRecorder()
        self._pair: CandidatePairInfo | None = None  # kept: aioice forgets it when closed
        self._watchdog: asyncio.Task[None] | None = None
        self._channels: dict[str, DataChannel] = {}
        self._remote_candidates: list[RTCIceCandidate] = []
        self._expected_close: str | None = None
        self._on_data_channel = on_data_channel
        self._packet_streams: list[PacketStream] = []
        self._signalled_types: dict[tuple[str, int], str] = {}
        meter = self.audio.hub.meter
        self._packet_counter = PacketCounter(self._pc, self._stats.received,
                                             meter if isinstance(meter, RtpPlayoutMeter) else None) \
            if self.receive == "count" else None
        self.reflector = RtpReflector() if reflect else None
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)
        self._pc.on("datachannel", self._on_datachannel)
        _aiortc.guard_connect(self._pc, self._on_connect_failed)

    # --- building the offer -----------------------------------------------------------

    def add_transceiver(self, kind: Literal["audio", "video"], track: MediaStreamTrack | None, direction: Direction) -> None:
        """Add an audio or video transceiver; ``track`` is what we send (None sends nothing)."""
        if track is not None and direction in ("recvonly", "inactive"):
            direction = "sendrecv" if direction == "recvonly" else "sendonly"
        transceiver = self._pc.addTransceiver(track or kind, direction=direction)
        self._prefer_codecs(transceiver, kind)
        self._send_lean(transceiver.sender, track)
        if track is None and direction in ("sendonly", "sendrecv"):
            _aiortc.park_idle_sender(transceiver.sender, kind)

    def _send_lean(self, sender: RTCRtpSender, track: MediaStreamTrack | None) -> None:
        if self.reflector is not None and track is not None and track.kind == "audio":
            reflector = self.reflector
            _aiortc.after_send_started(sender, lambda codec: reflector.start(_aiortc.RtpSendContext(sender, codec).send))
            return
        # An encoded track is sent from the process's packet clock once aiortc has started the
        # sender; marked now, before aiortc's own sender task could read a packet of it.
        if not isinstance(track, EncodedAudioTrack) or self.options.rtp != "lean":
            return
        track.drive()

        def started(codec: Any) -> None:
            if self.ended:
                return
            context = _aiortc.RtpSendContext(sender, codec)
            stream = PacketStream(track.next_payload, track.skip, context.send)
            self._packet_streams.append(stream)
            PacketClock.of().add(stream)

        _aiortc.after_send_started(sender, started)

    def _reflect(self, data: bytes, arrival: float) -> None:
        assert self._packet_counter is not None and self.reflector is not None  # reflect=True
        counted = self._packet_counter.packet(data, arrival)
        if counted is not None and counted[0] == "audio":
            self.reflector.reflect(data[counted[2]:counted[3]], counted[1])

    def _prefer_codecs(self, transceiver: RTCRtpTransceiver, kind: str) -> None:
        if not self.codecs:
            return
        available = RTCRtpSender.getCapabilities(kind).codecs
        chosen = [c for c in available if c.mimeType.split("/")[1].lower() in self.codecs]
        if chosen:
            # Retransmission is not a codec choice: without RTX, lost video packets are never
            # repaired and a lossy call decodes nothing.
            transceiver.setCodecPreferences(chosen + [c for c in available if is_rtx(c)])

    def create_data_channel(self, label: str, on_message: Callable[[Message], None] | None = None) -> DataChannel:
        """Open a data channel before the offer so that it is negotiated in it.

        With ``on_message`` each message goes there (e.g. a session's stream that outlives the
        channel) instead of the channel's own ``messages()``.
        """
        channel = DataChannel(self._pc.createDataChannel(label), on_message=on_message)
        self._channels[label] = channel
        return channel

    async def create_offer(self) -> str:
        """Create the offer and gather candidates (non-trickle); return the complete SDP."""
        self._set_state("connecting")
        offer = await self._pc.createOffer()
        await self._set_local(offer)
        return self._local_sdp()

    async def accept_offer(
        self, sdp: str, *, audio: MediaStreamTrack | None = None, video: MediaStreamTrack | None = None
    ) -> str:
        """Answer a far side's offer (the answerer's role) sending ``audio``/``video`` on the
        offered transceivers of their kind; return the complete answer SDP.

        ``SdpError`` if the offer cannot be applied or answered, ``IceFailedError`` if gathering fails.
        """
        self._set_state("connecting")
        await self._set_remote(sdp, "offer")
        for transceiver in self._pc.getTransceivers():
            track = {"audio": audio, "video": video}.get(transceiver.kind)
            if track is not None and transceiver.sender.track is None:
                transceiver.sender.replaceTrack(track)
                transceiver.direction = "sendrecv"
                self._send_lean(transceiver.sender, track)
            self._prefer_codecs(transceiver, transceiver.kind)
        try:
            await self._set_local(await self._pc.createAnswer())
        except IceFailedError:
            raise
        except Exception as exc:  # aiortc accepts some offers it then breaks on (AttributeError...)
            raise SdpError(f"the offer could not be answered: {_reason(exc)}") from exc
        await self._flush_remote_candidates()
        return self._local_sdp()

    async def accept_answer(self, sdp: str) -> None:
        """Apply the far side's answer; ``SdpError`` if it is malformed or does not fit."""
        await self._set_remote(sdp, "answer")
        await self._flush_remote_candidates()

    async def add_remote_candidate(self, candidate: str, sdp_mid: str | None = None,
                                   sdp_mline_index: int | None = None) -> bool:
        """Add a candidate the far side trickled; kept until its description is applied.

        A malformed candidate is logged and ignored (returns False): it must not end the call;
        so is one for a peer that has ended.
        """
        if self.ended:
            return False
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
        check_remote_description(sdp, kind)  # what aiortc would accept and then break on, out of sight
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        except Exception as exc:  # aiortc raises ValueError, KeyError, InvalidStateError...
            raise SdpError(f"the {kind} SDP could not be applied: {_reason(exc)}") from exc

    async def _set_local(self, description: RTCSessionDescription) -> None:
        connections = self._bound_gathering()
        impair = self.options.impair
        if impair is not None and impair.active and self.impairment is None:
            # Before gathering: the sockets are tapped as they open, before the first ICE check.
            self.impairment = attach(self._pc, impair, clock=self.options.impair_clock)
        started = time.monotonic()
        try:
            # The bound inside aioice covers STUN/TURN; this one guards against anything else.
            await asyncio.wait_for(self._pc.setLocalDescription(description), self.gather_timeout + 5)
        except asyncio.TimeoutError:
            raise IceFailedError(f"ICE gathering did not finish within {self.gather_timeout + 5:g} s") from None
        if self._packet_counter is not None and (self.options.rtp == "lean" or self.reflector is not None):
            _aiortc.take_rtp(self._pc, self._packet_counter.packet if self.reflector is None else self._reflect)
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

    def _bound_gathering(self) -> list[Connection]:
        # aioice waits for STUN/TURN answers for a fixed 5 s; make that our configurable bound.
        connections = _aiortc.ice_connections(self._pc)
        for connection in connections:
            _aiortc.bound_gathering(connection, self.gather_timeout)
            if self._turn_tls is not None:
                _aiortc.use_turn_tls(connection, self._turn_tls)
        return connections

    def _local_sdp(self) -> str:
        description = self._pc.localDescription
        if description is None:  # setLocalDescription succeeded, so aiortc has one
            raise PeerConnectionError("aiortc has no local description")
        return str(description.sdp)

    def local_candidates(self) -> list[dict[str, Any]]:
        """Candidates of the first (bundled) media section that has some, as
        ``{candidate, sdpMid, sdpMLineIndex}``."""
        description = self._pc.localDescription
        if description is None:
            return []
        for index, media in enumerate(SessionDescription.parse(description.sdp).media):
            if media.ice_candidates:
                return [{"candidate": "candidate:" + candidate_to_sdp(c), "sdpMid": media.rtp.muxId,
                         "sdpMLineIndex": index} for c in media.ice_candidates]
        return []

    # --- while connected --------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.receive == "count":
            for receiver in self._pc.getReceivers():
                if receiver.track is track:  # before receive(): the decoder thread is stopped as it starts
                    _aiortc.without_decoder(receiver)
                    if self.options.rtp == "aiortc" and self._packet_counter is not None and self.reflector is None:
                        _aiortc.observe_rtp_packets(receiver, self._packet_counter.observer(track.kind))
            if track.kind == "audio" and self.audio.hub.meter is not None:
                self.audio.hub.meter.new_source()  # a new peer (a reconnection): a new RTP clock
            return
        for receiver in self._pc.getReceivers():
            if receiver.track is track:  # before its first packet: aiortc emits "track" on the remote description
                self._stats.watch_receiver(receiver, track.kind)
        if track.kind == "audio":
            self._set_audio_jitter_buffer(track)
            self.audio.attach(track)
        else:
            self.video.attach(track)

    def _set_audio_jitter_buffer(self, track: MediaStreamTrack) -> None:
        # aiortc holds 4 packets (80 ms) of received audio before decoding, and stalls 320 ms on
        # a lost one, then discards a good one with it (``audio_jitter_buffer``). Ours only
        # reorders (timing jitter is left to the consumer): a packet goes on when it is next,
        # a hole is skipped once ``audio_jitter_frames`` packets wait behind it.
        for receiver in self._pc.getReceivers():
            if receiver.track is track:
                _aiortc.set_jitter_buffer(receiver, AudioJitterBuffer(self.audio_jitter_frames))

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        # aiortc emits "datachannel" once the channel is open.
        wrapped = self._channels[channel.label] = DataChannel(channel)
        if self._on_data_channel is not None:
            self._on_data_channel(wrapped)

    def data_channel(self, label: str) -> DataChannel | None:
        """The channel with this label, created here or opened by the far side."""
        return self._channels.get(label)

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        log.debug("connection state %s", state)
        if state == "connected" and not self.ended:
            self._set_state("connected")
            self._connected.set()
            self._stats.watch_senders()
            if self._watchdog is None:
                self._watchdog = asyncio.create_task(self._watch(), name="peerbot-liveness")
        elif self._expected_close is not None and state in ("failed", "closed"):
            self._begin_end(self._expected_close, error=False)
        elif state == "failed":
            self._begin_end("ICE failed: no candidate pair could connect", error=True)
        elif state == "closed":
            # DTLS close_notify: the far side closed its connection on purpose.
            self._begin_end("the far side closed the connection", error=False)

    def _on_connect_failed(self, exc: Exception) -> None:
        # aiortc starts ICE, DTLS and media in a task of its own; when that fails nothing else says so.
        if not self.ended:
            self._begin_end(f"the connection could not be set up: {_reason(exc)}", error=True)

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
            await asyncio.gather(waiter, ender, return_exceptions=True)
        if self._connected.is_set() and not self.ended:
            return
        if not self.ended:
            await self._end(f"no connection within {timeout:g} s (ICE checks did not succeed)", error=True)
            raise IceFailedError(self.error or "")
        raise PeerConnectionError(self.end_reason or "the peer ended before connecting")

    async def _watch(self) -> None:
        last_count, self.last_received = -1, time.monotonic()
        while not self.ended:
            await asyncio.sleep(self.stats_interval)
            try:
                self._recorder.record(self.snapshot())
                received = self._stats.transport_packets_received()
            except Exception:  # stats must never take the call down
                log.debug("reading the stats failed", exc_info=True)
                continue
            now = time.monotonic()
            if received != last_count:
                last_count, self.last_received = received, now
            elif now - self.last_received > self.liveness_timeout:
                silent = f"the far side went silent: nothing received for {self.liveness_timeout:g} s"
                self._begin_end(self._expected_close or silent, error=self._expected_close is None)
                return

    def candidate_pair(self) -> CandidatePairInfo | None:
        """The ICE candidate pair carrying media, once connected (aiortc's stats omit it)."""
        connections = _aiortc.ice_connections(self._pc)
        connection = connections[0] if connections else None
        pair = _aiortc.nominated_pair(connection) if connection else None
        if connection is None or pair is None:
            return self._pair  # the last one, once the connection has closed
        local, remote = pair.local_candidate, pair.remote_candidate
        relay = connection.turn_transport if local.type == "relay" else None
        if relay and connection.turn_ssl:
            relay = "tls"
        self._pair = CandidatePairInfo(local.type, f"{local.host}:{local.port}", self._signalled_type(remote),
                                       f"{remote.host}:{remote.port}", relay)
        return self._pair

    def _signalled_type(self, remote: Candidate) -> str:
        # A far side that checks before our answer is applied is learnt as peer-reflexive, and
        # aioice keeps that type even once the same address is signalled: report the signalled one.
        # Read once per address: aiortc re-serialises the whole description on each access, and
        # stats are read every second by every peer of a load test.
        if remote.type != "prflx":
            return str(remote.type)
        address = (remote.host, remote.port)
        known = self._signalled_types.get(address)
        if known is not None:
            return known
        description = self._pc.remoteDescription
        if description is None:
            return str(remote.type)
        signalled = next((str(candidate.type) for media in SessionDescription.parse(description.sdp).media
                          for candidate in media.ice_candidates if (candidate.ip, candidate.port) == address),
                         str(remote.type))
        self._signalled_types[address] = signalled
        return signalled

    def snapshot(self) -> PeerSnapshot:
        """The connection's cumulative counters now, without rates (also after it closed)."""
        return self._stats.snapshot(self.candidate_pair())

    def stats(self) -> StatsReport:
        """The latest report (refreshed every ``stats_interval`` seconds; the final one once closed)."""
        return self._recorder.latest or self._recorder.record(self.snapshot())

    # --- ending -----------------------------------------------------------------------

    @property
    def ended(self) -> bool:
        """True once the peer has begun to end (it never comes back)."""
        return self._ended.is_set()

    async def closed(self) -> str:
        """Wait until the peer has ended and its connection is closed; return why it ended."""
        await self._ended.wait()
        if self._closing is not None:
            await asyncio.shield(self._closing)
        return self.end_reason or ""

    async def close(self, reason: str = "closed by the application", *, error: bool = False) -> None:
        """Close the connection, stop readers and tasks; safe to call more than once.

        With ``error`` the reason reaches readers of the peer's own hubs as ``SessionEndedError``.
        """
        await self._end(reason, error=error)

    async def _end(self, reason: str, *, error: bool) -> None:
        await asyncio.shield(self._begin_end(reason, error=error))

    def _begin_end(self, reason: str, *, error: bool) -> asyncio.Task[None]:
        # The first reason wins; the closing runs in one task that closed() and close() await,
        # so no caller (an aiortc callback, the watchdog) leaves it pending.
        if self._closing is None:
            self._ended.set()
            self.end_reason = reason
            self.error = reason if error else None
            self._set_state("failed" if error else "closed")
            if error:
                log.info("peer ended: %s", reason)
            self._closing = asyncio.create_task(self._close_connection(), name="peerbot-peer-close")
        return self._closing

    async def _close_connection(self) -> None:
        for stream in self._packet_streams:
            PacketClock.of().remove(stream)
        await asyncio.gather(self.audio.stop(self.error), self.video.stop(self.error))
        for channel in self._channels.values():
            channel.end(self.error)
        if self._watchdog is not None:
            self._watchdog.cancel()
            await asyncio.gather(self._watchdog, return_exceptions=True)
        for transceiver in self._pc.getTransceivers():
            if _aiortc.is_parked(transceiver.sender.track):
                transceiver.sender.track.stop()  # ours: the placeholder of an idle sender
            transceiver.sender.replaceTrack(None)  # aiortc's sender would stop the track: it is not ours
        await _aiortc.close_peer_connection(self._pc)  # a bad offer can leave it half-built
        try:
            self._recorder.record(self.snapshot(), final=True)  # the final counts stay readable
        except Exception:
            log.debug("reading the final stats failed", exc_info=True)
        if self.impairment is not None:
            self.impairment.detach()  # held datagrams and their timer go with the connection

    def _set_state(self, state: PeerState) -> None:
        self.state = state


def _reason(exc: Exception) -> str:
    # aiortc's ValueErrors say what is wrong; other exceptions (KeyError, AttributeError…) are its
    # internals breaking, which tells a user nothing: logged at debug, not shown.
    log.debug("aiortc refused a description", exc_info=exc)
    message = str(exc)[:200] if isinstance(exc, ValueError) else ""  # it can quote the whole SDP
    return message or "aiortc cannot negotiate it"
