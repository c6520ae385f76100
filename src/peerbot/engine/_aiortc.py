"""Every use of aiortc's and aioice's private fields, in one place, checked against the pinned versions.

aiortc hides what peerbot needs (the ICE connection behind a transport, the nominated pair, the
receiver's jitter buffer, the negotiated codecs, the sockets aioice reads, each RTP packet a
receiver handles and each RTCP report a sender gets, the sender's counters). These fields are not
API: when the installed versions differ from the ones this module was written for, importing
it warns, so a breakage shows up with its cause. So is the way around ``close()`` giving up
half-way. The logging filter here keeps the ICE password and TURN credentials that
aiortc/aioice DEBUG logs print (``a=ice-pwd:…``) out of any log.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import random
import re
import ssl
import struct
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import pylibsrtp
from aioice import Connection
from aioice.ice import CandidatePair, StunProtocol
from aiortc import (RTCDtlsTransport, RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender,
                    RTCRtpTransceiver)
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcdtlstransport import State as DtlsState
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtcpReceiverInfo, RtcpRrPacket, RtcpSrPacket, RtpPacket, unwrap_rtx

log = logging.getLogger(__name__)

PINNED = {"aiortc": "1.16.0", "aioice": "0.13.0"}


def check_versions(pinned: dict[str, str] = PINNED) -> list[str]:
    """Warn (``RuntimeWarning``) for each package whose installed version is not the pinned one."""
    problems = []
    for package, wanted in pinned.items():
        try:
            installed = version(package)
        except PackageNotFoundError:
            installed = "not installed"
        if installed != wanted:
            problems.append(f"{package} {installed} is installed, peerbot's engine is written for {wanted}")
    for problem in problems:
        warnings.warn(f"{problem}: its private fields may have changed", RuntimeWarning, stacklevel=2)
    return problems


# --- ICE ------------------------------------------------------------------------------


def dtls_transports(pc: RTCPeerConnection) -> list[RTCDtlsTransport]:
    """The DTLS transports of every transceiver and of the SCTP association (bundled: often one)."""
    transports = [t.sender.transport for t in pc.getTransceivers() if t.sender.transport is not None]
    if pc.sctp is not None:
        transports.append(pc.sctp.transport)
    return transports


def gatherer_connection(dtls: RTCDtlsTransport) -> Connection:
    """The aioice ``Connection`` that gathers (and later checks) a transport's candidates."""
    connection: Connection = dtls.transport.iceGatherer._connection
    return connection


def ice_connections(pc: RTCPeerConnection) -> list[Connection]:
    """Each distinct aioice ``Connection`` of the peer connection."""
    seen: dict[int, Connection] = {}
    for dtls in dtls_transports(pc):
        connection = gatherer_connection(dtls)
        seen.setdefault(id(connection), connection)
    return list(seen.values())


def bound_gathering(connection: Connection, timeout: float) -> None:
    """Make aioice wait ``timeout`` seconds for STUN/TURN answers when gathering (it fixes 5 s)."""
    if not isinstance(connection.get_component_candidates, functools.partial):
        # aioice annotates the timeout as int but hands it to asyncio, which takes any number.
        connection.get_component_candidates = functools.partial(  # type: ignore[method-assign]
            connection.get_component_candidates, timeout=timeout)  # type: ignore[arg-type]


def use_turn_tls(connection: Connection, context: ssl.SSLContext) -> None:
    """Verify a ``turns:`` server with ``context``: aioice hands ``turn_ssl`` to ``create_connection(ssl=…)``."""
    if connection.turn_ssl:
        connection.turn_ssl = context  # type: ignore[assignment]


def nominated_pair(connection: Connection, component: int = 1) -> CandidatePair | None:
    """The pair ICE nominated for ``component`` (RTP, or everything when muxed), if any yet."""
    pair: CandidatePair | None = connection._nominated.get(component)
    return pair


def stun_protocols(connection: Connection) -> Iterator[StunProtocol]:
    """The datagram protocols (host sockets, TURN allocations) a connection sends and receives on."""
    yield from list(connection._protocols)


def after_gathering(connection: Connection, callback: Callable[[], None]) -> None:
    """Call ``callback`` as soon as ``connection`` has gathered (its sockets are open, no check
    has been sent yet): aiortc schedules the checks after ``gather_candidates`` returns."""
    gather = connection.gather_candidates

    async def gather_then_call() -> None:
        await gather()
        callback()

    connection.gather_candidates = gather_then_call  # type: ignore[method-assign]


def guard_connect(pc: RTCPeerConnection, on_error: Callable[[Exception], None]) -> None:
    """Retrieve the exception of aiortc's connect task, always, and hand it to ``on_error``.

    Each set*Description starts ``RTCPeerConnection.__connect`` (ICE, DTLS, media) with
    ``ensure_future`` and keeps no reference, so when it raises (an offer it accepted but cannot
    use) asyncio logs "Task exception was never retrieved" at ERROR. The instance attribute
    shadows the private method for that one peer connection.
    """
    connect = pc._RTCPeerConnection__connect  # type: ignore[attr-defined]

    async def guarded() -> None:
        try:
            await connect()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.debug("aiortc's connect task failed: %r", exc, exc_info=exc)
            try:
                on_error(exc)
            except Exception:  # reporting must not bring the error back
                log.debug("reporting a failed connect task failed", exc_info=True)

    pc._RTCPeerConnection__connect = guarded  # type: ignore[attr-defined]


# --- RTP ------------------------------------------------------------------------------


def set_jitter_buffer(receiver: RTCRtpReceiver, buffer: JitterBuffer) -> None:
    """Replace the receiver's jitter buffer (aiortc fixes its size at construction)."""
    receiver._RTCRtpReceiver__jitter_buffer = buffer  # type: ignore[attr-defined]


def negotiated_clock_rate(transceiver: RTCRtpTransceiver) -> int | None:
    """The RTP clock rate of the codec negotiated on ``transceiver``; None before negotiation."""
    codecs: list[Any] = transceiver._codecs
    return int(codecs[0].clockRate) if codecs else None


RtpObserver = Callable[[RtpPacket, RTCRtpCodecParameters, bool], None]


def observe_rtp_packets(receiver: RTCRtpReceiver, observer: RtpObserver) -> None:
    """Call ``observer(packet, codec, retransmitted)`` for each RTP packet ``receiver`` handles,
    before aiortc does: a packet of an unknown payload type, or one a disabled receiver drops, is
    not shown (aiortc drops it too); an RTX packet is shown unwrapped, as the media packet it carries."""
    handle = receiver._handle_rtp_packet
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    rtx_ssrc: dict[int, int] = receiver._RTCRtpReceiver__rtx_ssrc  # type: ignore[attr-defined]

    def observed(packet: RtpPacket, arrival_time_ms: int) -> Coroutine[Any, Any, None]:
        # Not a coroutine of its own: aiortc awaits the one returned, one frame less per packet.
        codec = codecs.get(packet.payload_type)
        if codec is not None and receiver._enabled:
            try:
                _show(packet, codec)
            except Exception:  # counting must never drop a packet
                log.debug("RTP observer failed", exc_info=True)
        return handle(packet, arrival_time_ms)

    def _show(packet: RtpPacket, codec: RTCRtpCodecParameters) -> None:
        if not is_rtx(codec):
            observer(packet, codec, False)
            return
        apt = codec.parameters.get("apt")
        media_ssrc = rtx_ssrc.get(packet.ssrc)
        if media_ssrc is not None and len(packet.payload) >= 2 and isinstance(apt, int) and apt in codecs:
            observer(unwrap_rtx(packet, payload_type=apt, ssrc=media_ssrc), codecs[apt], True)

    receiver._handle_rtp_packet = observed  # type: ignore[method-assign]


def observe_receiver_reports(sender: RTCRtpSender, observer: Callable[[RtcpReceiverInfo, float | None], None]) -> None:
    """Call ``observer(block, rtt)`` for each RTCP report block about ``sender``'s stream, with the
    round-trip time it gives in seconds (RFC 3550 6.4.1: now − LSR − DLSR) or None when it echoes
    no sender report of ours. aiortc keeps only an average of these (``roundTripTime``), and only
    its latest sender report: a report echoing an earlier one (routine when both sides' RTCP
    intervals are random) would give no RTT, so the last 32 sender reports are remembered here.
    An idle sender repeats its NTP timestamp (aiortc stamps the last RTP packet), so a repeated LSR
    takes the latest send time: the far side echoes the latest report it received."""
    handle, send = sender._handle_rtcp_packet, sender._send_rtcp
    sent: collections.OrderedDict[int, float] = collections.OrderedDict()

    async def sending(packets: Any) -> None:
        lsr = sender._RTCRtpSender__lsr  # type: ignore[attr-defined]
        if lsr is not None and any(isinstance(p, RtcpSrPacket) for p in packets):
            sent[lsr] = sender._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
            sent.move_to_end(lsr)
            while len(sent) > 32:
                sent.popitem(last=False)
        await send(packets)

    def observed(packet: Any) -> Coroutine[Any, Any, None]:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            for block in packet.reports:
                if block.ssrc == sender._ssrc:
                    at = sent.get(block.lsr) if block.lsr and block.dlsr else None
                    observer(block, time.time() - at - block.dlsr / 65536 if at is not None else None)
        return handle(packet)

    sender._send_rtcp = sending  # type: ignore[method-assign]
    sender._handle_rtcp_packet = observed  # type: ignore[method-assign]


def transport_counts(pc: RTCPeerConnection) -> tuple[int, int, int, int]:
    """``(packets sent, packets received, bytes sent, bytes received)``: every datagram (DTLS,
    SRTP, SRTCP, SCTP) of the peer connection's DTLS transports, as aiortc's ``transport`` stats count them."""
    totals = [0, 0, 0, 0]
    for dtls in {id(t): t for t in dtls_transports(pc)}.values():
        for i, name in enumerate(("tx_packets", "rx_packets", "tx_bytes", "rx_bytes")):
            totals[i] += getattr(dtls, f"_RTCDtlsTransport__{name}")
    return totals[0], totals[1], totals[2], totals[3]


def sent_counts(sender: RTCRtpSender) -> tuple[int, int, int]:
    """``(ssrc, packets sent, payload bytes sent)`` of ``sender``, as its RTCP sender reports count them."""
    return (sender._ssrc, sender._RTCRtpSender__packet_count,  # type: ignore[attr-defined]
            sender._RTCRtpSender__octet_count)  # type: ignore[attr-defined]


# --- the lean RTP path (decode-free receive, pre-encoded send) ----------------------------
#
# aiortc handles each RTP packet in a task of its own with several awaits (ICE queue, DTLS
# receive loop, receiver, jitter buffer, decoder thread; track, sender loop, encoder, SRTP, ICE):
# at load, that per-packet Python is the ceiling, not the codecs or SRTP. These hooks move RTP
# (never RTCP, DTLS or SCTP, which keep aiortc's path) to plain synchronous calls at the socket.

RtpHandler = Callable[[bytes, float], object]


def take_rtp(pc: RTCPeerConnection, handler: RtpHandler) -> bool:
    """From now on decrypt each received SRTP packet (not SRTCP) where aioice hands it over and
    call ``handler(rtp, arrival)`` (plain RTP bytes, ``time.monotonic()``) instead of aiortc's
    path; the transport's packet counters (the liveness signal) still count it. Call once the
    transports exist (after ``setLocalDescription``); False if there were none."""
    done = False
    for dtls in {id(t): t for t in dtls_transports(pc)}.values():
        connection = gatherer_connection(dtls)
        if getattr(connection.data_received, "_peerbot_rtp", False):
            done = True
            continue
        _tap_rtp(connection, dtls, handler)
        done = True
    return done


def _tap_rtp(connection: Connection, dtls: RTCDtlsTransport, handler: RtpHandler) -> None:
    passed = connection.data_received
    clock = time.monotonic
    unprotect_error = pylibsrtp.Error

    def data_received(data: bytes, component: int) -> None:
        # SRTP: first byte 128-191 (RFC 7983); SRTCP: second byte 192-208 (RFC 5761).
        if 127 < data[0] < 192 and not 191 < data[1] < 209:
            srtp = dtls._rx_srtp
            if srtp is not None:
                dtls._RTCDtlsTransport__rx_bytes += len(data)  # type: ignore[attr-defined]
                dtls._RTCDtlsTransport__rx_packets += 1  # type: ignore[attr-defined]
                try:
                    plain = srtp.unprotect(data)
                except unprotect_error:  # as aiortc: a packet that does not authenticate is dropped
                    return
                try:
                    handler(plain, clock())
                except Exception:  # counting must never take the connection down
                    log.debug("lean RTP handler failed", exc_info=True)
                return
        passed(data, component)

    data_received._peerbot_rtp = True  # type: ignore[attr-defined]
    connection.data_received = data_received  # type: ignore[method-assign]


def receiver_codecs(receiver: RTCRtpReceiver) -> dict[int, RTCRtpCodecParameters]:
    """The receiver's codecs by payload type (empty until ``receive()``)."""
    codecs: dict[int, RTCRtpCodecParameters] = receiver._RTCRtpReceiver__codecs  # type: ignore[attr-defined]
    return codecs


def without_decoder(receiver: RTCRtpReceiver, on_started: Callable[[], None] | None = None) -> None:
    """Make ``receiver`` start without a decoder thread: aiortc starts one in ``receive()``, it is
    stopped as soon as it started (its track then ends: nobody reads it). ``on_started`` runs then."""
    receive = receiver.receive

    async def receive_without_decoding(parameters: Any) -> None:
        await receive(parameters)
        receiver._RTCRtpReceiver__stop_decoder()  # type: ignore[attr-defined]
        if on_started is not None:
            on_started()

    receiver.receive = receive_without_decoding  # type: ignore[method-assign]


class ParkedTrack(MediaStreamTrack):
    """A track that yields nothing until it stops: it gives a sender its place in the SDP while
    something else sends (a reflector) or nothing does (an idle sender)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        if self.readyState == "live":
            self._stopped = self._stopped or asyncio.get_running_loop().create_future()
            await self._stopped
        raise MediaStreamError

    def stop(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        super().stop()


def park_idle_sender(sender: RTCRtpSender, kind: str) -> None:
    """Give a sender that has nothing to send (a ``sendonly`` transceiver without a track) a track
    that never yields: without one, aiortc's sender task wakes every 20 ms to look for a track,
    50 wake-ups a second per idle sender. Nothing changes on the wire. The track stops with the sender."""
    if sender.track is None:
        sender.replaceTrack(ParkedTrack(kind))


def is_parked(track: MediaStreamTrack | None) -> bool:
    """Whether ``track`` is the placeholder ``park_idle_sender`` gave a sender."""
    return isinstance(track, ParkedTrack)


class _SeqTs:
    __slots__ = ("sequence_number", "timestamp")

    def __init__(self, sequence_number: int, timestamp: int) -> None:
        self.sequence_number, self.timestamp = sequence_number, timestamp


def feed_receiver_report(receiver: RTCRtpReceiver, ssrc: int, clock_rate: int, seq: int, timestamp: int) -> None:
    """Count a packet taken by ``take_rtp`` in the statistics aiortc's RTCP receiver reports are made
    of, so the far side still gets its loss, jitter and round-trip time."""
    streams: dict[int, StreamStatistics] = receiver._RTCRtpReceiver__remote_streams  # type: ignore[attr-defined]
    stream = streams.get(ssrc)
    if stream is None:
        stream = streams[ssrc] = StreamStatistics(clock_rate)
    stream.add(_SeqTs(seq, timestamp))  # type: ignore[arg-type]


def after_send_started(sender: RTCRtpSender, callback: Callable[[RTCRtpCodecParameters], None]) -> None:
    """Call ``callback(codec)`` once aiortc has started ``sender`` (``send()``: mid, header
    extensions and SSRC known), with the codec it sends."""
    send = sender.send

    async def send_then_call(parameters: Any) -> None:
        await send(parameters)
        callback(parameters.codecs[0])

    sender.send = send_then_call  # type: ignore[method-assign]


class RtpSendContext:
    """Sends one sender's RTP packets synchronously: header from a template (its SSRC, payload
    type and mid extension), SRTP, and straight to the nominated pair's socket (through an
    impairment's link when one is attached). The sender's RTCP sender reports keep counting."""

    __slots__ = ("_sender", "_dtls", "_connection", "_header", "sequence_number", "ssrc")

    def __init__(self, sender: RTCRtpSender, codec: RTCRtpCodecParameters) -> None:
        self._sender = sender
        dtls = sender.transport
        self._dtls = dtls
        self._connection = gatherer_connection(dtls)
        self.ssrc = sender._ssrc
        packet = RtpPacket(payload_type=codec.payloadType or 0, sequence_number=0, timestamp=0, ssrc=self.ssrc)
        packet.extensions.mid = sender._RTCRtpSender__mid  # type: ignore[attr-defined]
        extensions = sender._RTCRtpSender__rtp_header_extensions_map  # type: ignore[attr-defined]
        self._header = bytearray(packet.serialize(extensions))
        self.sequence_number = random.randrange(1 << 16)

    def send(self, payload: bytes, timestamp: int, ntp_time: int) -> bool:
        """Send one packet now; False when the connection cannot carry it (not connected, closed)."""
        dtls = self._dtls
        srtp = dtls._tx_srtp
        pair = self._connection._nominated.get(1)
        if srtp is None or pair is None or dtls._state is not DtlsState.CONNECTED:
            return False
        header = self._header
        _SEQ_TS.pack_into(header, 2, self.sequence_number, timestamp)
        data = srtp.protect(bytes(header) + payload)
        transport = pair.protocol.transport
        if transport is None:
            return False
        try:
            transport.sendto(data, pair.remote_addr)
        except (OSError, AttributeError):  # the socket is closing
            return False
        self.sequence_number = (self.sequence_number + 1) & 0xFFFF
        dtls._RTCDtlsTransport__tx_bytes += len(data)  # type: ignore[attr-defined]
        dtls._RTCDtlsTransport__tx_packets += 1  # type: ignore[attr-defined]
        sender = self._sender
        sender._RTCRtpSender__octet_count += len(payload)  # type: ignore[attr-defined]
        sender._RTCRtpSender__packet_count += 1  # type: ignore[attr-defined]
        sender._RTCRtpSender__rtp_timestamp = timestamp  # type: ignore[attr-defined]
        sender._RTCRtpSender__ntp_timestamp = ntp_time  # type: ignore[attr-defined]
        return True


_SEQ_TS = struct.Struct("!HI")


# --- closing --------------------------------------------------------------------------

CLOSE_STEP_TIMEOUT = 2.0


async def _attempt(what: str, step: Callable[[], Awaitable[object]]) -> bool:
    try:
        await asyncio.wait_for(step(), CLOSE_STEP_TIMEOUT)
    except Exception as exc:  # whatever aiortc raises here, closing goes on
        log.debug("closing the peer connection: %s failed: %r", what, exc)
        return False
    return True


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close ``pc`` and every transport it holds; never raises (failures are logged at debug).

    ``close()`` stops its parts in order and gives up at the first that raises (an offer with an
    empty ``a=mid:`` leaves the SCTP transport without a DTLS transport), leaving the ICE sockets
    open; a second ``close()`` then waits forever. So it is called once, with a time limit, and
    whatever it did not reach is stopped one public transport object at a time.
    """
    if await _attempt("close()", pc.close):
        return
    for transceiver in pc.getTransceivers():
        await _attempt("a transceiver", transceiver.stop)
    dtls = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        await _attempt("the SCTP transport", pc.sctp.stop)
        dtls.append(pc.sctp.transport)
    for transport in dtls:
        if transport is None:
            continue
        await _attempt("a DTLS transport", transport.stop)
        await _attempt("an ICE transport", transport.transport.stop)
    pc.remove_all_listeners()


# --- logging --------------------------------------------------------------------------

_SECRETS = (
    re.compile(r"(a=ice-pwd:)\S+"),
    re.compile(r"""((?:credential|password|ice_pwd|remote_password|local_password)['"]?\s*[=:]\s*['"]?)[^'",\s)]+""",
               re.IGNORECASE),
)
_REDACTED = "…(redacted)"
_LIBRARY_LOGGERS = ("aiortc", "aioice")
# Modules that may be imported after the engine: their loggers are made now, filter included.
_LATE_LOGGERS = ("aiortc.contrib.media", "aiortc.contrib.signaling")


def redact_secrets(text: str) -> str:
    """``text`` with ICE passwords and TURN credentials replaced."""
    for pattern in _SECRETS:
        text = pattern.sub(lambda match: match.group(1) + _REDACTED, text)
    return text


class SecretsFilter(logging.Filter):
    """Rewrites a record whose message holds an ICE password or a credential; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact_secrets(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_FILTER = SecretsFilter()


def install_log_filter() -> None:
    """Put the filter on aiortc's and aioice's loggers (a logger's filter does not see its
    children's records, so each module's logger gets it); idempotent."""
    names = {*_LIBRARY_LOGGERS, *_LATE_LOGGERS}
    names.update(name for name in logging.Logger.manager.loggerDict
                 if name.split(".", 1)[0] in _LIBRARY_LOGGERS)
    for name in names:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


check_versions()
install_log_filter()
