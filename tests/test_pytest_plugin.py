"""peerbot's pytest plugin (``peerbot.pytest_plugin``, entry point ``pytest11``), run the way a
user runs it: inner test suites under pytest's ``pytester``, against the embedded voice agent
over real loopback WebRTC; and the assertion helpers' messages on measured results."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from peerbot.conversation import ConversationResult, TurnResult
from peerbot.errors import ConfigurationError
from peerbot.testing import assert_call_quality, assert_conversation_passed, assert_thresholds, report_name

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _embedded_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """The inner suites choose their target from ORGA_API_KEY: none here, unless a test sets it."""
    for name in ("ORGA_API_KEY", "ORGA_USER_EMAIL", "ORGA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _strict_mode(pytester: pytest.Pytester) -> None:
    """pytest-asyncio's default mode: async tests and fixtures must say they are asyncio's."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")


def test_a_suite_that_uses_none_of_the_fixtures_runs_as_before_and_gets_no_reports(pytester: pytest.Pytester):
    _strict_mode(pytester)
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def orga_server():  # the name our own tests/conftest.py uses: peerbot's fixtures do not take it
            return "the suite's own"
    """)
    pytester.makepyfile(test_plain="""
        import pytest

        def test_sync(request, orga_server):
            assert orga_server == "the suite's own"
            assert not [name for name in request.fixturenames if name.startswith("peerbot")]

        @pytest.mark.asyncio
        async def test_async(request):
            assert not [name for name in request.fixturenames if name.startswith("peerbot")]
    """)
    with_plugin = pytester.runpytest("-p", "no:cacheprovider")
    without = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:peerbot")
    with_plugin.assert_outcomes(passed=2)
    without.assert_outcomes(passed=2)
    assert _output(with_plugin) == _output(without)  # but for the list of plugins in the header
    assert sorted(p.name for p in pytester.path.iterdir()) == ["conftest.py", "test_plain.py", "tox.ini"]
    # Installed, the plugin only offers: a --help group and the fixtures, for a test that asks.
    helped = pytester.runpytest("--help")
    helped.stdout.fnmatch_lines(["peerbot (voice-agent and call tests*", "*--peerbot-reports=DIR*",
                                 "*--peerbot-target=*"])
    listed = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    listed.stdout.fnmatch_lines(["peerbot_orga_server -- *", "peerbot_report -- *", "peerbot_session -- *",
                                 "peerbot_conversation -- *"])


def _output(result: pytest.RunResult) -> list[str]:
    return [re.sub(r"in [0-9.]+s", "in …s", line) for line in result.outlines if not line.startswith("plugins:")]


def test_sessions_a_failing_test_opened_are_closed_at_teardown_and_its_call_reports_are_written(
        pytester: pytest.Pytester):
    # pytest-asyncio's strict mode (its default), the reports' directory from the ini file.
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\npeerbot_reports = build/peerbot\n")
    pytester.makepyfile(test_calls="""
        import pytest
        import peerbot

        OPENED = []

        @pytest.mark.asyncio
        async def test_fails_with_two_sessions_open(peerbot_session):
            OPENED.append(await peerbot_session(source=peerbot.media.Tone(440)))
            OPENED.append(await peerbot_session())
            async for frame in OPENED[0].audio_frames():
                break  # media flows on the first
            assert [s.state for s in OPENED] == ["connected", "connected"]
            raise RuntimeError("the test breaks with its sessions open")

        def test_then_both_are_closed():
            assert [s.state for s in OPENED] == ["closed", "closed"]
            assert [s.end_reason for s in OPENED] == ["closed by the application"] * 2
    """)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the test breaks with its sessions open*",
                                 "peerbot: 4 report files in */build/peerbot"])
    reports = pytester.path / "build" / "peerbot"  # the ini's directory, relative to the ini file
    stem = "test_calls.test_fails_with_two_sessions_open"
    assert sorted(p.name for p in reports.iterdir()) == [f"{stem}.call{n}.{s}" for n in (1, 2) for s in ("html", "json")]
    first = json.loads((reports / f"{stem}.call1.json").read_text())
    assert first["meta"]["outcome"] == "failed" and first["meta"]["command"] == "pytest"
    assert first["meta"]["test"] == "test_calls.py::test_fails_with_two_sessions_open"
    assert first["meta"]["end_reason"] == "closed by the application"
    assert first["history"] and first["summary"]["bitrate_out_kbps"] > 0  # our tone was sent


def test_a_real_conversation_over_its_threshold_fails_saying_measured_against_required_and_reports_where_told(
        pytester: pytest.Pytester):
    pytester.makeini("""
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
        peerbot_reports = not-here
    """)
    pytester.makepyfile(test_threshold="""
        from peerbot.conversation import Script, Turn
        from peerbot.testing import assert_thresholds

        async def test_answers_within_100ms(peerbot_conversation, peerbot_report):
            result = await peerbot_conversation(Script([Turn(say="Yes.", answer_silence=0.5)], name="quick"))
            assert result.turns[0].v2v_ms is not None and not result.failed
            assert_thresholds(result, "v2v_p95<=100ms", "turns_failed==0", report=peerbot_report)
    """)
    _stand_in_for_pytest_html(pytester)
    result = pytester.runpytest("-p", "no:cacheprovider", "--peerbot-reports", "out/reports", "--junitxml=results.xml")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: 1 of 2 thresholds failed for conversation 'quick' (1 turn):",
                                 "*  FAIL v2v_p95 = * ms, required <= 100 ms: * ms over",
                                 "*  pass turns_failed = 0, required == 0"])
    assert not (pytester.path / "not-here").exists()  # the command line wins over the ini
    stem = pytester.path / "out" / "reports" / "test_threshold.test_answers_within_100ms"
    record = json.loads(Path(f"{stem}.json").read_text())
    turn, = record["conversations"][0]["turns"]
    v2v = record["thresholds"][0]
    assert v2v["measured"] == pytest.approx(turn["v2v_ms"]) and v2v["measured"] > 100 and not v2v["passed"]
    assert record["meta"]["outcome"] == "failed" and record["conversations"][0]["call_quality"]["mos"] is not None
    page = Path(f"{stem}.html").read_text()
    assert "Thresholds: 1 of 2 failed" in page and "v2v_p95&lt;=100ms" in page and "ms over" in page
    assert "Yes." in page and "<svg" in page  # the turn, and the timeline of who spoke when
    # Named in the JUnit XML, and linked (with its figures) from pytest-html's row of the test.
    properties = {p.get("name"): p.get("value") for p in ET.parse(pytester.path / "results.xml").iter("property")}
    assert properties["peerbot_report"] == f"{stem}.html"
    extras = json.loads((pytester.path / "extras.json").read_text())["test_threshold.py::test_answers_within_100ms"]
    assert [e["content"] for e in extras if e["format_type"] == "url"] == [
        Path(f"{stem}.json").as_uri(), Path(f"{stem}.html").as_uri()]
    figures, = [e["content"] for e in extras if e["format_type"] == "html"]
    assert "conversation &#x27;quick&#x27;: 1 turns, 0 failed, voice to voice p50" in figures
    assert "thresholds: 1 of 2 failed" in figures


def _stand_in_for_pytest_html(pytester: pytest.Pytester) -> None:
    """pytest-html 4 is not installed here: its ``extras`` module (the same functions and dicts)
    and a plugin registered under its name, ``html``, keeping the ``report.extras`` it would render."""
    pytester.makepyfile(**{"pytest_html/__init__": "", "pytest_html/extras": """
        def extra(content, format_type, name=None, mime_type=None, extension=None):
            return {"name": name, "format_type": format_type, "content": content, "mime_type": mime_type,
                    "extension": extension}

        def html(content):
            return extra(content, "html")

        def url(content, name="URL"):
            return extra(content, "url", name)
    """})
    pytester.makeconftest("""
        import json

        class StandIn:
            def __init__(self):
                self.extras = {}

            def pytest_runtest_logreport(self, report):
                self.extras.setdefault(report.nodeid, []).extend(getattr(report, "extras", []))

            def pytest_sessionfinish(self):
                with open("extras.json", "w") as file:
                    json.dump(self.extras, file)

        def pytest_configure(config):
            config.pluginmanager.register(StandIn(), "html")
    """)
    pytester.syspathinsert()


def test_the_target_is_the_embedded_agent_without_orga_api_key_orga_with_it_and_local_for_tests_that_ask(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    _strict_mode(pytester)
    pytester.makepyfile(test_targets="""
        import pytest

        @pytest.mark.asyncio
        async def test_plain(peerbot_orga_target):
            where = "embedded" if peerbot_orga_target.server is not None else "Orga"
            print(f"TARGET {where} with", ", ".join(sorted(peerbot_orga_target.connect_kwargs)) or "nothing")

        @pytest.mark.asyncio
        @pytest.mark.peerbot_agent(think_time=0.2, barge_in=False)
        async def test_marked(peerbot_orga_target, peerbot_orga_server):
            assert peerbot_orga_target.server is peerbot_orga_server
            assert (peerbot_orga_server.assistant, peerbot_orga_server.think_time) == ("agent", 0.2)
            assert peerbot_orga_server.barge_in is False and peerbot_orga_server.endpointing == 0.5
            assert peerbot_orga_target.connect_kwargs["base_url"] == peerbot_orga_server.base_url
    """)

    def plain(*options: str) -> pytest.RunResult:
        return pytester.runpytest("-p", "no:cacheprovider", "-s", "-k", "plain", *options)

    plain().stdout.fnmatch_lines(["*TARGET embedded with api_key, base_url, user_email"])
    monkeypatch.setenv("ORGA_API_KEY", "sk_test_not_used_by_any_request")
    plain().stdout.fnmatch_lines(["*TARGET Orga with nothing"])  # peerbot.orga.connect reads ORGA_*
    plain("--peerbot-target=local").stdout.fnmatch_lines(["*TARGET embedded*"])
    pytester.runpytest("-p", "no:cacheprovider", "-k", "marked").assert_outcomes(passed=1)  # local all the same
    monkeypatch.delenv("ORGA_API_KEY")
    forced = plain("--peerbot-target=orga")
    forced.assert_outcomes(errors=1)
    forced.stdout.fnmatch_lines(["*--peerbot-target=orga needs ORGA_API_KEY*"])


# --- the assertion helpers, on measured results ---------------------------------------------

def _conversation(*v2v_ms: float, failures: tuple[str, ...] = ()) -> ConversationResult:
    turns = [TurnResult(number=i, kind="say", label=f"turn {i}", started_t=i * 3.0, ended_t=i * 3.0 + 2.5, v2v_ms=v,
                        failures=failures if i == len(v2v_ms) else ()) for i, v in enumerate(v2v_ms, 1)]
    return ConversationResult("smoke", turns=turns)


def test_a_failed_threshold_lists_every_threshold_measured_against_required():
    result = _conversation(1200.0, 1700.0)  # p95 1675 ms
    with pytest.raises(AssertionError) as failed:
        assert_thresholds(result, "v2v_p95<=1500ms", "turns_failed==0", "v2v_p50<1.5s")
    assert str(failed.value) == ("1 of 3 thresholds failed for conversation 'smoke' (2 turns):\n"
                                 "  FAIL v2v_p95 = 1675 ms, required <= 1500 ms: 175 ms over\n"
                                 "  pass turns_failed = 0, required == 0\n"
                                 "  pass v2v_p50 = 1450 ms, required < 1500 ms")
    assert_thresholds(result, "v2v_max<=1700ms")  # met: no error
    with pytest.raises(AssertionError, match=r"FAIL barge_in_stop_p95 not measured, required <= 500 ms"):
        assert_thresholds(result, "barge_in_stop_p95<=500ms")


def test_call_quality_thresholds_read_a_history_and_say_what_was_not_measured():
    history = [{"t": 1.0, "loss_percent": 0.5, "jitter_ms": 4.0}, {"t": 2.0, "loss_percent": 2.5, "jitter_ms": 6.0}]
    with pytest.raises(AssertionError) as failed:
        assert_call_quality(history, "loss<=1%", "jitter_p95<=30ms", "mos>=4")
    assert str(failed.value).splitlines() == ["2 of 3 thresholds failed for the call:",
                                              "  FAIL loss = 2.5%, required <= 1%: 1.5% over",
                                              "  pass jitter_p95 = 5.9 ms, required <= 30 ms",
                                              "  FAIL mos not measured, required >= 4"]


def test_a_threshold_that_does_not_parse_is_a_mistake_in_the_test_not_a_failure():
    with pytest.raises(ConfigurationError, match="unknown metric 'latncy'"):
        assert_call_quality([], "latncy<=10ms")
    with pytest.raises(ConfigurationError, match="unknown metric 'loss'"):
        assert_thresholds(_conversation(1000.0), "loss<=1%")  # a call figure, not a conversation's
    with pytest.raises(ConfigurationError, match="no threshold given"):
        assert_thresholds(_conversation(1000.0))


def test_a_failed_conversation_says_which_turn_failed_and_why():
    with pytest.raises(AssertionError) as failed:
        assert_conversation_passed(_conversation(1000.0, 900.0, failures=("the far side did not stop",)))
    assert str(failed.value) == ("conversation 'smoke' failed: 1 of 2 turns failed\n"
                                 "  turn 2 ('turn 2'): the far side did not stop")
    assert_conversation_passed(_conversation(1000.0))


@pytest.mark.parametrize(("nodeid", "name"), [
    ("tests/test_agent.py::test_latency", "tests.test_agent.test_latency"),
    ("test_agent.py::TestAgent::test_latency[fast-1.5]", "test_agent.TestAgent.test_latency-fast-1.5"),
])
def test_report_files_are_named_after_the_test(nodeid: str, name: str):
    assert report_name(nodeid) == name
    odd = [report_name(f"a/b.py::test_x[{p}]") for p in ("ä", "ö", "a b", "a/b")]
    assert all(re.fullmatch(r"a\.b\.test_x-[a-z_]*-?[0-9a-f]{8}", n) for n in odd) and len(set(odd)) == 4, odd
    long = report_name("tests/" + "x" * 300 + ".py::test_end")
    assert len(long) <= 120 and long.endswith("test_end") and long != report_name("tests/" + "y" * 300 + ".py::test_end")
