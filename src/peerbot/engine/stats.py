"""Call quality figures users need, computed from aiortc's sparse ``getStats()``.

aiortc reports jitter in RTP timestamp units and loss as raw counters or a fraction of 256;
this module turns two successive reports into bitrates, loss %, jitter and RTT in ms, and a
MOS estimate (the simplified ITU-T G.107 E-model used by most WebRTC dashboards).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Default RTP clocks when the negotiated codec is not known: Opus 48 kHz, video 90 kHz.
_AUDIO_CLOCK = 48000
_VIDEO_CLOCK = 90000


@dataclass(frozen=True)
class CallStats:
    """A snapshot of a call's quality; rates over the last interval, packet and byte counters
    (``bytes_*``: the transport's, RTP with RTCP and DTLS) since the current connection started.
    ``reconnects`` counts connections rebuilt after an outage and ``outage_seconds`` the time
    without media they cost, from the last packet heard to the new connection (both 0 for a bare
    ``Peer``)."""

    bitrate_in_kbps: float = 0.0
    bitrate_out_kbps: float = 0.0
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    loss_percent: float = 0.0
    remote_loss_percent: float = 0.0
    jitter_ms: float = 0.0
    rtt_ms: float | None = None
    mos: float | None = None
    reconnects: int = 0
    outage_seconds: float = 0.0

    def summary(self) -> str:
        """One line for a status display."""
        rtt = f"{self.rtt_ms:.0f} ms" if self.rtt_ms is not None else "–"
        mos = f"{self.mos:.1f}" if self.mos is not None else "–"
        return (
            f"in {self.bitrate_in_kbps:.0f} kbps · out {self.bitrate_out_kbps:.0f} kbps · "
            f"loss {self.loss_percent:.1f}% · jitter {self.jitter_ms:.1f} ms · RTT {rtt} · MOS {mos}"
        )


def mos_estimate(rtt_ms: float, jitter_ms: float, loss_percent: float) -> float:
    """Mean opinion score (1–4.5) from delay, jitter and loss, by the simplified E-model."""
    latency = rtt_ms / 2 + 2 * jitter_ms + 10
    r = 93.2 - (latency / 40 if latency < 160 else (latency - 120) / 10) - 2.5 * loss_percent
    r = max(0.0, min(100.0, r))
    return round(max(1.0, min(4.5, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))), 2)


class StatsTracker:
    """Keeps the previous report so each new one yields rates over the interval."""

    def __init__(self) -> None:
        self._last_time: float | None = None
        self._last_in = 0
        self._last_out = 0
        self.latest = CallStats()
        self.transport_packets_received = 0

    def update(self, report: Any, clock_rates: Mapping[str, int] | None = None) -> CallStats:
        """Fold in a ``getStats()`` report; ``clock_rates`` maps kind to the negotiated RTP clock."""
        clocks = {"audio": _AUDIO_CLOCK, "video": _VIDEO_CLOCK, **(clock_rates or {})}
        now = time.monotonic()
        bytes_in = bytes_out = 0
        transport_packets: int | None = None  # kept as it was when a report has no transport
        sent = received = lost = 0
        jitter_ms = 0.0
        rtts: list[float] = []
        remote_fraction: list[float] = []
        for stat in report.values():
            kind = stat.type
            if kind == "transport":  # one per transport: several when the far side does not bundle
                bytes_in, bytes_out = bytes_in + stat.bytesReceived, bytes_out + stat.bytesSent
                transport_packets = (transport_packets or 0) + stat.packetsReceived
            elif kind == "inbound-rtp":
                received += stat.packetsReceived
                lost += max(0, stat.packetsLost)
                jitter_ms = max(jitter_ms, stat.jitter / clocks[stat.kind] * 1000)
            elif kind == "outbound-rtp":
                sent += stat.packetsSent
            elif kind == "remote-inbound-rtp":
                if stat.roundTripTime is not None:  # none until a report echoes our last SR
                    rtts.append(stat.roundTripTime * 1000)
                remote_fraction.append(stat.fractionLost / 256 * 100)  # raw RTCP fraction, 0–255
        rate_in = rate_out = 0.0
        if self._last_time is not None and now > self._last_time:
            span = now - self._last_time
            rate_in = max(0, bytes_in - self._last_in) * 8 / span / 1000
            rate_out = max(0, bytes_out - self._last_out) * 8 / span / 1000
        self._last_time, self._last_in, self._last_out = now, bytes_in, bytes_out
        if transport_packets is not None:
            self.transport_packets_received = transport_packets
        loss = lost / (received + lost) * 100 if received + lost else 0.0
        rtt = max(rtts) if rtts else None
        self.latest = CallStats(
            bitrate_in_kbps=round(rate_in, 1),
            bitrate_out_kbps=round(rate_out, 1),
            packets_sent=sent,
            packets_received=received,
            packets_lost=lost,
            bytes_sent=bytes_out,
            bytes_received=bytes_in,
            loss_percent=round(loss, 2),
            remote_loss_percent=round(max(remote_fraction), 2) if remote_fraction else 0.0,
            jitter_ms=round(jitter_ms, 2),
            rtt_ms=round(rtt, 1) if rtt is not None else None,
            mos=mos_estimate(rtt or 0.0, jitter_ms, loss) if received else None,
        )
        return self.latest
