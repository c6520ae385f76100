"""The metrics contract: the summary of a history."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from peerbot.quality import METRICS, summarize
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
