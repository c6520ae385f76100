"""``--report``/``--assert`` as the calling commands get them, and a report built from a real call's figures."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import time

import pytest
from rich.console import Console

from peerbot import orga
from peerbot.media import Tone
from peerbot.quality import Threshold, summarize
from peerbot.quality.cli import add_report_options, finish_report
from peerbot.quality.plots import PLOTS
from peerbot.quality.report import report_meta
from peerbot.quality.thresholds import format_value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerbot call")
    add_report_options(parser)
    return parser


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=200, highlight=False, color_system=None), out


def test_assert_options_are_parsed_in_order_into_thresholds():
    args = _parser().parse_args(["--assert", "mos>=4.0", "--assert", "rtt_p95<=0.3s", "--report", "out"])
    assert args.assertions == [Threshold.parse("mos>=4.0"), Threshold.parse("rtt_p95<=300ms")]
    assert args.report == "out"


def test_without_options_nothing_is_checked_or_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _parser().parse_args([])
    console, out = _console()
    assert finish_report(args, summary=summarize([]), history=[], meta={}, console=console) is None
    assert out.getvalue() == "" and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("expression", "says"), [("packet_loss<=1%", "unknown metric 'packet_loss'"),
                                                   ("loss<=1ms", "does not fit loss_percent"),
                                                   ("mos=>4", "NAME OP VALUE")])
def test_a_bad_assert_exits_2_at_argument_time_saying_why(capsys, expression, says):
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["--assert", expression])
    assert exited.value.code == 2
    assert says in capsys.readouterr().err


def test_passing_thresholds_leave_the_exit_status_to_the_command():
    args = _parser().parse_args(["--assert", "loss<=1%", "--assert", "mos>=4"])
    console, out = _console()
    history = [{"t": 1.0, "loss_percent": 0.0, "mos": 4.4}]
    assert finish_report(args, summary=summarize(history), history=history, meta={}, console=console) is None
    assert "all 2 passed" in out.getvalue()


async def test_report_from_a_real_call_holds_its_measured_figures_and_failed_thresholds_exit_1(tmp_path, orga_kwargs):
    started_at = time.time()
    async with orga.connect(Tone(440.0), **orga_kwargs) as session:
        await asyncio.sleep(3.2)
        pair = session.peer.candidate_pair()
    history = session.stats_history()  # kept after the session ended

    print(*history, sep="\n")
    assert 2 <= len(history) <= 4 and all(a["t"] < b["t"] for a, b in zip(history, history[1:]))
    last = history[-1]
    assert last["bitrate_in_kbps"] > 10 and last["bitrate_out_kbps"] > 10  # Opus at ~32–64 kbps
    assert last["loss_percent"] is not None and last["loss_percent"] < 5  # loopback loses (almost) nothing
    assert 50 < last["audio_coverage_percent"] <= 110  # the echo starts after set-up, then keeps pace
    assert last["latency_ms"] is None and last["frames_per_second"] is None  # not measured: null, not 0
    summary = summarize(history)

    args = _parser().parse_args(["--report", str(tmp_path / "call"), "--assert", "loss<=5%",
                                 "--assert", "coverage>=50%", "--assert", "latency_p95<=500ms"])
    console, out = _console()
    meta = report_meta("call", "embedded Orga server", started_at=started_at, duration_s=3.2, candidate_pair=pair)
    status = finish_report(args, summary=summary, history=history, meta=meta, console=console)

    printed = out.getvalue()
    print(printed)
    assert status == 1
    assert "1 of 3 failed" in printed and "FAIL latency_p95 not measured, required <= 500 ms" in printed
    assert f"loss = {format_value(summary['loss_percent'], '%')}, required <= 5%" in printed
    record = json.loads((tmp_path / "call.json").read_text())
    assert record["history"] == history and record["summary"] == summary
    assert record["meta"]["candidate_pair"]["local_type"] == "host"
    assert [t["passed"] for t in record["thresholds"]] == [True, True, False]
    html = (tmp_path / "call.html").read_text()
    drawn = [p for p in PLOTS if p.has_data(history)]
    assert html.count("<svg") == len(drawn)
    assert {"Bitrate", "Audio coverage and concealment"} <= {p.title for p in drawn}


def test_report_stem_is_checked_at_argument_time_and_a_good_one_left_as_written(tmp_path, capsys):
    assert _parser().parse_args(["--report", str(tmp_path / "out.json")]).report == str(tmp_path / "out.json")
    assert list(tmp_path.iterdir()) == []  # the check leaves nothing behind
    (tmp_path / "taken.json").mkdir()
    for stem, says in ((str(tmp_path / "taken"), "exists and is not a file"), ("/proc/x", "cannot write in"),
                       (str(tmp_path / "no" / "x"), "is not an existing directory"), ("", "needs a file name stem"),
                       (" ", "needs a file name stem"), (str(tmp_path) + "/", "needs a file name stem")):
        with pytest.raises(SystemExit) as exited:
            _parser().parse_args(["--report", stem])
        assert exited.value.code == 2 and says in capsys.readouterr().err, stem
    assert not (tmp_path / "no").exists()


def test_outcome_gets_the_threshold_results_and_the_report_paths(tmp_path):
    args = _parser().parse_args(["--assert", "mos>=4.5", "--report", str(tmp_path / "r")])
    console, _ = _console()
    history = [{"t": 1.0, "mos": 4.4}]
    outcome: dict = {}
    assert finish_report(args, summary=summarize(history), history=history, meta={}, console=console,
                         outcome=outcome) == 1
    [result] = outcome["thresholds"]
    assert result["passed"] is False and result["measured"] == 4.4 and "0.1 under" in result["message"]
    assert outcome["report"] == {"json": str(tmp_path / "r.json"), "html": str(tmp_path / "r.html")}


def test_a_report_that_cannot_be_written_after_the_call_is_exit_1_not_a_traceback(tmp_path):
    # Checked before the call; then, during it, the directory became a file.
    args = argparse.Namespace(report=str(tmp_path / "gone" / "sub" / "r"), assertions=None)
    (tmp_path / "gone").write_text("a file where a directory was")
    console, out = _console()
    assert finish_report(args, summary=summarize([]), history=[], meta={}, console=console) == 1
    assert "report not written" in out.getvalue()
