"""How a StatsReport's summary is made from peer snapshots: rates, loss since the start over
several connections, the far side's loss, and a MOS that falls when audio has to be concealed."""

from __future__ import annotations

from peerbot.engine.stats import (CandidatePairStats, InboundRtpStats, OutboundRtpStats, PeerSnapshot,
                                  RemoteInboundRtpStats, StatsRecorder)
from peerbot.media.receive_stats import AudioPlayoutStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def snapshot(received: int, lost: int, *, sent: int = 0, remote_lost: int | None = None, bytes_in: int = 0,
             concealed: int = 0, played: int = 0, jitter: float = 0.002) -> PeerSnapshot:
    inbound = (InboundRtpStats("inbound-rtp:audio:1", "audio", 1, "audio/opus", 48000, received, lost, jitter,
                               received * 100),)
    outbound = (OutboundRtpStats("outbound-rtp:audio:2", "audio", 2, sent, sent * 100),) if sent else ()
    remote = ()
    if remote_lost is not None:
        remote = (RemoteInboundRtpStats("remote-inbound-rtp:audio:2", "audio", 2, remote_lost, 0.0, 0.001, 0.040,
                                        0.040, 1, 1),)
    pair = CandidatePairStats("host", "a:1", "host", "b:2", None, 0, 0, 0, bytes_in)
    playout = AudioPlayoutStats(totalSamplesReceived=played, concealedSamples=concealed, framesReceived=played // 960,
                                audioCoverage=1.0, sampleRate=48000)
    return PeerSnapshot(inbound, outbound, remote, pair, 0, playout, None)


def test_the_first_report_has_no_rates_and_later_ones_rate_over_the_interval():
    clock = Clock()
    recorder = StatsRecorder(clock)
    first = recorder.record(snapshot(50, 0, bytes_in=10_000))
    assert first.summary.bitrate_in_kbps is None and first.summary.interval_loss_percent is None
    clock.now += 2.0
    later = recorder.record(snapshot(150, 0, bytes_in=30_000))
    assert later.summary.bitrate_in_kbps == 80.0  # 20 000 bytes in 2 s
    assert later.summary.stream_bitrates_kbps["inbound-rtp:audio:1"] == 40.0  # 10 000 payload bytes in 2 s
    assert later.summary.t == 2.0


def test_loss_since_the_start_adds_the_connections_replaced_and_the_interval_loss_is_its_own():
    clock = Clock()
    recorder = StatsRecorder(clock)
    earlier = [snapshot(90, 10)]
    recorder.record(snapshot(0, 0), earlier)
    clock.now += 1.0
    report = recorder.record(snapshot(100, 0), earlier)
    assert report.summary.packets_received == 190 and report.summary.packets_lost == 10
    assert report.summary.loss_percent == 5.0  # 10 of 200
    assert report.summary.interval_loss_percent == 0.0  # none in the last second


def test_remote_loss_is_what_the_far_side_reports_of_what_we_sent_and_none_before_a_report():
    recorder = StatsRecorder(Clock())
    assert recorder.record(snapshot(10, 0, sent=100)).summary.remote_loss_percent is None
    assert recorder.record(snapshot(10, 0, sent=100, remote_lost=4)).summary.remote_loss_percent == 4.0
    assert recorder.latest is not None and recorder.latest.summary.rtt_ms == 40.0


def test_mos_falls_when_audio_has_to_be_concealed_though_no_packet_was_lost():
    clock = Clock()
    fine, starved = StatsRecorder(clock), StatsRecorder(clock)
    fine.record(snapshot(0, 0))
    starved.record(snapshot(0, 0))
    clock.now += 1.0
    good = fine.record(snapshot(50, 0, played=48000))
    bad = starved.record(snapshot(50, 0, played=48000, concealed=19200))  # 40 % of the second concealed
    assert good.summary.mos is not None and bad.summary.mos is not None
    assert good.summary.mos > 4.3 and bad.summary.mos < 3.0
    assert bad.summary.loss_percent == 0.0 and bad.summary.concealed_percent == 40.0
