"""Per-packet receive counting for one RTP stream (RFC 3550 A.1, A.3 and 6.4.1), done by peerbot.

aiortc's own counters take arrival times from the wall clock (``time.time()``, which NTP may
step), never unwrap the 32-bit RTP timestamp, count RTX packets as a stream of their own that
then hides the media stream in ``getStats()`` (both share one id), and let a timestamp jump feed
the jitter. :class:`ReceiveCounter` is called once per packet with a few integer and float
operations; its figures are read at any time.

Jitter (RFC 3550 6.4.1), in seconds: for two packets *i*, *j* in sequence order,
``D = (Rj − Ri) − (Sj − Si) / clock_rate`` (R: arrival, monotonic seconds; S: RTP timestamp,
unwrapped), and ``J += (|D| − J) / 16``. As libwebrtc does, only in-order packets with a new
timestamp that are not retransmissions update it. Unlike libwebrtc (which ignores steps of 5 s
of a 90 kHz clock), a step ``|D| ≥ MAX_TRANSIT_STEP`` is not network jitter: it is the sender's
timestamps jumping over a gap nobody read (paced sources skip it, and aiortc's Opus encoder
delivers the first frame after the jump with the old cadence, so one gap gives two opposite
steps of its size), a stalled sender or receiver, or a new timeline; the reference is moved to
the packet and the estimate is left as it was. Such a step is what made an idle call read
172 ms: the receiving loop (or the sender) stalls S seconds, the packets queued meanwhile are
handled at once, and aiortc's estimate jumps by S/16, so 172 ms is one 2.75 s stall (a stall
injected into a loopback call: aiortc 180 ms, this counter 1.1 ms). Stalls below the bound
(a busy 2-core machine) still count, as libwebrtc counts them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc import RTCRtpCodecParameters
from aiortc.rtp import RtcpReceiverInfo, RtpPacket

MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward jump larger than this is a restart, not loss
MAX_MISORDER = 100  # a backward step up to this is a late (reordered) or duplicate packet
SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
MAX_TRANSIT_STEP = 0.5  # seconds; see the module docstring


class ReceiveCounter:
    """RFC 3550 receive statistics of one SSRC: ``packets_received`` (duplicates and
    retransmissions included, as W3C counts them), ``packets_expected`` (extended highest
    sequence number − first + 1), ``packets_lost`` (expected − received: negative with
    duplicates, as W3C allows), ``bytes_received`` (payload octets, as RTCP counts them) and
    ``jitter`` in seconds."""

    __slots__ = ("clock_rate", "packets_received", "bytes_received", "retransmitted_packets_received",
                 "jitter", "_base", "_max", "_cycles", "_bad_seq", "_expected_before",
                 "_last_arrival", "_last_ts")

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self.packets_received = 0
        self.bytes_received = 0
        self.retransmitted_packets_received = 0
        self.jitter = 0.0
        self._base: int | None = None  # first sequence number of the current run
        self._max = 0
        self._cycles = 0
        self._bad_seq: int | None = None
        self._expected_before = 0  # what earlier runs (before a restart) expected
        self._last_arrival: float | None = None
        self._last_ts = 0

    @property
    def packets_expected(self) -> int:
        """Packets the sender sent by the sequence numbers seen, since the first one."""
        if self._base is None:
            return self._expected_before
        return self._expected_before + self._cycles + self._max - self._base + 1

    @property
    def packets_lost(self) -> int:
        return self.packets_expected - self.packets_received

    def add(self, seq: int, timestamp: int, arrival: float, payload_bytes: int, *, retransmitted: bool = False) -> None:
        """Count one packet: its sequence number, RTP timestamp, arrival (monotonic seconds) and payload size."""
        self.packets_received += 1
        self.bytes_received += payload_bytes
        if retransmitted:
            self.retransmitted_packets_received += 1
        if self._base is None:
            self._start(seq)
            self._reference(timestamp, arrival)
            return
        delta = (seq - self._max) % SEQ_MOD
        if 0 < delta < MAX_DROPOUT:  # in order, with a permissible gap
            if seq < self._max:
                self._cycles += SEQ_MOD
            self._max = seq
            self._bad_seq = None
            if not retransmitted:
                self._update_jitter(timestamp, arrival)
        elif delta >= SEQ_MOD - MAX_MISORDER or delta == 0:
            pass  # late or duplicate: counted as received, the highest sequence number stays
        elif seq == self._bad_seq:
            # Two packets in sequence after a big jump: the sender restarted its numbering.
            self._expected_before = self.packets_expected
            self._start((seq - 1) % SEQ_MOD)  # the run begins with the packet that announced the jump
            self._max = seq
            self._reference(timestamp, arrival)
        else:
            self._bad_seq = (seq + 1) % SEQ_MOD

    def _start(self, seq: int) -> None:
        self._base = self._max = seq
        self._cycles = 0
        self._bad_seq = None

    def _reference(self, timestamp: int, arrival: float) -> None:
        self._last_ts, self._last_arrival = timestamp, arrival

    def _update_jitter(self, timestamp: int, arrival: float) -> None:
        if timestamp == self._last_ts or self._last_arrival is None:
            return  # another packet of the same frame: same sampling instant
        # The signed 32-bit difference: timestamps wrap.
        step = ((timestamp - self._last_ts + TS_MOD // 2) % TS_MOD) - TS_MOD // 2
        transit_step = (arrival - self._last_arrival) - step / self.clock_rate
        self._reference(timestamp, arrival)
        if abs(transit_step) < MAX_TRANSIT_STEP:
            self.jitter += (abs(transit_step) - self.jitter) / 16


class ReceivedStream:
    """One received SSRC: its kind, codec (``audio/opus``) and RFC 3550 counter."""

    __slots__ = ("kind", "codec", "counter")

    def __init__(self, kind: str, codec: str, clock_rate: int) -> None:
        self.kind, self.codec, self.counter = kind, codec, ReceiveCounter(clock_rate)


class ReceivedStreams:
    """The receive counters of a peer's streams, by SSRC, fed by ``packet()`` once per RTP packet."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.streams: dict[int, ReceivedStream] = {}
        self._clock = clock

    def observer(self, kind: str) -> Callable[[RtpPacket, RTCRtpCodecParameters, bool], None]:
        """What ``_aiortc.observe_rtp_packets`` calls for a receiver of ``kind``."""
        def packet(packet: RtpPacket, codec: RTCRtpCodecParameters, retransmitted: bool) -> None:
            stream = self.streams.get(packet.ssrc)
            if stream is None:
                stream = self.streams[packet.ssrc] = ReceivedStream(kind, codec.mimeType, codec.clockRate)
            # The arrival is taken here, on the monotonic clock: aiortc's is wall-clock milliseconds.
            stream.counter.add(packet.sequence_number, packet.timestamp, self._clock(), len(packet.payload),
                               retransmitted=retransmitted)
        return packet


class ReportedStream:
    """What the far side's RTCP receiver reports say of one of our streams (W3C remote-inbound-rtp)."""

    __slots__ = ("kind", "clock_rate", "packets_lost", "fraction_lost", "jitter", "round_trip_time",
                 "total_round_trip_time", "round_trip_time_measurements", "reports_received")

    def __init__(self, kind: str, clock_rate: int) -> None:
        self.kind, self.clock_rate = kind, clock_rate
        self.packets_lost = 0
        self.fraction_lost = 0.0
        self.jitter = 0.0
        self.round_trip_time: float | None = None
        self.total_round_trip_time = 0.0
        self.round_trip_time_measurements = 0
        self.reports_received = 0

    def report(self, block: RtcpReceiverInfo, rtt: float | None) -> None:
        """Fold in one report block, and the round-trip time it gave (None when it had none)."""
        self.reports_received += 1
        self.packets_lost = block.packets_lost
        self.fraction_lost = block.fraction_lost / 256  # RTCP carries it in 1/256ths
        self.jitter = block.jitter / self.clock_rate
        if rtt is not None and rtt >= 0:  # a negative one is a clock step between SR and RR
            self.round_trip_time = rtt
            self.total_round_trip_time += rtt
            self.round_trip_time_measurements += 1
