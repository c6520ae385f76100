"""A call's quality figures: a typed, immutable ``StatsReport`` organised like W3C ``RTCStatsReport``.

Per-stream entries carry the webrtc-stats names (camelCase, as aiortc's own stats objects) and
units: seconds for ``jitter`` and round-trip times, ``fractionLost`` 0–1, bytes as RTP payload
octets. The ``summary`` holds what a user reads at a glance in snake_case with the unit in the
name, the same names as the metrics contract (``peerbot.quality.metrics``), which ``to_metrics()``
returns flat. The README's "Call quality figures" table documents every field.

MOS, by the simplified ITU-T G.107 E-model (Cole & Rosenbluth), from the audio figures::

    Le  = RTT / 2 + 2 × J + 10 ms                      (effective latency; J: audio jitter)
    R   = 93.2 − (Le / 40 if Le < 160 ms else (Le − 120) / 10) − 2.5 × P
    MOS = 1 + 0.035 R + 7·10⁻⁶ R (R − 60)(100 − R),    R clamped to 0–100, MOS to 1–4.5

where P (%) is the larger of the packet loss and the concealed audio over the last interval: audio
that came too late to be played is as lost to a listener as a packet that never came. The final
report (taken at hang-up, ``record(final=True)``) has the whole call's MOS instead: P is the larger
of ``loss_percent`` and ``concealed_percent``, both over the whole call (RTT and J those of the end).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..media.receive_stats import AudioPlayoutStats, VideoRenderStats

__all__ = ["CandidatePairStats", "InboundRtpStats", "OutboundRtpStats", "RemoteInboundRtpStats", "StatsReport",
           "StatsSummary", "mos_estimate"]


class ReadOnlyMapping(Mapping[str, float]):
    """A mapping that cannot be written to (a report is immutable), yet copies, pickles and
    compares like a dict (``types.MappingProxyType`` does not copy: ``dataclasses.asdict`` fails)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, float]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> float:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return repr(self._items)


@dataclass(frozen=True)
class InboundRtpStats:
    """A received stream (W3C ``inbound-rtp``), counted by peerbot per packet (RFC 3550).

    The playout fields (audio) and render fields (video) are the session's received stream of
    that kind, measured where decoded frames are delivered, across reconnections; None when not
    measured (``insertedSamplesForDeceleration``: no time-stretching is modelled, late audio is
    ``lateSamples``)."""

    id: str
    kind: str
    ssrc: int
    codec: str  # MIME type, e.g. audio/opus
    clockRate: int  # Hz
    packetsReceived: int
    packetsLost: int  # expected − received: negative with duplicates
    jitter: float  # s
    bytesReceived: int  # payload octets
    retransmittedPacketsReceived: int = 0
    totalSamplesReceived: int | None = None
    totalSamplesDuration: float | None = None  # s
    concealedSamples: int | None = None
    concealmentEvents: int | None = None
    insertedSamplesForDeceleration: int | None = None
    lateSamples: int | None = None
    audioCoverage: float | None = None  # 0–1
    framesReceived: int | None = None
    framesDecoded: int | None = None
    framesDropped: int | None = None
    framesPerSecond: float | None = None
    freezeCount: int | None = None
    totalFreezesDuration: float | None = None  # s
    pauseCount: int | None = None


@dataclass(frozen=True)
class OutboundRtpStats:
    """A sent stream (W3C ``outbound-rtp``), as our RTCP sender reports count it."""

    id: str
    kind: str
    ssrc: int
    packetsSent: int
    bytesSent: int  # payload octets


@dataclass(frozen=True)
class RemoteInboundRtpStats:
    """What the far side's RTCP receiver reports say of one of our streams (W3C ``remote-inbound-rtp``)."""

    id: str
    kind: str
    ssrc: int
    packetsLost: int  # cumulative, as reported
    fractionLost: float  # 0–1, over the far side's last report interval
    jitter: float  # s
    roundTripTime: float | None  # s, the latest measurement (None until a report echoes our SR)
    totalRoundTripTime: float  # s, sum of the measurements
    roundTripTimeMeasurements: int
    reportsReceived: int


@dataclass(frozen=True)
class CandidatePairStats:
    """The selected ICE candidate pair (W3C ``candidate-pair`` with its two candidates' types and
    addresses). Packets and bytes are every datagram through the peer's DTLS transport (RTP,
    RTCP, DTLS, SCTP). ``currentRoundTripTime`` is None: aioice does not time its consent checks."""

    localCandidateType: str
    localAddress: str
    remoteCandidateType: str
    remoteAddress: str
    relayProtocol: str | None
    packetsSent: int
    packetsReceived: int
    bytesSent: int
    bytesReceived: int
    currentRoundTripTime: float | None = None


@dataclass(frozen=True)
class PeerSnapshot:
    """The cumulative counters of one peer connection at one moment (no rates): what reports are made of."""

    inbound_rtp: tuple[InboundRtpStats, ...] = ()
    outbound_rtp: tuple[OutboundRtpStats, ...] = ()
    remote_inbound_rtp: tuple[RemoteInboundRtpStats, ...] = ()
    candidate_pair: CandidatePairStats | None = None
    transport_packets_received: int = 0
    audio_playout: AudioPlayoutStats | None = None
    video_render: VideoRenderStats | None = None


@dataclass(frozen=True)
class StatsSummary:
    """The figures a user reads at a glance. ``None`` is *not measured*, never 0.

    Cumulative figures count since the session started, over every connection it had
    (reconnections included); ``interval_*`` and bitrates cover the last interval (about 1 s). In
    the final report (after the call) they are those of the last full interval, and ``mos`` is
    the whole call's. ``stream_bitrates_kbps`` is a read-only mapping."""

    t: float = 0.0  # s since the session (or peer) started
    mos: float | None = None
    loss_percent: float | None = None
    interval_loss_percent: float | None = None
    remote_loss_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    audio_coverage_percent: float | None = None
    concealed_percent: float | None = None
    freeze_count: int | None = None
    freezes_duration_s: float | None = None
    frames_per_second: float | None = None
    bitrate_in_kbps: float | None = None
    bitrate_out_kbps: float | None = None
    stream_bitrates_kbps: Mapping[str, float] = field(default_factory=lambda: ReadOnlyMapping({}))
    packets_received: int = 0
    packets_lost: int = 0
    packets_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    reconnects: int = 0
    outage_seconds: float = 0.0


_METRIC_NAMES = ("mos", "loss_percent", "remote_loss_percent", "jitter_ms", "rtt_ms", "audio_coverage_percent",
                 "concealed_percent", "freeze_count", "freezes_duration_s", "frames_per_second",
                 "bitrate_in_kbps", "bitrate_out_kbps", "reconnects", "outage_seconds")


@dataclass(frozen=True)
class StatsReport:
    """One moment of a call, organised like ``RTCStatsReport``: ``inbound_rtp`` (one per received
    stream), ``outbound_rtp``, ``remote_inbound_rtp``, ``candidate_pair`` and a ``summary``."""

    inbound_rtp: tuple[InboundRtpStats, ...] = ()
    outbound_rtp: tuple[OutboundRtpStats, ...] = ()
    remote_inbound_rtp: tuple[RemoteInboundRtpStats, ...] = ()
    candidate_pair: CandidatePairStats | None = None
    summary: StatsSummary = field(default_factory=StatsSummary)

    def to_metrics(self) -> dict[str, float | None]:
        """The flat figures of the metrics contract (``peerbot.quality.metrics``), with ``t``."""
        metrics: dict[str, float | None] = {"t": self.summary.t}
        for name in _METRIC_NAMES:
            value = getattr(self.summary, name)
            metrics[name] = float(value) if value is not None else None
        metrics["latency_ms"] = None  # measured by the latency probe, not by stats
        return metrics

    def line(self) -> str:
        """One line for a status display."""
        s = self.summary

        def show(value: float | None, unit: str, digits: int = 0) -> str:
            return f"{value:.{digits}f}{unit}" if value is not None else "–"

        return (f"in {show(s.bitrate_in_kbps, ' kbps')} · out {show(s.bitrate_out_kbps, ' kbps')} · "
                f"loss {show(s.loss_percent, '%', 1)} · jitter {show(s.jitter_ms, ' ms', 1)} · "
                f"RTT {show(s.rtt_ms, ' ms')} · MOS {show(s.mos, '', 1)}")


def mos_estimate(rtt_ms: float, jitter_ms: float, loss_percent: float) -> float:
    """Mean opinion score (1–4.5) by the simplified E-model of the module docstring."""
    latency = rtt_ms / 2 + 2 * jitter_ms + 10
    r = 93.2 - (latency / 40 if latency < 160 else (latency - 120) / 10) - 2.5 * loss_percent
    r = max(0.0, min(100.0, r))
    return round(max(1.0, min(4.5, 1 + 0.035 * r + 7e-6 * r * (r - 60) * (100 - r))), 2)


@dataclass(frozen=True)
class _Totals:
    """Cumulative counts over several peers' snapshots."""

    received: int = 0
    lost: int = 0
    sent: int = 0
    remote_lost: int = 0
    remote_sent: int = 0  # packets sent on the streams the far side reported about
    reported: bool = False
    bytes_in: int = 0
    bytes_out: int = 0

    @classmethod
    def of(cls, snapshots: Iterable[PeerSnapshot]) -> _Totals:
        t = cls()
        for s in snapshots:
            sent_by_ssrc = {o.ssrc: o.packetsSent for o in s.outbound_rtp}
            reports = [r for r in s.remote_inbound_rtp if r.reportsReceived]
            pair = s.candidate_pair
            t = _Totals(
                received=t.received + sum(i.packetsReceived for i in s.inbound_rtp),
                lost=t.lost + sum(i.packetsLost for i in s.inbound_rtp),
                sent=t.sent + sum(o.packetsSent for o in s.outbound_rtp),
                remote_lost=t.remote_lost + sum(r.packetsLost for r in reports),
                remote_sent=t.remote_sent + sum(sent_by_ssrc.get(r.ssrc, 0) for r in reports),
                reported=t.reported or bool(reports),
                bytes_in=t.bytes_in + (pair.bytesReceived if pair else 0),
                bytes_out=t.bytes_out + (pair.bytesSent if pair else 0),
            )
        return t


class StatsRecorder:
    """Turns successive snapshots into reports: rates and interval loss against the previous
    report, cumulative figures over the earlier connections' final snapshots and the current one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self.latest: StatsReport | None = None
        self._last: tuple[float, _Totals, PeerSnapshot] | None = None

    def record(self, current: PeerSnapshot, earlier: Sequence[PeerSnapshot] = (), *,
               reconnects: int = 0, outage_seconds: float = 0.0, final: bool = False) -> StatsReport:
        """The report of this moment; it becomes ``latest`` and the reference of the next one's rates.

        ``final`` (at hang-up): the interval since the last report is a remnant (often a few ms,
        with the media already stopping), so the rate and interval figures are those of the last
        full interval (over the whole call when there was none), and ``mos`` is the whole call's."""
        now = self._clock()
        totals = _Totals.of([*earlier, current])
        if final:
            summary = self._final_summary(now, current, totals)
        else:
            summary = _summarize(now - self.started, current, totals, self._last, now)
        summary = dataclasses.replace(summary, reconnects=reconnects, outage_seconds=round(outage_seconds, 2))
        self.latest = StatsReport(current.inbound_rtp, current.outbound_rtp, current.remote_inbound_rtp,
                                  current.candidate_pair, summary)
        self._last = (now, totals, current)
        return self.latest

    def _final_summary(self, now: float, current: PeerSnapshot, totals: _Totals) -> StatsSummary:
        previous = self.latest.summary if self.latest is not None and self._last is not None else None
        if previous is None or previous.bitrate_in_kbps is None:  # no full interval: the whole call
            reference = (self.started, _Totals(), PeerSnapshot())
            summary = _summarize(now - self.started, current, totals, reference, now)
        else:
            summary = dataclasses.replace(
                _summarize(now - self.started, current, totals, None, now),
                interval_loss_percent=previous.interval_loss_percent, bitrate_in_kbps=previous.bitrate_in_kbps,
                bitrate_out_kbps=previous.bitrate_out_kbps, stream_bitrates_kbps=previous.stream_bitrates_kbps)
        return dataclasses.replace(summary, mos=_call_mos(summary))


def _call_mos(summary: StatsSummary) -> float | None:
    """The whole call's MOS: the E-model with P the larger of the call's loss and concealed audio."""
    if summary.mos is None:  # no audio received
        return None
    impairment = max(summary.loss_percent or 0.0, summary.concealed_percent or 0.0)
    return mos_estimate(summary.rtt_ms or 0.0, summary.jitter_ms or 0.0, impairment)


def _percent(part: float, whole: float) -> float | None:
    return round(max(0.0, part) / whole * 100, 2) if whole > 0 else None


def _summarize(t: float, current: PeerSnapshot, totals: _Totals,
               last: tuple[float, _Totals, PeerSnapshot] | None, now: float) -> StatsSummary:
    span = now - last[0] if last is not None else 0.0
    before = last[1] if last is not None else None
    expected = totals.received + totals.lost
    interval_loss = None
    bitrate_in = bitrate_out = None
    stream_rates: dict[str, float] = {}
    if before is not None and span > 0:
        interval_loss = _percent(totals.lost - before.lost, expected - before.received - before.lost)
        bitrate_in = round(max(0, totals.bytes_in - before.bytes_in) * 8 / span / 1000, 1)
        bitrate_out = round(max(0, totals.bytes_out - before.bytes_out) * 8 / span / 1000, 1)
        stream_rates = _stream_rates(current, last[2] if last is not None else None, span)
    audio = [i for i in current.inbound_rtp if i.kind == "audio" and i.packetsReceived]
    jitter_streams = audio or [i for i in current.inbound_rtp if i.packetsReceived]
    jitter_ms = round(max(i.jitter for i in jitter_streams) * 1000, 2) if jitter_streams else None
    rtts = [r.roundTripTime for r in current.remote_inbound_rtp if r.roundTripTime is not None]
    rtt_ms = round(max(rtts) * 1000, 1) if rtts else None
    playout, render = current.audio_playout, current.video_render
    concealed = _concealed_percent(playout, last[2].audio_playout if last is not None else None)
    coverage = concealed_total = None
    if playout is not None and playout.framesReceived:
        coverage = round(playout.audioCoverage * 100, 2)
        concealed_total = _percent(playout.concealedSamples, playout.totalSamplesReceived)
    mos = None
    if audio:
        loss = interval_loss if interval_loss is not None else _percent(totals.lost, expected) or 0.0
        impairment = max(loss, concealed if concealed is not None else 0.0)
        mos = mos_estimate(rtt_ms or 0.0, jitter_ms or 0.0, impairment)
    video = render is not None and render.framesReceived > 0
    return StatsSummary(
        t=round(t, 3),
        mos=mos,
        loss_percent=_percent(totals.lost, expected),
        interval_loss_percent=interval_loss,
        remote_loss_percent=_percent(totals.remote_lost, totals.remote_sent) if totals.reported else None,
        jitter_ms=jitter_ms,
        rtt_ms=rtt_ms,
        audio_coverage_percent=coverage,
        concealed_percent=concealed_total,
        freeze_count=render.freezeCount if video and render else None,
        freezes_duration_s=render.totalFreezesDuration if video and render else None,
        frames_per_second=render.framesPerSecond if video and render else None,
        bitrate_in_kbps=bitrate_in,
        bitrate_out_kbps=bitrate_out,
        stream_bitrates_kbps=ReadOnlyMapping(stream_rates),
        packets_received=totals.received,
        packets_lost=max(0, totals.lost),
        packets_sent=totals.sent,
        bytes_received=totals.bytes_in,
        bytes_sent=totals.bytes_out,
    )


def _stream_rates(current: PeerSnapshot, previous: PeerSnapshot | None, span: float) -> dict[str, float]:
    """RTP payload kbps of each stream over the interval (a stream new in it counts from 0)."""
    before = {}
    if previous is not None:
        before = {**{i.id: i.bytesReceived for i in previous.inbound_rtp},
                  **{o.id: o.bytesSent for o in previous.outbound_rtp}}
    now = {**{i.id: i.bytesReceived for i in current.inbound_rtp}, **{o.id: o.bytesSent for o in current.outbound_rtp}}
    return {key: round(max(0, value - before.get(key, 0)) * 8 / span / 1000, 1) for key, value in now.items()}


def _concealed_percent(now: AudioPlayoutStats | None, before: AudioPlayoutStats | None) -> float | None:
    """Concealed audio over the interval, % of the audio played out in it."""
    if now is None:
        return None
    samples = now.totalSamplesReceived - (before.totalSamplesReceived if before else 0)
    concealed = now.concealedSamples - (before.concealedSamples if before else 0)
    return _percent(concealed, samples)
