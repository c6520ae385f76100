"""The load summary, its thresholds, the live view and the report files, from made-up figures
(no process, no network): the figures a run produces are checked in test_load_run.py."""

from __future__ import annotations

import csv
import json
import re

import pytest
from rich.console import Console

from peerbot.errors import ConfigurationError
from peerbot.load import LoadConfig, LoadResult, LoadThreshold
from peerbot.load.live import LIMITED_NOTE, live_view, summary_view
from peerbot.load.messages import Tick
from peerbot.load.report import write_load_report
from peerbot.load.summary import LoadState
from peerbot.quality import check


def _state() -> LoadState:
    state = LoadState(participants=5, workers=2)
    for i, (setup, coverage, mos) in enumerate([(100, 100, 4.4), (200, 99, 4.3), (300, 98, 4.2), (400, 97, 4.1)]):
        p = state.participants[i]
        p.worker, p.state, p.setup_ms, p.first_audio_ms = i % 2, "connected", setup, setup + 20
        p.latest = {"audio_coverage_percent": coverage, "mos": mos, "loss_percent": 0.0}
    state.participants[4].worker = 0
    state.fail(4, "OrgaAIServerError", "unreachable", "setup")
    tick = Tick(0, lag_ms=5, cpu_percent=20, figures={0: state.participants[0].latest})
    state.tick(tick.worker, tick.lag_ms, tick.cpu_percent, tick.figures)
    state.tick(1, 80, 50, {})  # a lagging second
    return state


def test_load_summary_gives_percentiles_over_the_participants_and_counts_failures_by_type() -> None:
    state = _state()
    s = state.summary()
    assert (s["participants"], s["connected"], s["failed"], s["failed_percent"]) == (5, 4, 1, 20)
    assert s["setup_ms_p50"] == 250 and s["setup_ms_min"] == 100 and s["setup_ms_max"] == 400
    assert s["setup_ms_p95"] == pytest.approx(385) and s["setup_ms_p99"] == pytest.approx(397)
    assert s["first_audio_ms_p50"] == 270
    assert s["audio_coverage_percent_p5"] == pytest.approx(97.15) and s["mos_p50"] == pytest.approx(4.25)
    assert s["rtt_ms_p50"] is None  # not measured is None, never 0
    assert state.errors == {"OrgaAIServerError": 1}
    assert s["worker_lag_max_ms"] == 80 and s["generator_limited"] == 0  # one limited second is not enough
    state.tick(1, 90, 50, {})
    assert state.summary()["generator_limited"] == 1


@pytest.mark.parametrize(("text", "key", "value", "passed"), [
    ("setup_p95<=500ms", "setup_ms_p95", 500, True),
    ("setup_p99<0.3s", "setup_ms_p99", 300, False),
    ("coverage_p5>=99%", "audio_coverage_percent_p5", 99, False),
    ("mos_p50>=4", "mos_p50", 4, True),
    ("ttfa_p50<=1s", "first_audio_ms_p50", 1000, True),
    ("failed==0", "failed", 0, False),
    ("failed_percent<=20%", "failed_percent", 20, True),
    ("rtt_p95<=300ms", "rtt_ms_p95", 300, False),  # not measured fails
])
def test_load_thresholds_speak_the_quality_language_over_the_load_summary(text: str, key: str, value: float,
                                                                          passed: bool) -> None:
    threshold = LoadThreshold.parse(text)
    assert (threshold.key, threshold.value) == (key, value)
    [result] = check(_state().summary(), [threshold])
    assert result.passed is passed, result.message


@pytest.mark.parametrize("text", ["setup_p95<=5kbps", "nope>1", "coverage_p7>=1%", "setup<="])
def test_load_thresholds_refuse_what_they_cannot_check(text: str) -> None:
    with pytest.raises(ConfigurationError):
        LoadThreshold.parse(text)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"participants": 0, "duration": 5}, "participants"),
    ({"participants": 3, "duration": 5, "orbit": True}, "even"),
    ({"participants": 100, "duration": 5, "spawn_rate": 10}, "spawning 100"),
    ({"participants": 2, "duration": 5, "workers": 0}, "workers"),
    ({"participants": 2, "duration": 5, "prometheus_port": 70000}, "prometheus_port"),
])
def test_load_config_refuses_bad_settings_before_anything_starts(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        LoadConfig(**kwargs)  # type: ignore[arg-type]


def test_load_live_view_fits_80_columns_and_flags_a_limited_generator() -> None:
    state = _state()
    state.tick(1, 90, 95, {})
    console = Console(width=80, record=True, color_system=None)
    console.print(live_view(state, 30))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for words in ("4 connected", "1 failed", "OrgaAIServerError 1", "w0 cpu 20% lag 5ms", "w1 cpu 95% lag 90ms !",
                  "coverage", "MOS"):
        assert words in text, words
    assert "limited by the load generator" in re.sub(r"\s+", " ", text)


def test_load_report_writes_json_csv_and_html_with_a_row_per_participant(tmp_path) -> None:
    state = _state()
    config = LoadConfig(participants=5, duration=5, workers=2)
    result = LoadResult(config, "the test", 0.0, 5.0, state.summary(), dict(state.errors), state.participants,
                        state.workers, [{"t": 1.0, "participants": 1.0, "mos": 4.4}])
    results = check(result.summary, [LoadThreshold.parse("setup_p95<=500ms")])
    json_path, csv_path, html_path = write_load_report(tmp_path / "run", result, results)
    record = json.loads(json_path.read_text())
    assert record["schema"] == "peerbot.report/1" and record["meta"]["command"] == "load"
    assert record["summary"]["setup_ms_p50"] == 250 and record["errors"] == {"OrgaAIServerError": 1}
    assert record["thresholds"][0]["passed"] is True and len(record["participants"]) == 5
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 5 and rows[4]["error"] == "OrgaAIServerError" and rows[0]["setup_ms"] == "100"
    page = html_path.read_text()
    assert "<h2>Load</h2>" in page and "OrgaAIServerError" in page and "setup_ms" in page
    console = Console(width=100, record=True, color_system=None)
    console.print(summary_view(result))
    assert "failures: OrgaAIServerError 1" in console.export_text()
    assert LIMITED_NOTE.startswith("limited by the load generator")
