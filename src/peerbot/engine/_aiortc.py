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
import functools
import logging
import re
import ssl
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from aioice import Connection
from aioice.ice import CandidatePair, StunProtocol
from aiortc import (RTCDtlsTransport, RTCPeerConnection, RTCRtpCodecParameters, RTCRtpReceiver, RTCRtpSender,
                    RTCRtpTransceiver)
from aiortc.codecs import is_rtx
from aiortc.jitterbuffer import JitterBuffer
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
    no sender report of ours. aiortc keeps only an average of these (``roundTripTime``)."""
    handle = sender._handle_rtcp_packet

    def observed(packet: Any) -> Coroutine[Any, Any, None]:
        if isinstance(packet, (RtcpRrPacket, RtcpSrPacket)):
            lsr = sender._RTCRtpSender__lsr  # type: ignore[attr-defined]
            lsr_time = sender._RTCRtpSender__lsr_time  # type: ignore[attr-defined]
            for block in packet.reports:
                if block.ssrc == sender._ssrc:
                    echoed = lsr is not None and block.lsr == lsr and block.dlsr
                    observer(block, time.time() - lsr_time - block.dlsr / 65536 if echoed else None)
        return handle(packet)

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
