"""The final report, taken at hang-up: the counters of that moment, the rates of the last full
interval (not of the few ms since it), a whole-call MOS that falls when the call was starved; and
a summary that cannot be changed through its stream bitrates."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle

import pytest

from peerbot import orga
from peerbot.engine.stats import StatsRecorder
from peerbot.media import Tone

from test_receive_stats import hog_loop
from test_stats_report import Clock, snapshot


def test_final_report_keeps_the_counts_of_the_moment_and_the_last_full_intervals_rates():
    clock = Clock()
    recorder = StatsRecorder(clock)
    recorder.record(snapshot(0, 0))
    clock.now += 1.0
    full = recorder.record(snapshot(50, 1, bytes_in=15_000, played=48000))
    clock.now += 0.004  # hang-up, 4 ms later: a remnant of an interval
    final = recorder.record(snapshot(51, 1, bytes_in=15_000, played=48192), final=True)
    assert final.summary.packets_received == 51
    assert final.summary.bitrate_in_kbps == full.summary.bitrate_in_kbps == 120.0
    assert final.summary.stream_bitrates_kbps == full.summary.stream_bitrates_kbps
    assert final.summary.interval_loss_percent == full.summary.interval_loss_percent


def test_final_report_of_a_call_shorter_than_an_interval_rates_over_the_whole_call():
    clock = Clock()
    recorder = StatsRecorder(clock)
    clock.now += 0.5
    final = recorder.record(snapshot(25, 0, bytes_in=5_000, played=24000), final=True)
    assert final.summary.bitrate_in_kbps == 80.0  # 5 000 bytes in 0.5 s
    assert final.summary.interval_loss_percent == 0.0


def test_final_mos_is_the_whole_calls_while_a_tick_mos_is_its_intervals():
    clock = Clock()
    recorder = StatsRecorder(clock)
    recorder.record(snapshot(0, 0))
    clock.now += 1.0
    recorder.record(snapshot(50, 0, played=48000, concealed=19200))  # a starved second: 40 % concealed
    clock.now += 1.0
    tick = recorder.record(snapshot(100, 0, played=96000, concealed=19200))  # a clean one
    clock.now += 0.01
    final = recorder.record(snapshot(100, 0, played=96480, concealed=19200), final=True)
    assert tick.summary.mos is not None and tick.summary.mos > 4.3  # the last second was clean
    assert final.summary.concealed_percent == pytest.approx(19.9, abs=0.1)
    assert final.summary.mos is not None and final.summary.mos < 3.0  # a fifth of the call was concealed


def test_stream_bitrates_of_a_report_are_read_only_yet_copy_and_pickle_like_a_dict():
    clock = Clock()
    recorder = StatsRecorder(clock)
    recorder.record(snapshot(0, 0))
    clock.now += 1.0
    report = recorder.record(snapshot(50, 0, bytes_in=10_000))
    with pytest.raises(TypeError):
        report.summary.stream_bitrates_kbps["inbound-rtp:audio:1"] = 0.0  # type: ignore[index]
    assert dataclasses.asdict(report)["summary"]["stream_bitrates_kbps"] == {"inbound-rtp:audio:1": 40.0}
    assert pickle.loads(pickle.dumps(report)) == report  # load workers send reports between processes


async def test_starved_call_final_mos_falls_below_3_5(orga_kwargs):
    async with orga.connect(source=Tone(440), **orga_kwargs) as session:
        await asyncio.sleep(1.0)
        await hog_loop(4.0)
    summary = session.stats().summary
    print(f"\nstarved call: MOS {summary.mos}, concealed {summary.concealed_percent} %,"
          f" coverage {summary.audio_coverage_percent} %")
    assert summary.mos is not None and summary.mos < 3.5, summary


async def test_idle_call_final_report_has_the_last_samples_bitrates_and_a_high_mos(orga_kwargs):
    async with orga.connect(source=Tone(440), **orga_kwargs) as session:
        await asyncio.sleep(4.2)
        ticks = session.stats_history()
    summary = session.stats().summary
    last = ticks[-1]
    print(f"\nidle call: final in {summary.bitrate_in_kbps} out {summary.bitrate_out_kbps} kbps, MOS {summary.mos};"
          f" last sample in {last['bitrate_in_kbps']} out {last['bitrate_out_kbps']}")
    assert summary.bitrate_in_kbps is not None and summary.bitrate_out_kbps is not None
    assert last["bitrate_in_kbps"] and last["bitrate_out_kbps"]
    assert summary.bitrate_in_kbps == pytest.approx(last["bitrate_in_kbps"], rel=0.2)
    assert summary.bitrate_out_kbps == pytest.approx(last["bitrate_out_kbps"], rel=0.2)
    assert all(rate > 0 for rate in summary.stream_bitrates_kbps.values())
    assert summary.mos is not None and summary.mos >= 4.2, summary
    assert session.stats().summary.stream_bitrates_kbps == summary.stream_bitrates_kbps
