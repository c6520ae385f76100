"""The metrics contract: the summary of a history, and today's ``CallStats`` mapped onto it."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from peerbot.engine.stats import CallStats
from peerbot.quality import METRICS, sample_from_call_stats, summarize
from peerbot.quality.metrics import STATISTICS


def test_summary_has_every_metric_and_statistic_even_for_an_empty_history():
    summary = summarize([])
    assert set(summary) == {f"{n}{s}" for n in METRICS for s in ("", *(f"_{x}" for x in STATISTICS))}
    assert all(value is None for value in summary.values())


def test_nulls_are_not_measurements_so_they_do_not_pull_statistics_towards_zero():
    history = [{"t": 1, "rtt_ms": None}, {"t": 2, "rtt_ms": 100.0}, {"t": 3, "rtt_ms": None},
               {"t": 4, "rtt_ms": 200.0}, {"t": 5, "rtt_ms": float("nan")}]
    summary = summarize(history)
    assert (summary["rtt_ms_min"], summary["rtt_ms_max"], summary["rtt_ms_mean"]) == (100.0, 200.0, 150.0)
    assert summary["rtt_ms_p50"] == 150.0
    assert summary["rtt_ms"] == 150.0  # a gauge's plain figure is its mean over the call


def test_a_cumulative_figure_is_its_last_measured_value():
    history = [{"t": 1, "loss_percent": 0.0, "reconnects": 0}, {"t": 2, "loss_percent": 2.5, "reconnects": 1},
               {"t": 3, "loss_percent": None, "reconnects": 1}]
    summary = summarize(history)
    assert summary["loss_percent"] == 2.5
    assert summary["reconnects"] == 1
    assert summary["loss_percent_max"] == 2.5


@given(st.lists(st.one_of(st.none(), st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)), max_size=80))
def test_percentiles_agree_with_numpy_over_the_measured_samples(values):
    summary = summarize([{"t": i, "jitter_ms": v} for i, v in enumerate(values)])
    measured = [v for v in values if v is not None]
    if not measured:
        assert summary["jitter_ms_p95"] is None and summary["jitter_ms"] is None
        return
    assert math.isclose(summary["jitter_ms_p50"], np.percentile(measured, 50), abs_tol=1e-3)
    assert math.isclose(summary["jitter_ms_p95"], np.percentile(measured, 95), abs_tol=1e-3)
    assert summary["jitter_ms_min"] == min(measured) and summary["jitter_ms_max"] == max(measured)
    assert summary["jitter_ms_min"] <= summary["jitter_ms_p50"] <= summary["jitter_ms_p95"] <= summary["jitter_ms_max"]


def test_call_stats_before_the_first_report_map_to_not_measured_not_zero():
    sample = sample_from_call_stats(0.5, CallStats())
    assert sample["t"] == 0.5
    assert {k for k, v in sample.items() if v is not None} == {"t", "reconnects", "outage_seconds"}


def test_call_stats_of_a_flowing_call_map_to_the_contract_names():
    stats = CallStats(bitrate_in_kbps=40.0, bitrate_out_kbps=42.0, packets_sent=100, packets_received=98,
                      packets_lost=2, bytes_sent=9000, bytes_received=8800, loss_percent=2.0,
                      remote_loss_percent=1.0, jitter_ms=3.0, rtt_ms=20.0, mos=4.3, reconnects=1, outage_seconds=2.5)
    sample = sample_from_call_stats(2.0, stats, previous=stats, audio_seconds_received=1.9)
    assert sample == {"t": 2.0, "mos": 4.3, "loss_percent": 2.0, "remote_loss_percent": 1.0, "jitter_ms": 3.0,
                      "rtt_ms": 20.0, "audio_coverage_percent": 95.0, "concealed_percent": None,
                      "freeze_count": None, "freezes_duration_s": None, "frames_per_second": None,
                      "bitrate_in_kbps": 40.0, "bitrate_out_kbps": 42.0, "latency_ms": None, "reconnects": 1.0,
                      "outage_seconds": 2.5}


def test_bitrates_of_the_first_report_are_not_measured_for_want_of_an_interval():
    first = CallStats(packets_received=50, bytes_received=4000, bytes_sent=4100, mos=4.4)
    assert sample_from_call_stats(1.0, first)["bitrate_in_kbps"] is None
    assert sample_from_call_stats(1.0, first, previous=CallStats())["bitrate_out_kbps"] is None
    assert sample_from_call_stats(2.0, first, previous=first)["bitrate_in_kbps"] == 0.0  # a real 0: nothing came
