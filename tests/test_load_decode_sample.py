"""``--decode-sample``: a few cheap participants decode what comes back and say whether it is the
tone they sent. Real runs (worker processes, the embedded reflecting server in its own process,
real DTLS/SRTP and Opus) and the command line's validation."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from peerbot.cli.main import build_parser, main
from peerbot.errors import ConfigurationError
from peerbot.load import LoadConfig, LoadThreshold, run
from peerbot.load.decoded import DecodedAudioMeter
from peerbot.load.live import live_view, summary_view
from peerbot.quality import check

TONE_HZ = 523.0


async def test_decode_sample_of_half_of_four_encoded_participants_hears_the_tone_and_the_rest_start_no_decoder():
    # Two workers take participants 0, 2 and 1, 3: the sample (0 and 2) is all in worker 0.
    result = await run(LoadConfig(participants=4, spawn_rate=10, duration=4, workers=2, media="encoded",
                                  reflect=True, source=f"tone:{TONE_HZ:g}", decode_sample_percent=50))
    s = result.summary
    assert result.errors == {} and s["connected"] == 4
    assert [p.decodes for p in result.participants] == [True, False, True, False]
    assert s["decoded"] == 2
    for p in result.participants[0::2]:  # decoded: the reflected tone, at its pitch and loud
        assert abs(p.figure("decoded_frequency_hz") - TONE_HZ) <= 2, p.row()
        assert p.figure("decoded_tone_percent") >= 50 and p.figure("decoded_level_dbfs") > -30, p.row()
        assert p.figure("decoded_frames") >= 100, p.row()  # 50 a second, for 3 s or so
    for p in result.participants[1::2]:  # counted only: no decoded figure, yet a full call
        assert p.figure("decoded_frames") is None and p.figure("decoded_tone_percent") is None
        assert p.figure("audio_coverage_percent") >= 90
    assert [w.decoder_threads_max for w in result.workers] == [2, 0]  # one audio decoder per sampled participant
    rows = [p.row() for p in result.participants]
    assert [r["decoded"] for r in rows] == [True, False, True, False]
    [tone_check] = check(s, [LoadThreshold.parse("tone_min>=50%")])
    assert tone_check.passed, tone_check.message
    console = Console(width=100, record=True, color_system=None)
    console.print(summary_view(result))
    text = console.export_text()
    assert "decoded 2 of 4" in text and "523 Hz" in text and "tone heard" in text


async def test_decode_sample_of_100_percent_with_plain_media_measures_every_participants_decoded_audio():
    result = await run(LoadConfig(participants=2, spawn_rate=10, duration=3, workers=1, reflect=True,
                                  source=f"tone:{TONE_HZ:g}", decode_sample_percent=100))
    assert result.errors == {} and result.summary["decoded"] == 2
    for p in result.participants:
        assert abs(p.figure("decoded_frequency_hz") - TONE_HZ) <= 2, p.row()
    assert result.summary["decoder_threads_max"] >= 2


def test_decoded_audio_meter_counts_the_seconds_with_the_tone_and_none_in_silence():
    rate = 48000
    t = np.arange(rate) / rate
    meter = DecodedAudioMeter(tone_hz=440.0)
    seconds = [np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 880 * t), np.zeros(rate), np.sin(2 * np.pi * 441 * t)]
    for second in seconds:
        for frame in np.split((second * 10000).astype(np.int16), 50):  # 20 ms frames
            meter.add(frame, rate)
    figures = meter.figures()
    assert figures["decoded_frames"] == 200
    assert figures["decoded_tone_percent"] == 50  # 440 and 441 Hz; not the octave, not the silence
    assert meter.frequencies[2] is None and meter.levels[2] == -100  # silence has no pitch, a finite floor
    assert meter.levels[0] == pytest.approx(20 * np.log10(10000 / np.sqrt(2) / 32768), abs=0.1)
    assert DecodedAudioMeter(tone_hz=None).figures()["decoded_tone_percent"] is None


def test_live_view_shows_how_many_decode_and_what_they_hear_in_80_columns():
    from peerbot.load.summary import LoadState

    state = LoadState(participants=3, workers=1)
    for i, p in enumerate(state.participants):
        p.worker, p.state, p.setup_ms, p.decodes = 0, "connected", 100.0, i == 0
    state.participants[0].latest = {"decoded_frames": 150.0, "decoded_tone_percent": 100.0,
                                    "decoded_frequency_hz": 523.0, "decoded_level_dbfs": -13.5}
    state.tick(0, 5, 20, {}, decoder_threads=1)
    console = Console(width=80, record=True, color_system=None)
    console.print(live_view(state, 30))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "decoded: 1 of 3  100% (min)  523 Hz  -13.5 dBFS  decoder threads 1" in text


@pytest.mark.parametrize(("text", "percent"), [("5%", 5.0), ("5", 5.0), ("0.5%", 0.5), ("100%", 100.0)])
def test_load_cli_reads_a_decode_sample_as_a_percentage(text: str, percent: float) -> None:
    args = build_parser().parse_args(["load", "-n", "4", "--media", "encoded", "--decode-sample", text])
    assert args.decode_sample == percent


@pytest.mark.parametrize("bad", ["-5%", "101", "100.1%", "abc", "nan", "inf", "5%%", ""])
def test_load_cli_refuses_a_bad_decode_sample_with_exit_2(bad: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["load", "-n", "2", "--media", "encoded", f"--decode-sample={bad}"])
    assert exc.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--decode-sample" in line


def test_load_cli_refuses_a_partial_decode_sample_with_plain_media_with_exit_2(capsys) -> None:
    assert main(["load", "-n", "2", "--decode-sample", "50%"]) == 2
    assert "media plain" in capsys.readouterr().err


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"decode_sample_percent": -1, "media": "encoded"}, "from 0 to 100"),
    ({"decode_sample_percent": float("nan"), "media": "encoded"}, "from 0 to 100"),
    ({"decode_sample_percent": True, "media": "encoded"}, "from 0 to 100"),
    ({"decode_sample_percent": 5}, "media plain"),
])
def test_load_config_refuses_a_bad_decode_sample(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        LoadConfig(participants=2, duration=5, **kwargs)  # type: ignore[arg-type]
