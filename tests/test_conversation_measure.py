"""The conversation instrument on synthetic audio and timelines: what we sent and when, what the
VAD hears in received frames and when, and the per-turn figures computed from both."""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
import pytest

from peerbot.conversation import (
    BargeIn,
    ConversationResult,
    Expect,
    FarSideSpeech,
    Turn,
    TurnResult,
    Utterance,
    UtteranceSource,
    parse_threshold,
    summarize_turns,
    write_conversation_report,
)
from peerbot.conversation.measure import STOP_TIMEOUT, TurnRecord, measure_turn
from peerbot.conversation.utterance import SAMPLE_RATE, sound_onset
from peerbot.errors import ConfigurationError
from peerbot.media.frames import AudioFrame
from peerbot.orga.events import InputTranscriptionCompleted, SessionUpdated

RATE = SAMPLE_RATE
FRAME = RATE // 50


@pytest.fixture(scope="module")
def hello() -> Utterance:
    return Utterance.from_text("Hello there, how are you?")


# --- what we send -----------------------------------------------------------------------


def test_utterance_speech_span_comes_from_the_vad_and_its_first_sound_from_the_samples(hello):
    assert 0.05 < hello.speech_start < hello.speech_end < hello.duration
    loud = np.flatnonzero(np.abs(hello.samples.astype(np.int32)) >= 32768 * 10 ** (-50 / 20))
    assert hello.speech_start == pytest.approx(loud[0] / RATE, abs=1 / RATE)
    # "Stop": the "s" sounds 0.1 s and more before the first voiced frame, and counts as our speech.
    stop = Utterance.from_text("Stop please.")
    pcm = stop.samples
    voiced_later = sound_onset(pcm, RATE, stop.speech_start + 0.1)
    assert voiced_later == pytest.approx(stop.speech_start, abs=1e-3)


def test_an_utterance_without_speech_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="holds no speech"):
        Utterance.from_pcm(np.zeros(RATE, np.int16), RATE, "silence")
    noise = (np.random.default_rng(1).normal(0, 20, RATE)).astype(np.int16)  # about -64 dBFS
    with pytest.raises(ConfigurationError, match="holds no speech"):
        Utterance.from_pcm(noise, RATE, "hiss")


async def test_sent_times_come_from_the_frames_that_carried_the_samples(hello):
    source = UtteranceSource()
    handed: list[float] = []

    async def sender() -> None:  # what aiortc's sender does: take each paced frame as it is due
        while True:
            await source.recv()
            handed.append(time.monotonic())

    task = asyncio.create_task(sender())
    await asyncio.sleep(0.05)  # the track is already sending silence
    sent = await asyncio.wait_for(source.say(hello), hello.duration + 2)
    task.cancel()
    assert sent.started_at is not None and sent.speech_started_at is not None and sent.speech_ended_at is not None
    assert sent.ended_at is not None
    # The first sample goes out at the start of a frame, the rest at their offsets after it.
    assert min(abs(sent.started_at - h) for h in handed) < 0.005
    # Within what the frames' own hand-over times wander from the 20 ms grid (the loop's wake-ups).
    assert sent.speech_started_at - sent.started_at == pytest.approx(hello.speech_start, abs=0.005)
    assert sent.speech_ended_at - sent.started_at == pytest.approx(hello.speech_end, abs=0.005)
    assert sent.ended_at - sent.started_at == pytest.approx(hello.duration, abs=0.01)


async def test_back_to_back_utterances_are_timed_one_after_the_other(hello):
    source = UtteranceSource()

    async def sender() -> None:
        while True:
            await source.recv()

    task = asyncio.create_task(sender())
    short = Utterance.from_text("Yes.")
    first, second = await asyncio.wait_for(asyncio.gather(source.say(short), source.say(short)), 5)
    task.cancel()
    assert second.started_at == pytest.approx(first.ended_at, abs=2 / RATE)


# --- what we hear -----------------------------------------------------------------------


def frames_of(pcm: np.ndarray, *, start_stamp: float = 0.0, channels: int = 2) -> list[AudioFrame]:
    pcm = np.concatenate((pcm, np.zeros(-len(pcm) % FRAME, np.int16)))
    out = []
    for i in range(0, len(pcm), FRAME):
        data = np.tile(pcm[i:i + FRAME], (channels, 1))
        out.append(AudioFrame(data=data, sample_rate=RATE, timestamp=start_stamp + i / RATE))
    return out


def feed_all(far: FarSideSpeech, frames: list[AudioFrame], arrival) -> None:
    for i, frame in enumerate(frames):
        far.feed(frame, arrival(i, frame))
    far.finish()


def test_far_side_speech_is_placed_at_the_arrival_of_its_frames_and_one_late_frame_does_not_move_it(hello):
    silence = np.zeros(RATE, np.int16)
    speech = hello.samples[round(hello.speech_start * RATE):round(hello.speech_end * RATE)]
    pcm = np.concatenate((silence, speech, silence))
    frames = frames_of(pcm)
    origin, transit = 100.0, 0.045

    def arrival(i: int, frame: AudioFrame) -> float:
        late = 0.080 if i == 50 else 0.0  # the frame carrying the first speech waited on a busy loop
        return origin + frame.timestamp + transit + late

    far = FarSideSpeech()
    far.prime(hello.samples, RATE)
    feed_all(far, frames, arrival)
    (start, end), = far.timed_segments()
    assert start == pytest.approx(origin + 1.0 + transit, abs=0.021)  # within the VAD's 20 ms frame
    assert end is not None and end == pytest.approx(origin + 1.0 + len(speech) / RATE + transit, abs=0.041)
    # The plain arrival clock takes the late frame as it came; the smoothed one does not.
    assert far.arrival_of(far.segments[0].start) - start == pytest.approx(0.080, abs=0.021)


def test_silence_and_comfort_noise_are_never_speech():
    rng = np.random.default_rng(7)
    comfort = rng.normal(0, 25, 3 * RATE).astype(np.int16)  # about -62 dBFS of noise
    far = FarSideSpeech()
    feed_all(far, frames_of(np.concatenate((np.zeros(RATE, np.int16), comfort))), lambda i, f: f.timestamp)
    assert far.segments == [] and far.silent_for() == pytest.approx(4.0, abs=0.03)


def test_an_unprimed_vad_is_no_earlier_than_a_primed_one_on_the_first_words(hello):
    pcm = np.concatenate((np.zeros(RATE, np.int16), hello.samples))
    primed, fresh = FarSideSpeech(), FarSideSpeech()
    primed.prime(hello.samples, RATE)
    for far in (primed, fresh):
        feed_all(far, frames_of(pcm), lambda i, f: f.timestamp)
    assert primed.segments[0].start == pytest.approx(1.0 + hello.speech_start, abs=0.05)
    assert fresh.segments[0].start >= primed.segments[0].start
    with pytest.raises(RuntimeError):
        primed.prime(hello.samples, RATE)  # once frames came, it is too late


def test_speech_cut_on_an_unvoiced_sound_ends_where_the_sound_stops(hello):
    # Speech, then 150 ms of quiet hiss (-44 dBFS: sound, which the VAD soon stops calling voiced),
    # then digital silence: a reply cut on an unvoiced sound.
    voiced = hello.samples[round(hello.speech_start * RATE):round(hello.speech_end * RATE)]
    hiss = (np.random.default_rng(3).normal(0, 200, int(0.15 * RATE))).astype(np.int16)
    pcm = np.concatenate((np.zeros(RATE // 2, np.int16), voiced, hiss, np.zeros(RATE, np.int16)))
    far = FarSideSpeech()
    far.prime(hello.samples, RATE)
    feed_all(far, frames_of(pcm), lambda i, f: f.timestamp)
    segment = far.segments[-1]
    assert segment.voiced_end is not None and segment.end is not None
    assert segment.end == pytest.approx(0.5 + (len(voiced) + len(hiss)) / RATE, abs=0.021)
    assert segment.end - segment.voiced_end >= 0.04


async def test_waiting_follows_the_frames_as_they_arrive():
    far = FarSideSpeech()
    frames = frames_of(np.zeros(RATE // 2, np.int16))

    async def deliver() -> None:
        for frame in frames:
            far.feed(frame, time.monotonic())
            await asyncio.sleep(0.005)

    feeding = asyncio.create_task(deliver())
    assert await far.wait_until(lambda: far.position >= 0.2, time.monotonic() + 2)
    assert not await far.wait_until(lambda: False, time.monotonic() + 0.05)
    stop = asyncio.Event()
    stop.set()
    assert not await far.wait_until(lambda: False, time.monotonic() + 5, stop)
    await feeding


# --- the figures of a turn, from timelines ---------------------------------------------


def record(number: int, said: tuple[float, float], *, started: float | None = None, **turn: object) -> TurnRecord:
    return TurnRecord(number, Turn(say="Hello there.", **turn), started if started is not None else said[0] - 0.2,
                      said[1] + 3, said)


def test_voice_to_voice_is_from_the_end_of_our_speech_to_the_first_far_side_speech():
    turn = measure_turn(record(1, (10.0, 11.0)), [(9.0, 9.5), (12.2, 13.0), (13.3, 14.0), (16.0, 17.0)], [],
                        origin=9.5, window_end=15.0)
    assert turn.v2v_ms == pytest.approx(1200.0)
    assert turn.response_s == pytest.approx(1.8)  # a 0.3 s pause within answer_silence belongs to the answer
    assert turn.answer == (2.7, 4.5) and turn.said == (0.5, 1.5) and not turn.failed


def test_no_answer_fails_the_turn_and_talking_over_us_gives_no_latency():
    silent = measure_turn(record(1, (10.0, 11.0)), [], [], origin=0, window_end=20)
    assert silent.failed and silent.v2v_ms is None and "no answer" in silent.failures[0]
    over = measure_turn(record(2, (10.0, 11.0)), [(10.8, 12.0)], [], origin=0, window_end=20)
    assert over.v2v_ms is None and "was speaking when our utterance ended" in over.notes[0]
    assert over.response_s == pytest.approx(1.2)


def barge(far: list[tuple[float, float | None]], interruption: tuple[float, float]) -> TurnResult:
    first = record(1, (10.0, 11.0), barge_in_after=0.5)
    second = record(2, interruption, started=interruption[0] - 0.1)
    return measure_turn(first, far, [], origin=0, window_end=second.started_at, interrupter=second)


def test_a_barge_in_is_timed_from_our_first_sound_to_where_the_far_side_stopped():
    turn = barge([(12.2, 12.78), (14.5, 15.5)], (12.7, 13.5))
    assert turn.barge_in == BargeIn(0.5, 0.5, 80.0, True)
    assert not turn.failed and turn.response_s == pytest.approx(0.58)


def test_a_far_side_that_pauses_and_resumes_while_we_speak_did_not_stop():
    turn = barge([(12.2, 12.9), (13.1, 16.0)], (12.7, 13.5))
    assert turn.barge_in is not None and not turn.barge_in.stopped and turn.barge_in.stop_ms is None
    assert any("did not stop" in f for f in turn.failures)
    ended_late = barge([(12.2, 12.7 + STOP_TIMEOUT + 0.5)], (12.7, 13.5))
    assert ended_late.barge_in is not None and not ended_late.barge_in.stopped
    assert any("ended 2.50 s after our barge-in" in n for n in ended_late.notes)
    going_on = barge([(12.2, None)], (12.7, 13.5))
    assert going_on.barge_in is not None and not going_on.barge_in.stopped


def test_an_answer_over_before_the_barge_in_fails_the_turn_without_counting_as_not_stopped():
    turn = barge([(12.2, 12.5)], (13.6, 14.4))  # silent for more than answer_silence (1 s) first
    assert turn.barge_in is None and "before the barge-in at 0.5 s" in turn.failures[0]


def test_a_barge_in_begun_in_a_pause_of_the_answer_stopped_it_unless_it_resumed_while_we_spoke():
    kept_quiet = barge([(12.2, 12.6)], (12.7, 13.5))
    assert kept_quiet.barge_in == BargeIn(0.5, 0.5, None, True) and "began in a pause" in kept_quiet.notes[0]
    resumed = barge([(12.2, 12.6), (12.8, 13.0)], (12.7, 13.5))
    assert resumed.barge_in == BargeIn(0.5, 0.5, 300.0, True)


def test_expectations_look_at_the_turns_events_and_say_what_came_instead():
    heard = InputTranscriptionCompleted("conversation.item.input_audio_transcription.completed", {}, transcript="Hello  THERE")
    updated = SessionUpdated("session.updated", {"type": "session.updated"}, session={})
    rec = TurnRecord(1, Turn(say="Hello there.", expect=(Expect("transcript", "hello there"), Expect("reply", "hi"),
                                                          Expect("session.updated"))), 10.0, 14.0, (10.2, 11.0))
    turn = measure_turn(rec, [(12.2, 13.0)], [(11.5, heard), (11.6, updated)], origin=10.0, window_end=14.0)
    passed = [e.passed for e in turn.expectations]
    assert passed == [True, False, True]
    assert turn.expectations[0].matched == "Hello  THERE" and turn.expectations[0].t == 1.5
    assert turn.failures == ("expected reply contains 'hi': no reply event came during the turn",)
    assert [e.type for e in turn.events][0].endswith("transcription.completed")


# --- summaries, thresholds, reports -----------------------------------------------------


def conversation(v2v: list[float], stops: list[float | None], index: int = 0) -> ConversationResult:
    turns = [TurnResult(i + 1, "say", "x", i * 3.0, i * 3.0 + 2.5, said=(i * 3.0, i * 3.0 + 1.0),
                        answer=(i * 3.0 + 1.0 + v / 1000, i * 3.0 + 2.4), v2v_ms=v, response_s=1.0)
             for i, v in enumerate(v2v)]
    for i, stop in enumerate(stops):
        turns[i] = TurnResult(**{**turns[i].__dict__, "barge_in": BargeIn(0.5, 0.5, stop, stop is not None),
                                 "failures": () if stop is not None else ("did not stop",)})
    result = ConversationResult("test", index=index, conversation_id=f"conv_{index}", duration_s=len(v2v) * 3.0,
                                turns=turns)
    result.caller_speech = [t.said for t in turns if t.said]
    result.far_speech = [t.answer for t in turns if t.answer]
    return result


def test_summary_percentiles_over_turns_and_counts_of_failures_across_conversations():
    one = conversation([1000, 1100, 1200, 1300, 1400], [80.0])
    two = conversation([2000], [None], index=1)
    summary = summarize_turns([one, two])
    assert summary["v2v_ms_p50"] == pytest.approx(1250.0)
    assert summary["v2v_ms_max"] == 2000 and summary["v2v_ms_min"] == 1000
    assert summary["v2v_ms_p95"] == pytest.approx(float(np.percentile([1000, 1100, 1200, 1300, 1400, 2000], 95)))
    assert summary["barge_in_stop_ms_p95"] == 80.0
    assert (summary["turns"], summary["turns_failed"], summary["barge_ins"], summary["barge_ins_not_stopped"]) == (6, 1, 2, 1)
    assert (summary["conversations"], summary["conversations_failed"]) == (2, 1)
    assert one.summary()["conversations_failed"] == 0


def test_thresholds_speak_the_quality_language_over_the_conversation_names():
    from peerbot.quality import check

    summary = summarize_turns([conversation([1000, 1100, 1200], [80.0])])
    results = check(summary, [parse_threshold(t) for t in
                              ("v2v_p95<=1500ms", "v2v_p50<=1.0s", "barge_in_stop_p95<=500ms", "turns_failed==0")])
    assert [r.passed for r in results] == [True, False, True, True]
    assert results[1].message == "v2v_p50 = 1100 ms, required <= 1000 ms: 100 ms over"
    for bad, says in (("mos>=4", "unknown metric 'mos'"), ("turns_failed_p95==0", "takes no statistic"),
                      ("v2v_p95<=5%", "does not fit")):
        with pytest.raises(ConfigurationError, match=says):
            parse_threshold(bad)


def test_the_report_is_json_and_a_self_contained_page_with_a_timeline_and_latency_per_turn(tmp_path):
    from peerbot.quality import check

    results = [conversation([1000, 1200], [80.0]), conversation([1100], [], index=1)]
    checks = check(summarize_turns(results), [parse_threshold("v2v_p95<=1500ms")])
    json_path, html_path = write_conversation_report(tmp_path / "talk.json", results, results=checks,
                                                     meta={"command": "converse", "target": "test"})
    record = json.loads(json_path.read_text())
    assert record["schema"] == "peerbot.conversation/1" and html_path.name == "talk.html"
    assert record["summary"]["v2v_ms_max"] == 1200 and record["thresholds"][0]["passed"]
    assert [len(c["turns"]) for c in record["conversations"]] == [2, 1]
    assert record["conversations"][0]["turns"][0]["barge_in"]["stop_ms"] == 80.0
    page = html_path.read_text()
    assert page.count('<svg class="timeline"') == 2 and '<svg class="latency"' in page
    assert "Call quality (conversation 1)" in page and "Thresholds: all 1 passed" in page
    assert "<script" not in page and "src=" not in page and "href=\"http" not in page


def test_a_far_side_that_talks_through_the_whole_interruption_did_not_stop_though_its_reply_ended_soon_after():
    # A short reply played out over our interruption (an agent that keeps talking): it ends 0.3 s
    # after our interruption, within STOP_TIMEOUT, but it never stopped for us.
    turn = barge([(12.2, 13.8)], (12.7, 13.5))
    assert turn.barge_in == BargeIn(0.5, 0.5, None, False) and turn.failed
    assert any("did not stop while we talked over it" in f and "0.30 s past the end of ours" in f for f in turn.failures)
    just_in_time = barge([(12.2, 13.45)], (12.7, 13.5))  # a slow stop, but before we were done
    assert just_in_time.barge_in == BargeIn(0.5, 0.5, 750.0, True) and not just_in_time.failed


def test_an_expectation_is_timed_on_the_conversations_clock_like_the_event_that_met_it():
    # It was timed from the turn's start while the events were timed from the conversation's.
    heard = InputTranscriptionCompleted("conversation.item.input_audio_transcription.completed", {}, transcript="hello")
    rec = TurnRecord(2, Turn(say="Hello there.", expect=(Expect("transcript", "hello"),)), 10.0, 14.0, (10.2, 11.0))
    turn = measure_turn(rec, [(12.2, 13.0)], [(11.5, heard)], origin=4.0, window_end=14.0)
    assert turn.expectations[0].t == turn.events[0].t == 7.5


def test_a_file_longer_than_an_utterance_is_refused_before_it_is_decoded_and_a_corrupt_one_without_ffmpegs_errno(
        tmp_path, monkeypatch):
    import wave

    from peerbot.conversation import Script, load_script, prepare_utterances
    from peerbot.conversation import utterance as utterance_module

    long = tmp_path / "long.wav"
    with wave.open(str(long), "wb") as w:  # 320 s of 8 kHz silence: 5 MB, decoded to 48 kHz it was 30 MB more
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(bytes(2 * 8000 * 320))
    decoded: list[object] = []
    monkeypatch.setattr(utterance_module, "decode_audio", lambda *a: decoded.append(a) or np.zeros((1, 0), np.int16))
    with pytest.raises(ConfigurationError, match=r"'long.wav' lasts 320 s; an utterance is at most 300 s"):
        Utterance.from_file(long)
    assert not decoded
    monkeypatch.undo()
    (tmp_path / "bad.wav").write_bytes(b"not a wav at all")
    (tmp_path / "s.toml").write_text('[[turns]]\naudio = "bad.wav"\n')
    script: Script = load_script(tmp_path / "s.toml")
    with pytest.raises(ConfigurationError) as refused:
        prepare_utterances(script)
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 's.toml'}: turn 1: cannot decode audio from") and "Errno" not in message


def test_an_answer_still_going_when_the_turn_gave_up_has_no_duration_rather_than_the_part_before_the_next_turn():
    # The far side talked past the timeout, and our next turn cut it: its 1.0 s "answer" was counted.
    rec = TurnRecord(1, Turn(say="Hello there.", timeout=1.5), 9.8, 12.5, (10.0, 11.0),
                     gave_up="the answer went on past the 1.5 s timeout")
    turn = measure_turn(rec, [(11.8, 12.8)], [], origin=0, window_end=12.5)
    assert turn.response_s is None and turn.answer == (11.8, None) and turn.v2v_ms == pytest.approx(800)
    assert turn.failures == ("the answer went on past the 1.5 s timeout",)
    over = TurnRecord(1, Turn(say="Hello there."), 9.8, 14.0, (10.0, 11.0))  # an answer over in time keeps it
    assert measure_turn(over, [(11.8, 12.8)], [], origin=0, window_end=14.0).response_s == pytest.approx(1.0)
