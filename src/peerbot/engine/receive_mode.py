"""Decode-free receive: RTP counted, ordered and timed as it arrives, never decoded.

With ``receive="count"`` a ``Peer`` starts its receivers without a decoder thread and takes each
SRTP packet at the socket (``_aiortc.take_rtp``): one synchronous call per packet instead of
aiortc's tasks, queues and decoder. Each packet feeds

- peerbot's RFC 3550 counters (``rtp_stats``: loss, jitter, bytes), as in decode mode;
- the statistics aiortc's RTCP receiver reports are made of, so the far side keeps its figures;
- for audio, ``RtpPlayoutMeter``: the virtual playout device of ``media.receive_stats`` (same
  target delay, late, concealed, coverage) fed with each packet's RTP time and duration (the
  Opus TOC byte says how long a packet is) at its arrival, instead of decoded frames. What it
  cannot know without decoding: ``audioLevel`` and ``totalAudioEnergy`` stay 0.

RTX packets are not counted (audio has none; video in count mode shows its losses unrepaired).
``RtpReflector`` sends what is received back unchanged (the local servers' reflect mode).
``decodes(index, fraction)`` is the ``--decode-sample`` rule: which participants of a load test
decode (and measure real playout) while the others count.
"""

from __future__ import annotations

import asyncio
import math
import random
import struct
import time
from collections.abc import Callable
from typing import Any, Literal

from aiortc import RTCPeerConnection, RTCRtpReceiver
from aiortc import clock as aiortc_clock
from aiortc.codecs import is_rtx

from ..errors import ConfigurationError
from ..media.receive_stats import _MAX_JUMP, AudioPlayoutMeter
from . import _aiortc
from .rtp_stats import ReceivedStream, ReceivedStreams

ReceiveMode = Literal["decode", "count"]

_HEADER = struct.Struct("!HII")  # sequence number, timestamp, SSRC, from byte 2
_TS_MOD = 1 << 32
# Opus TOC (RFC 6716 3.1): frame duration in 48 kHz samples by configuration number.
_OPUS_FRAME = ([480, 960, 1920, 2880] * 3) + [480, 960] * 2 + [120, 240, 480, 960] * 4


def decodes(index: int, fraction: float) -> bool:
    """Whether participant ``index`` (0, 1, 2…) of a load test decodes, for a decode sample of
    ``fraction`` (0-1): spread evenly, so any prefix of N participants decodes ≈ N × fraction
    of them (5 % is participants 0, 20, 40…): the first one always when fraction > 0."""
    if not 0 <= fraction <= 1 or isinstance(fraction, bool):
        raise ConfigurationError(f"the decode sample must be a fraction from 0 to 1, got {fraction!r}")
    if fraction <= 0:
        return False
    return math.floor(index * fraction) > math.floor((index - 1) * fraction)


def opus_samples(payload: bytes | memoryview, offset: int = 0) -> int:
    """Samples (at 48 kHz) in one Opus packet, from its TOC byte; 960 (20 ms) if it cannot tell."""
    if len(payload) <= offset:
        return 960
    toc = payload[offset]
    frames = toc & 3
    count = 1 if frames == 0 else 2 if frames < 3 else (payload[offset + 1] & 0x3F if len(payload) > offset + 1 else 1)
    return _OPUS_FRAME[toc >> 3] * max(1, count)


class RtpPlayoutMeter(AudioPlayoutMeter):
    """``AudioPlayoutMeter`` fed with RTP packets instead of decoded frames (same figures)."""

    def __init__(self) -> None:
        super().__init__()
        self._last_ts: int | None = None  # the highest timestamp so far, and its unwrapped value
        self._last_extended = 0
        self.first_arrival: float | None = None  # monotonic time of the first packet
        self._waiters: list[asyncio.Future[float]] = []

    async def first_packet(self) -> float:
        """Wait for the first audio packet (at once if one came); return its arrival (``time.monotonic()``)."""
        if self.first_arrival is not None:
            return self.first_arrival
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        return await waiter

    def new_source(self) -> None:
        super().new_source()
        self._last_ts = None

    def on_packet(self, timestamp: int, clock_rate: int, samples: int, arrival: float) -> None:
        """Account one packet: RTP ``timestamp``, ``samples`` long at ``clock_rate``, arrived at ``arrival``."""
        if self._ended_at is not None:
            return
        if self.first_arrival is None:
            self.first_arrival = arrival
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_result(arrival)
            self._waiters.clear()
        if self._last_ts is None:
            extended = timestamp
        else:  # unwrapped by the signed 32-bit difference: a packet on either side of a wrap stays in line
            extended = self._last_extended + ((timestamp - self._last_ts + _TS_MOD // 2) % _TS_MOD) - _TS_MOD // 2
        if self._last_ts is None or extended > self._last_extended:
            self._last_ts, self._last_extended = timestamp, extended
        rtp = extended / clock_rate
        self._rate = clock_rate
        self._frames += 1
        if self._new_source or not self._cursor - _MAX_JUMP <= rtp <= self._cursor + _MAX_JUMP:
            self._restart(rtp, arrival)
        self._play(rtp, samples / clock_rate, arrival)


class PacketCounter:
    """What ``take_rtp`` hands each received RTP packet to in count mode: parses the header,
    finds the receiver by payload type and feeds the counters (see the module docstring)."""

    def __init__(self, pc: RTCPeerConnection, received: ReceivedStreams, audio_meter: RtpPlayoutMeter | None) -> None:
        self._pc = pc
        self._received = received
        self._audio_meter = audio_meter  # the session's, which outlives the peer
        # payload type -> (receiver, kind, mime type, clock rate, is Opus); None: not ours
        self._routes: dict[int, tuple[RTCRtpReceiver, str, str, int, bool] | None] = {}

    def _route(self, payload_type: int) -> tuple[RTCRtpReceiver, str, str, int, bool] | None:
        for transceiver in self._pc.getTransceivers():
            codec = _aiortc.receiver_codecs(transceiver.receiver).get(payload_type)
            if codec is not None and not is_rtx(codec):
                route = (transceiver.receiver, transceiver.kind, codec.mimeType, codec.clockRate,
                         codec.mimeType.lower() == "audio/opus")
                self._routes[payload_type] = route
                return route
        return None  # receive() has not run yet (a packet before it is dropped, as aiortc does)

    def packet(self, data: bytes, arrival: float) -> tuple[str, int, int, int] | None:
        """Count one packet; ``(kind, RTP timestamp, payload start, payload end)``, or None when
        it is not one of ours (too short, malformed, an unknown payload type)."""
        if len(data) < 12:
            return None
        first = data[0]
        payload_type = data[1] & 0x7F
        seq, timestamp, ssrc = _HEADER.unpack_from(data, 2)
        start = 12 + 4 * (first & 0x0F)
        if first & 0x10:  # header extension: 4 bytes, then its length in 32-bit words
            if len(data) < start + 4:
                return None
            start += 4 + 4 * ((data[start + 2] << 8) | data[start + 3])
        end = len(data) - (data[-1] if first & 0x20 else 0)
        if end < start:
            return None
        route = self._routes.get(payload_type) or self._route(payload_type)
        if route is None:
            return None
        receiver, kind, mime, clock_rate, opus = route
        stream = self._received.streams.get(ssrc)
        if stream is None:
            stream = self._received.streams[ssrc] = ReceivedStream(kind, mime, clock_rate)
            meter = self._audio_meter if kind == "audio" else None
            if meter is not None and len(self._received.streams) > 1:
                meter.new_source()  # the far side changed its SSRC: a new RTP clock
        stream.counter.add(seq, timestamp, arrival, end - start)
        _aiortc.feed_receiver_report(receiver, ssrc, clock_rate, seq, timestamp)
        if kind == "audio" and end > start:
            meter = self._audio_meter
            if meter is not None:
                samples = opus_samples(data, start) if opus else round(0.020 * clock_rate)
                meter.on_packet(timestamp, clock_rate, samples, arrival)
        return kind, timestamp, start, end


    def observer(self, kind: str) -> Callable[[Any, Any, bool], None]:
        """For ``rtp="aiortc"`` (to compare against): what ``_aiortc.observe_rtp_packets`` calls for
        each packet aiortc's own receive path handles (its jitter buffer, no decoder thread)."""
        count = self._received.observer(kind)
        clock = time.monotonic

        def observed(packet: Any, codec: Any, retransmitted: bool) -> None:
            count(packet, codec, retransmitted)
            meter = self._audio_meter if kind == "audio" and not retransmitted else None
            if meter is not None and packet.payload:
                opus = codec.mimeType.lower() == "audio/opus"
                samples = opus_samples(packet.payload) if opus else round(0.020 * codec.clockRate)
                meter.on_packet(packet.timestamp, codec.clockRate, samples, clock())

        return observed


class RtpReflector:
    """Sends each received audio packet's payload straight back on our own audio sender, as an
    SFU forwards: no decode, no encode, no queue. The sender keeps its own SSRC and sequence
    numbers; timestamps keep the far side's spacing from an origin of our own."""

    def __init__(self) -> None:
        self._send: Callable[[bytes, int, int], bool] | None = None
        self._origin = random.randrange(_TS_MOD)
        self._first: int | None = None
        self.packets_reflected = 0

    def start(self, send: Callable[[bytes, int, int], bool]) -> None:
        """Begin reflecting through ``send(payload, timestamp, ntp)`` (an ``RtpSendContext.send``)."""
        self._send = send

    def reflect(self, payload: bytes, timestamp: int) -> None:
        if self._send is None:
            return
        if self._first is None:
            self._first = timestamp
        if self._send(payload, (self._origin + timestamp - self._first) % _TS_MOD, aiortc_clock.current_ntp_time()):
            self.packets_reflected += 1
