"""peerbot's per-packet receive counting (RFC 3550 A.1/A.3, 6.4.1) and the report's pure parts."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from peerbot.engine.rtp_stats import ReceiveCounter
from peerbot.engine.stats import StatsReport, StatsSummary, mos_estimate
from peerbot.engine.stats_history import StatsHistory

CLOCK = 48000
STEP = 960  # 20 ms of Opus


def _feed(counter: ReceiveCounter, seqs: list[int], first_seq: int, first_ts: int) -> None:
    """Packets sent every 20 ms, numbered from ``first_seq``; ``seqs`` are offsets in arrival order."""
    for n, offset in enumerate(seqs):
        counter.add((first_seq + offset) % 65536, (first_ts + offset * STEP) % 2**32, n * 0.020, 100)


@settings(max_examples=200, deadline=None)
@given(first_seq=st.integers(0, 65535), count=st.integers(2, 3000), data=st.data())
def test_counts_match_what_was_sent_through_wrap_loss_reordering_and_duplicates(first_seq, count, data):
    sent = list(range(count))
    lost = set(data.draw(st.sets(st.integers(1, count - 2), max_size=count // 10)) if count > 2 else set())
    delivered = [s for s in sent if s not in lost]
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for i in range(1, len(delivered) - 1):  # local reordering; the first and last packets stay put
        if rng.random() < 0.1 and i + 1 < len(delivered) - 1:
            delivered[i], delivered[i + 1] = delivered[i + 1], delivered[i]
    arrivals = list(delivered)
    duplicates = 0
    for _ in range(rng.randrange(4)):  # a duplicate arrives soon after its original (within MAX_MISORDER)
        i = rng.randrange(len(arrivals))
        arrivals.insert(min(len(arrivals), i + 1 + rng.randrange(20)), arrivals[i])
        duplicates += 1
    counter = ReceiveCounter(CLOCK)
    _feed(counter, arrivals, first_seq, rng.randrange(2**32))
    assert counter.packets_received == len(arrivals)
    assert counter.packets_expected == count  # highest − first + 1, across the 16-bit wrap
    assert counter.packets_lost == len(lost) - duplicates  # W3C: duplicates make it smaller
    assert counter.bytes_received == 100 * len(arrivals)


def test_sequence_numbers_wrapping_twice_are_counted_as_cycles():
    counter = ReceiveCounter(CLOCK)
    _feed(counter, list(range(140_000)), 65000, 0)
    assert counter.packets_expected == 140_000 and counter.packets_lost == 0


def test_a_restarted_sequence_keeps_the_counts_of_before_and_does_not_count_the_jump_as_loss():
    counter = ReceiveCounter(CLOCK)
    _feed(counter, list(range(100)), 1000, 0)
    _feed(counter, list(range(50)), 30000, 0)  # a jump beyond MAX_DROPOUT, confirmed by the next packet
    assert counter.packets_received == 150
    assert counter.packets_lost == 0


@settings(max_examples=50, deadline=None)
@given(transit=st.floats(0.0, 2.0), first_ts=st.integers(0, 2**32 - 1))
def test_a_constant_transit_time_is_zero_jitter_even_across_the_timestamp_wrap(transit, first_ts):
    counter = ReceiveCounter(CLOCK)
    for n in range(500):
        counter.add(n, (first_ts + n * STEP) % 2**32, transit + n * 0.020, 100)
    assert counter.jitter < 1e-6


def test_alternating_transit_converges_to_the_rfc_3550_estimate():
    # Transit alternating 0 / 10 ms: |D| is 10 ms for every packet, so J tends to 10 ms.
    counter = ReceiveCounter(CLOCK)
    for n in range(400):
        counter.add(n, n * STEP, n * 0.020 + (0.010 if n % 2 else 0.0), 100)
    assert abs(counter.jitter - 0.010) < 0.0005


def test_a_timestamp_jump_over_a_source_gap_or_a_stall_is_not_jitter():
    counter = ReceiveCounter(CLOCK)
    arrival = 0.0
    for n in range(200):
        arrival += 0.020
        if n == 100:
            arrival += 2.75  # the receiver stalled: one packet 2.75 s "late", then a burst
        counter.add(n, n * STEP, arrival, 100)
    for n in range(200, 400):  # the sender skipped 3 s of timestamps, arrivals did not
        counter.add(n, n * STEP + 3 * CLOCK, arrival + (n - 199) * 0.020, 100)
    assert counter.jitter < 0.001


def test_packets_of_one_video_frame_share_a_timestamp_and_do_not_add_jitter():
    counter = ReceiveCounter(90000)
    seq = 0
    for frame in range(60):
        for k in range(8):  # a burst of 8 packets 1 ms apart, one timestamp
            counter.add(seq, frame * 3000, frame / 30 + k * 0.001, 1000)
            seq += 1
    # Each frame's first packet arrives 33.3 ms after the previous frame's first: only the 7 ms
    # of the previous burst's spread could count, and it does not (same-timestamp packets only move the reference).
    assert counter.jitter < 0.008


def test_late_duplicate_and_retransmitted_packets_do_not_feed_jitter():
    counter = ReceiveCounter(CLOCK)
    for n in range(100):
        counter.add(n, n * STEP, n * 0.020, 100)
    counter.add(50, 50 * STEP, 2.5, 100)  # a late duplicate
    counter.add(99, 99 * STEP, 2.6, 100, retransmitted=True)
    assert counter.jitter < 1e-6
    assert counter.retransmitted_packets_received == 1


def test_mos_falls_with_loss_delay_and_jitter_and_stays_within_the_e_model_range():
    clean = mos_estimate(20, 1, 0)
    assert 4.3 < clean <= 4.5
    assert mos_estimate(20, 1, 5) < clean and mos_estimate(400, 1, 0) < clean and mos_estimate(20, 60, 0) < clean
    assert mos_estimate(2000, 500, 100) == 1.0


def test_to_metrics_names_every_contract_figure_and_keeps_unknowns_none():
    from peerbot.quality.metrics import METRICS

    metrics = StatsReport(summary=StatsSummary(t=2.0, loss_percent=0.0, reconnects=0)).to_metrics()
    assert set(metrics) == {"t", *METRICS}
    assert metrics["loss_percent"] == 0.0 and metrics["reconnects"] == 0.0  # measured zeros stay 0
    assert metrics["rtt_ms"] is None and metrics["frames_per_second"] is None and metrics["mos"] is None


def test_history_keeps_every_second_up_to_its_capacity_then_thins_evenly_over_the_whole_call():
    history = StatsHistory(capacity=100)
    for t in range(1, 1001):
        history.add(StatsReport(summary=StatsSummary(t=float(t))))
    ts = [s["t"] for s in history.samples()]
    assert len(ts) <= 100 and ts == sorted(ts) and ts[0] == 1.0 and ts[-1] == 1000.0
    assert ts[:-1] == [float(t) for t in range(1, 1000, history.spacing)]  # one every 16 s, the newest aside
    assert history.spacing == 16
