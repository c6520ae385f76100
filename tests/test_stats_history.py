"""The history's memory bound: past its capacity it thins evenly over the whole call."""

from __future__ import annotations

from peerbot.engine.stats import StatsReport, StatsSummary
from peerbot.engine.stats_history import DEFAULT_CAPACITY, StatsHistory


def report_at(t: float) -> StatsReport:
    return StatsReport(summary=StatsSummary(t=t))


def test_a_4_hour_history_is_evenly_spaced_within_capacity_with_the_first_and_last_kept():
    history = StatsHistory()
    for second in range(1, 4 * 3600 + 1):
        history.add(report_at(float(second)))
    ts = [s["t"] for s in history.samples()]
    gaps = {b - a for a, b in zip(ts[:-2], ts[1:-1])}
    print(f"\n{len(ts)} samples, gaps {sorted(gaps)}, last gap {ts[-1] - ts[-2]}")
    assert len(ts) <= DEFAULT_CAPACITY
    assert ts[0] == 1.0 and ts[-1] == 4 * 3600.0
    assert len(gaps) == 1 and gaps.pop() == history.spacing  # uniform, the newest aside
    assert 0 < ts[-1] - ts[-2] <= history.spacing
    assert len(ts) >= DEFAULT_CAPACITY // 2  # thinned once more than needed at most


def test_a_history_within_capacity_keeps_every_sample():
    history = StatsHistory(capacity=10)
    for second in range(10):
        history.add(report_at(float(second)))
    assert [s["t"] for s in history.samples()] == [float(s) for s in range(10)]


def test_each_thinning_keeps_the_spacing_uniform_at_every_length():
    history = StatsHistory(capacity=16)
    for second in range(500):
        history.add(report_at(float(second)))
        ts = [s["t"] for s in history.samples()]
        assert len(ts) <= 16 and ts[0] == 0.0 and ts[-1] == float(second)
        assert len({b - a for a, b in zip(ts[:-2], ts[1:-1])}) <= 1
