"""Report files: the JSON round-trips, the HTML is one self-contained page with a plot per measured series."""

from __future__ import annotations

import builtins
import json
import math
import random
import re
import time
from html.parser import HTMLParser

import pytest

from peerbot.quality import Threshold, check, summarize, write_report
from peerbot.quality.plots import MISSING_NOTE, PLOTS
from peerbot.quality.report import SCHEMA, report_meta


class _Page(HTMLParser):
    """What a browser would see of the page: its tags, resource references and text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.references: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.references += [value for name, value in attrs if name.split(":")[-1] in ("src", "href") and value]

    def handle_data(self, data):
        self.text.append(data)


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


def _history(seconds: int, *, video: bool = False, seed: int = 1) -> list[dict]:
    """An audio call with an outage from 20 s to 23 s; no latency marker was measured."""
    rng = random.Random(seed)
    history = []
    for t in range(1, seconds + 1):
        out = 20 <= t % 60 < 23
        history.append({
            "t": float(t), "mos": None if out else round(4.3 - rng.random() * 0.3, 2),
            "loss_percent": round(rng.random() * 2, 2), "remote_loss_percent": round(rng.random(), 2),
            "jitter_ms": round(rng.uniform(1, 30), 2), "rtt_ms": None if t < 3 else round(rng.uniform(20, 400), 1),
            "audio_coverage_percent": 85.0 if out else 98.5, "concealed_percent": None,
            "freeze_count": (t // 30) if video else None, "freezes_duration_s": (t // 30) * 0.5 if video else None,
            "frames_per_second": (0.0 if out else 30.0) if video else None,
            "bitrate_in_kbps": 0.0 if out else round(rng.uniform(30, 60), 1), "bitrate_out_kbps": 45.0,
            "latency_ms": None, "reconnects": 0, "outage_seconds": 0.0,
        })
    return history


def _write(tmp_path, history, thresholds=()):
    summary = summarize(history)
    results = check(summary, [Threshold.parse(t) for t in thresholds])
    meta = report_meta("call", "embedded Orga server", started_at=time.time(), duration_s=history[-1]["t"],
                       impairment={"loss": "5%", "delay": "80ms"},
                       candidate_pair="host 127.0.0.1:50000 -> host 127.0.0.1:50001", codecs=["opus/48000/2"])
    json_path, html_path = write_report(tmp_path / "out", summary=summary, history=history, meta=meta,
                                        results=results)
    return summary, results, meta, json_path, html_path


def _plots_with_data(history) -> list[str]:
    return [p.title for p in PLOTS if any(s.get(m) is not None for s in history for m in p.metrics)]


def test_json_report_round_trips_meta_summary_history_and_threshold_results(tmp_path):
    history = _history(30)
    summary, results, meta, json_path, _ = _write(tmp_path, history, ["mos>=4.0", "rtt_p95<=300ms", "latency<=1s"])
    record = json.loads(json_path.read_text())
    assert json_path.name == "out.json"
    assert record["schema"] == SCHEMA
    assert record["meta"] == meta
    assert record["summary"] == summary
    assert record["history"] == history
    assert record["thresholds"] == [r.to_dict() for r in results]
    assert [t["passed"] for t in record["thresholds"]] == [r.passed for r in results]
    assert record["thresholds"][2]["measured"] is None


def test_html_report_is_one_offline_page_with_an_svg_per_measured_plot(tmp_path):
    history = _history(40)
    _, _, _, _, html_path = _write(tmp_path, history)
    html = html_path.read_text()
    page = _parse(html)
    expected = _plots_with_data(history)
    assert "Latency (mouth to ear)" not in expected and "Video frame rate" not in expected  # all null: no plot
    assert page.tags.count("svg") == len(expected) == html.count("<svg")
    assert not [r for r in page.references if re.match(r"\s*(https?:)?//", r)], page.references
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    text = " ".join(page.text)
    assert "loss=5%, delay=80ms" in text and "host 127.0.0.1:50000 -> host 127.0.0.1:50001" in text
    assert all(title in text for title in expected)  # each plot's title is drawn as SVG text


def test_video_series_add_the_frame_rate_and_freeze_plots(tmp_path):
    history = _history(40, video=True)
    _, _, _, _, html_path = _write(tmp_path, history)
    html = html_path.read_text()
    assert html.count("<svg") == len(_plots_with_data(history))
    assert "Video frame rate" in html and "Video freezes" in html


def test_svg_element_ids_are_unique_across_the_page(tmp_path):
    _, _, _, _, html_path = _write(tmp_path, _history(20, video=True))
    ids = re.findall(r'\sid="([^"]+)"', html_path.read_text())
    assert ids and len(ids) == len(set(ids))


def test_summary_table_lists_every_metric_with_unit_and_marks_unmeasured_ones(tmp_path):
    summary, _, _, _, html_path = _write(tmp_path, _history(10))
    html = html_path.read_text()
    rows = re.findall(r"<tr><th>(\w+)</th><td>([^<]*)</td>(.*?)</tr>", html)
    by_name = {name: (unit, cells) for name, unit, cells in rows}
    assert by_name["rtt_ms"][0] == "ms" and by_name["loss_percent"][0] == "%"
    assert by_name["latency_ms"][1].count("not measured") == 6
    p95 = re.findall(r'<td class="n">([^<]*)</td>', by_name["rtt_ms"][1])[2]
    assert math.isclose(float(p95), summary["rtt_ms_p95"], abs_tol=0.5)  # shown to 3 significant digits


def test_failed_thresholds_are_highlighted_with_how_much_they_missed(tmp_path):
    history = [{"t": 1.0, "rtt_ms": 412.0}, {"t": 2.0, "rtt_ms": 412.0}]
    _, results, _, _, html_path = _write(tmp_path, history, ["rtt_p95<=300ms", "rtt>=100ms"])
    html = html_path.read_text()
    assert [r.passed for r in results] == [False, True]
    assert re.search(r'<tr class="fail"><td>FAIL</td><td>rtt_p95&lt;=300ms</td><td class="n">412 ms</td>'
                     r'<td>112 ms over</td></tr>', html)
    assert '<tr class="pass">' in html and "1 of 2 failed" in html


def test_thresholds_table_shows_the_requirement_once_and_the_measured_figure_beside_it(tmp_path):
    _, _, _, _, html_path = _write(tmp_path, [{"t": 1.0, "rtt_ms": 100.0}], ["rtt<=300ms", "latency<=1s"])
    table = re.search(r'<table class="thresholds">(.*?)</table>', html_path.read_text()).group(1)
    rows = re.findall(r"<tr class=[^>]*>(.*?)</tr>", table)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in rows]
    assert cells == [["pass", "rtt&lt;=300ms", "100 ms", ""], ["FAIL", "latency&lt;=1s", "–", "not measured"]]


def _texts(svg: str) -> list[str]:
    return re.findall(r"<text[^>]*>([^<]*)</text>", svg)


def test_an_all_zero_count_series_starts_at_0_with_integer_ticks_and_a_labelled_axis():
    from peerbot.quality.plots import svg_plots

    history = [{"t": float(t), "reconnects": 0.0, "freeze_count": 0.0, "loss_percent": 0.0,
                "remote_loss_percent": 0.0} for t in range(1, 6)]
    drawn = {plot.title: _texts(svg) for plot, svg in svg_plots(history)}
    for title, label in (("Reconnections", "reconnections"), ("Video freezes", "freezes")):
        texts = drawn[title]
        assert label in texts
        ticks = texts[texts.index("s since the call started") + 1:texts.index(label)]
        assert ticks and ticks[0] == "0" and all(t.isdigit() for t in ticks), ticks  # no -0.04, no 0.02
    loss = drawn["Packet loss"]
    assert "%" in loss and loss[loss.index("s since the call started") + 1] == "0.0"  # from 0, not -0.04


def test_when_two_series_coincide_the_second_is_dashed_so_the_first_still_shows():
    from peerbot.quality.plots import svg_plots

    history = [{"t": float(t), "loss_percent": 0.0, "remote_loss_percent": 0.0} for t in range(1, 6)]
    [(_, svg)] = svg_plots(history)
    lines = re.findall(r'<path d="M [^"]*"[^>]*style="([^"]*)"', svg)
    assert any("stroke-dasharray" in style for style in lines)
    assert any("stroke-dasharray" not in style for style in lines)


def test_codecs_come_from_the_received_streams_of_a_stats_report():
    from types import SimpleNamespace

    from peerbot.quality.report import codecs_of

    stats = SimpleNamespace(inbound_rtp=(SimpleNamespace(codec="audio/opus"), SimpleNamespace(codec="video/VP8"),
                                         SimpleNamespace(codec="audio/opus")),
                            outbound_rtp=(SimpleNamespace(kind="audio"),))  # sent streams carry no codec
    assert codecs_of(stats) == {"received": ["audio/opus", "video/VP8"]}
    assert codecs_of(SimpleNamespace(inbound_rtp=(), outbound_rtp=())) is None


def test_without_matplotlib_the_page_has_tables_and_a_one_line_note(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    _, _, _, json_path, html_path = _write(tmp_path, _history(10))
    html = html_path.read_text()
    assert "<svg" not in html and MISSING_NOTE in html.replace("&#x27;", "'")
    assert "<table class=\"summary\">" in html and json.loads(json_path.read_text())["history"]


def test_an_hour_of_history_renders_in_reasonable_time_and_size(tmp_path):
    history = _history(3600, video=True)
    started = time.perf_counter()
    _, _, _, json_path, html_path = _write(tmp_path, history, ["mos_p50>=4"])
    elapsed = time.perf_counter() - started
    html_kb, json_kb = html_path.stat().st_size / 1024, json_path.stat().st_size / 1024
    print(f"\n3600 samples: report in {elapsed:.2f} s, HTML {html_kb:.0f} KiB, JSON {json_kb:.0f} KiB")
    assert html_path.read_text().count("<svg") == len(_plots_with_data(history))
    assert elapsed < 20 and html_kb < 8192


def test_a_json_or_html_suffix_on_the_stem_is_not_doubled(tmp_path):
    history = _history(3)
    paths = write_report(tmp_path / "run.html", summary=summarize(history), history=history, meta={})
    assert [p.name for p in paths] == ["run.json", "run.html"]


def test_nan_in_a_history_is_written_as_null_not_invalid_json(tmp_path):
    history = [{"t": 1.0, "jitter_ms": float("nan")}, {"t": 2.0, "jitter_ms": 2.0}]
    json_path, _ = write_report(tmp_path / "x", summary=summarize(history), history=history, meta={})
    assert json.loads(json_path.read_text())["history"][0]["jitter_ms"] is None
