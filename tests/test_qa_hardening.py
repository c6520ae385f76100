"""What a hostile new user found, fixed: far-side text printed safely, recordings never lost
silently, Orbit's typed set-up errors, media sources that refuse bad arguments, a REST transport
that refuses absurd answers and credentials at once, and the summary's counters at hang-up."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from peerbot import orbit, orga
from peerbot.cli.call import event_line
from peerbot.cli.main import main
from peerbot.cli.text import terminal_safe
from peerbot.errors import (CallNotConnectedError, ConfigurationError, InvalidIceServerError, NoCallError,
                            OrgaAIServerError)
from peerbot.local.echo_assistant import EchoCall
from peerbot.media import AudioSource, Tone
from peerbot.orga import events as ev
from peerbot.orga.client import OrgaClient
from peerbot.orbit import OrbitUser
from peerbot.orbit.calls import UserCalls

from media_checks import dominant_frequency
from orbit_bed import orbit_bed

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}

HOSTILE = [
    {"type": "\ud800"},
    {"type": "\u001b[2J\u001b[31mEVIL"},
    {"type": "[bold red]markup[/]"},
    {"type": ev.INPUT_TRANSCRIPTION_COMPLETED, "transcript": "hi \ud800 \x1b]0;owned\x07 \u202egnp.exe"},
    {"type": ev.RESPONSE_OUTPUT_ITEM_DONE, "text": "\x1b[2Jcleared"},
]


# --- 1. text from the far side --------------------------------------------------------


def test_event_lines_escape_terminal_controls_surrogates_and_markup_and_encode_as_utf8():
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # strict: a lone surrogate would raise here
    console = Console(file=out, highlight=False, soft_wrap=True, force_terminal=False)
    for message in HOSTILE:
        console.print(event_line(ev.parse_event(json.dumps(message))))
    out.flush()
    text = out.buffer.getvalue().decode("utf-8")
    assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "event \\ud800" in text and "event \\x1b[2J\\x1b[31mEVIL" in text
    assert "event [bold red]markup[/]" in text  # shown literally, not as rich markup
    assert "you: hi \\ud800 \\x1b]0;owned\\x07 \\u202egnp.exe" in text
    assert "assistant: \\x1b[2Jcleared" in text


def test_terminal_safe_escapes_what_the_terminal_encoding_cannot_write():
    assert terminal_safe("café 日本", "ascii") == "caf\\xe9 \\u65e5\\u672c"
    assert terminal_safe("café 日本", "utf-8") == "café 日本"
    assert terminal_safe("x" * 5000).endswith("…") and len(terminal_safe("x" * 5000)) == 2001


async def _hostile_converse(self, channel, _original=EchoCall._converse):
    for message in HOSTILE:
        await self._send(message)
    await _original(self, channel)


def test_call_survives_hostile_events_and_prints_them_escaped(monkeypatch, capsys):
    monkeypatch.setattr(EchoCall, "_converse", _hostile_converse)
    for name in [k for k in os.environ if k.startswith("ORGA_")]:
        monkeypatch.delenv(name)
    status = main(["call", "--duration", "1.5", "--json"])
    out, err = capsys.readouterr()
    assert status == 0, err
    summary = json.loads(out)
    assert summary["exit_status"] == 0 and summary["audio_frames_received"] > 50
    assert "\x1b" not in err and "\x07" not in err
    assert "event \\ud800" in err and "event \\x1b[2J\\x1b[31mEVIL" in err
    assert "you: hi \\ud800" in err and "assistant: \\x1b[2Jcleared" in err
    assert "event session.created" in err  # the events after the hostile ones still came through


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(),
    st.binary(),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                 lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20)
    .map(lambda value: json.dumps({"type": ev.INPUT_TRANSCRIPTION_COMPLETED, "transcript": value})),
    st.text().map(lambda kind: json.dumps({"type": kind, "transcript": kind, "text": kind})),
))
def test_parse_event_never_raises_and_keeps_strings_as_they_came(message):
    event = ev.parse_event(message)
    assert isinstance(event, ev.Event)
    if isinstance(message, str) and isinstance(event, ev.UnknownEvent):
        assert event.type == json.loads(message)["type"]  # unchanged, surrogates included
    event_line(event)  # and the CLI can always show it


# --- 2. recording --------------------------------------------------------------------


@pytest.mark.parametrize("path, message", [("/proc/y.wav", "cannot record to /proc/y.wav"),
                                           ("/tmp/", "is a directory")])
def test_api_refuses_a_recording_place_that_cannot_be_written_before_any_request(path, message):
    with pytest.raises(ConfigurationError, match=message):
        orga.connect(Tone(), record=path, api_key="k", user_email="a@b.example", base_url="http://127.0.0.1:9")
    assert not os.path.exists("/proc/y.wav")


def test_writable_record_path_check_leaves_no_file_behind(tmp_path):
    path = tmp_path / "later.wav"
    orga.connect(Tone(), record=path, api_key="k", user_email="a@b.example", base_url="http://127.0.0.1:9")
    assert not path.exists()  # opened to prove it can be written, and removed: the call never started


@pytest.fixture
def full_disk_wav(tmp_path):
    path = tmp_path / "full.wav"
    path.symlink_to("/dev/full")  # opens fine, every write fails with ENOSPC
    return path


def test_recording_that_fails_during_the_call_exits_1_and_json_says_so(full_disk_wav):
    result = subprocess.run([*PEERBOT, "call", "--duration", "1.5", "--json", "--record", str(full_disk_wav)],
                            capture_output=True, text=True, timeout=60, env=ENV)
    assert result.returncode == 1, result.stderr
    summary = json.loads(result.stdout)
    assert summary["exit_status"] == 1 and "No space left on device" in summary["recording_error"]
    assert "recording failed:" in result.stderr and "recorded to" not in result.stderr


async def test_session_keeps_the_recorders_error_after_the_call(orga_kwargs, full_disk_wav):
    async with orga.connect(Tone(), record=full_disk_wav, **orga_kwargs) as session:
        await asyncio.sleep(1.0)
    assert session.recorder is not None and "No space left on device" in (session.recorder.error or "")


async def test_a_good_recording_has_no_error(orga_kwargs, tmp_path):
    async with orga.connect(Tone(), record=tmp_path / "ok.wav", **orga_kwargs) as session:
        await asyncio.sleep(1.0)
    assert session.recorder.error is None and (tmp_path / "ok.wav").stat().st_size > 50_000


# --- 3. Orbit ------------------------------------------------------------------------


@pytest.mark.parametrize("callee", ["", "   ", None, 5])
def test_orbit_call_to_an_empty_or_non_string_callee_is_a_configuration_error(callee):
    with pytest.raises(ConfigurationError, match="callee_id must be a non-empty user id"):
        orbit.call(callee, Tone(), token="t", client_id="pk_test", base_url="http://127.0.0.1:9")


def test_orbit_call_checks_ice_servers_at_call_time():
    with pytest.raises(InvalidIceServerError):
        orbit.call("usr_1", Tone(), token="t", client_id="pk_test", base_url="http://127.0.0.1:9", ice_servers=[{"urls": "http://x"}])


async def test_answer_with_no_call_raises_a_typed_no_call_error():
    async with orbit_bed() as bed:
        bob = await bed.participant("bob")
        started = time.monotonic()
        with pytest.raises(NoCallError) as caught:
            async with orbit.answer(Tone(), ring_timeout=0.5, **bob.kwargs):
                pass
    assert caught.value.outcome == "no_call" and isinstance(caught.value, CallNotConnectedError)
    assert isinstance(caught.value, TimeoutError)  # what answer() raised before still catches it
    assert time.monotonic() - started < 5


async def test_orbit_call_with_ice_servers_uses_them_instead_of_the_servers_turn_credentials(monkeypatch):
    asked = []
    original = UserCalls.get_turn_credentials

    async def counting(self):
        asked.append(1)
        return await original(self)

    monkeypatch.setattr(UserCalls, "get_turn_credentials", counting)
    async with orbit_bed(ring_timeout=5) as bed:
        alice, bob = await bed.participant("alice"), await bed.participant("bob")
        answering = asyncio.create_task(orbit.answer(Tone(880), **bob.kwargs).__aenter__())
        async with orbit.call(bob.user_id, Tone(440), ice_servers=[], **alice.kwargs) as caller:
            callee = await answering
            try:
                frames = []
                async with asyncio.timeout(5):
                    async for frame in caller.audio_frames(sample_rate=48000, channels=1):
                        frames.append(frame.data[0])
                        if len(frames) >= 50:
                            break
                assert abs(dominant_frequency(np.concatenate(frames), 48000) - 880) < 5
            finally:
                await callee.close()
    assert len(asked) == 1  # the callee's peer only: the caller's came from ice_servers=


def test_cli_answer_with_no_call_says_so_and_exits_1(capsys, monkeypatch):
    for name in [k for k in os.environ if k.startswith("ORBIT_")]:
        monkeypatch.delenv(name)
    status = main(["orbit", "answer", "--no-demo", "--ring-timeout", "1", "--json"])
    out, err = capsys.readouterr()
    assert status == 1, err
    assert json.loads(out)["end_reason"] == "no call came within 1 s"
    assert "No call came within 1 s" in err and "unexpected" not in err


# --- 4. media sources ----------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda: Tone("x"), lambda: Tone(float("nan")), lambda: Tone(-5), lambda: Tone(30000), lambda: Tone(True),
    lambda: Tone(440, amplitude=2), lambda: Tone(440, sample_rate=0),
    lambda: AudioSource(sample_rate=0), lambda: AudioSource(sample_rate=44100.5), lambda: AudioSource(channels=3),
    lambda: AudioSource(queue_seconds=-1), lambda: AudioSource(queue_seconds=float("inf")),
], ids=["tone-text", "tone-nan", "tone-negative", "tone-above-nyquist", "tone-bool", "tone-loud", "tone-rate-0",
        "source-rate-0", "source-rate-float", "source-3-channels", "source-queue-negative", "source-queue-inf"])
def test_media_sources_refuse_bad_arguments_at_construction(make):
    with pytest.raises(ConfigurationError):
        make()


@pytest.mark.parametrize("pcm, rate, channels, message", [
    (np.zeros(960, np.int16), 0, None, "sample_rate must be"),
    (np.zeros(960, np.int16), -1, None, "sample_rate must be"),
    (np.zeros(960, np.int32), 48000, None, "int16, or float"),
    (np.zeros((3, 960), np.int16), 48000, None, "1 or 2 channels; got shape"),
    (np.zeros((5, 5), np.int16), 48000, None, "got shape"),
    (np.zeros((2, 2, 960), np.int16), 48000, None, "got shape"),
    (np.zeros(7, np.int16), 48000, 2, "multiple of 2"),
    (np.zeros((2, 960), np.int16), 48000, 3, "channels must be 1 or 2"),
    ("loud", 48000, None, "int16, or float"),
])
async def test_capture_refuses_what_it_cannot_send_with_a_clear_message(pcm, rate, channels, message):
    source = AudioSource()
    with pytest.raises(ConfigurationError, match=message):
        await source.capture(pcm, rate, channels)
    assert source.queued_seconds == 0


def _tone(hz: float, rate: int, n: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * hz * np.arange(n) / rate)).astype(np.float32)


@pytest.mark.parametrize("shape", ["1-D int16", "(1, n) int16", "(n, 1) float", "(2, n) int16", "(n, 2) float"])
async def test_capture_accepts_the_documented_shapes_and_sends_the_tone(shape):
    rate, n = 16000, 16000
    mono = _tone(1000, rate, n)
    pcm = {"1-D int16": (mono * 32767).astype(np.int16), "(1, n) int16": (mono[None, :] * 32767).astype(np.int16),
           "(n, 1) float": mono[:, None], "(2, n) int16": (np.stack([mono, mono]) * 32767).astype(np.int16),
           "(n, 2) float": np.stack([mono, mono], axis=1)}[shape]
    source = AudioSource(queue_seconds=2)
    await source.capture(pcm, rate)
    assert 0.95 < source.queued_seconds <= 1.0
    sent = np.concatenate([(await source.recv()).to_ndarray().reshape(-1) for _ in range(40)])  # 0.8 s at 48 kHz
    assert abs(dominant_frequency(sent[4800:], 48000) - 1000) < 10
    source.stop()


# --- 5. REST transport ---------------------------------------------------------------


@pytest.fixture
def lying_server():
    """Answers every request with a huge Content-Length and two bytes, then holds the connection."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held = []

    async def serve():
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        while True:
            conn, _ = await loop.sock_accept(listener)
            held.append(conn)
            await loop.sock_recv(conn, 65536)
            await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                          b"Content-Length: 999999999999\r\n\r\n{}")

    yield listener, serve
    for conn in held:
        conn.close()
    listener.close()


async def test_declared_body_over_the_cap_is_refused_at_once_not_after_the_timeout(lying_server):
    listener, serve = lying_server
    server = asyncio.create_task(serve())
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    try:
        async with OrgaClient("orga_key", "a@b.example", url) as client:
            started = time.monotonic()
            with pytest.raises(OrgaAIServerError, match=r"declares 999999999999\)"):
                await client.fetch_ephemeral_token()
            took = time.monotonic() - started
    finally:
        server.cancel()
    print(f"\nrefused a 999999999999-byte Content-Length after {took * 1000:.0f} ms (timeout 10 s)")
    assert took < 2


@pytest.mark.parametrize("token", ["abc\ndef", "abc\rX-Evil: 1", "tok\x00en", "tökén"])
async def test_credential_that_is_not_header_safe_is_a_configuration_error_before_sending(token):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        async with OrbitUser(f"http://127.0.0.1:{listener.getsockname()[1]}", token, "pk_test") as user:
            with pytest.raises(ConfigurationError, match="printable ASCII") as caught:
                await user.calls.get_turn_credentials()
        assert token not in str(caught.value)  # a secret is never shown
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing was sent: not even a connection


# --- 7. the summary's counters -------------------------------------------------------


def test_call_summary_counts_packets_up_to_hang_up_not_the_last_periodic_report():
    result = subprocess.run([*PEERBOT, "call", "--duration", "1.5", "--json"], capture_output=True, text=True,
                            timeout=60, env=ENV)
    assert result.returncode == 0, result.stderr
    s = json.loads(result.stdout)
    print(f"\nsent {s['packets_sent']}, received {s['packets_received']} packets, {s['audio_frames_received']} frames")
    # 1.5 s is 75 frames of 20 ms; a report a second old would show about 50.
    assert s["packets_sent"] >= 70 and s["packets_received"] >= 70
    assert abs(s["packets_received"] - s["audio_frames_received"]) <= 3
