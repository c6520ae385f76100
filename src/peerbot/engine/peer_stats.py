"""A peer connection's counters, read into a ``PeerSnapshot``: peerbot's own per-packet receive
counts, the far side's RTCP reports of our streams, our senders' counts, the transport's bytes
and the playout/render meters of the received streams."""

from __future__ import annotations

from typing import Any

from aiortc import RTCPeerConnection, RTCRtpReceiver

from . import _aiortc
from .rtp_stats import ReceivedStreams, ReportedStream
from .stats import CandidatePairStats, InboundRtpStats, OutboundRtpStats, PeerSnapshot, RemoteInboundRtpStats

_AUDIO_FIELDS = ("totalSamplesReceived", "totalSamplesDuration", "concealedSamples", "concealmentEvents",
                 "lateSamples", "audioCoverage")
_VIDEO_FIELDS = ("framesReceived", "framesDecoded", "framesDropped", "framesPerSecond", "freezeCount",
                 "totalFreezesDuration", "pauseCount")


class PeerStats:
    """Hooks a peer connection's receivers and senders and reads their counters at any time
    (also after the connection closed: the counters are peerbot's)."""

    def __init__(self, pc: RTCPeerConnection, readers: dict[str, Any]) -> None:
        self._pc = pc
        self._readers = readers  # kind -> TrackReader, whose hub carries the playout/render meter
        self.received = ReceivedStreams()
        self.reported: dict[int, ReportedStream] = {}
        self._senders: set[int] = set()

    def watch_receiver(self, receiver: RTCRtpReceiver, kind: str) -> None:
        """Count each RTP packet ``receiver`` handles (call before packets arrive)."""
        _aiortc.observe_rtp_packets(receiver, self.received.observer(kind))

    def watch_senders(self) -> None:
        """Collect the far side's reports on each sender not watched yet (idempotent)."""
        for transceiver in self._pc.getTransceivers():
            sender = transceiver.sender
            if id(sender) in self._senders:
                continue
            self._senders.add(id(sender))
            clock_rate = _aiortc.negotiated_clock_rate(transceiver) or (48000 if transceiver.kind == "audio" else 90000)
            stream = self.reported.setdefault(_aiortc.sent_counts(sender)[0], ReportedStream(transceiver.kind, clock_rate))
            _aiortc.observe_receiver_reports(sender, stream.report)

    def transport_packets_received(self) -> int:
        """Datagrams received so far (RTP, RTCP, DTLS, SCTP): the liveness signal."""
        return _aiortc.transport_counts(self._pc)[1]

    def snapshot(self, pair: Any = None) -> PeerSnapshot:
        """The counters now; ``pair`` is the peer's ``CandidatePairInfo`` (None before connecting)."""
        playout = self._readers["audio"].playout_stats()
        render = self._readers["video"].render_stats()
        inbound = tuple(self._inbound(ssrc, s, playout, render) for ssrc, s in self.received.streams.items())
        outbound = []
        for transceiver in self._pc.getTransceivers():
            ssrc, packets, octets = _aiortc.sent_counts(transceiver.sender)
            if packets:
                outbound.append(OutboundRtpStats(f"outbound-rtp:{transceiver.kind}:{ssrc}", transceiver.kind, ssrc,
                                                 packets, octets))
        remote = tuple(
            RemoteInboundRtpStats(f"remote-inbound-rtp:{r.kind}:{ssrc}", r.kind, ssrc, r.packets_lost,
                                  r.fraction_lost, r.jitter, r.round_trip_time, r.total_round_trip_time,
                                  r.round_trip_time_measurements, r.reports_received)
            for ssrc, r in self.reported.items() if r.reports_received)
        sent, received, bytes_sent, bytes_received = _aiortc.transport_counts(self._pc)
        candidate_pair = None
        if pair is not None:
            candidate_pair = CandidatePairStats(pair.local_type, pair.local_address, pair.remote_type,
                                                pair.remote_address, pair.relay_transport, sent, received,
                                                bytes_sent, bytes_received)
        return PeerSnapshot(inbound, tuple(outbound), remote, candidate_pair, received, playout, render)

    @staticmethod
    def _inbound(ssrc: int, stream: Any, playout: Any, render: Any) -> InboundRtpStats:
        counter = stream.counter
        meter, names = (playout, _AUDIO_FIELDS) if stream.kind == "audio" else (render, _VIDEO_FIELDS)
        extra = {name: getattr(meter, name) for name in names} if meter is not None else {}
        return InboundRtpStats(
            f"inbound-rtp:{stream.kind}:{ssrc}", stream.kind, ssrc, stream.codec, counter.clock_rate,
            counter.packets_received, counter.packets_lost, round(counter.jitter, 6), counter.bytes_received,
            counter.retransmitted_packets_received, **extra)
