"""peerbot's pytest plugin, installed with peerbot (entry point ``pytest11``): opt-in fixtures
for tests of voice agents and calls. A suite that requests none of them sees nothing but a
``peerbot`` group in ``pytest --help`` and a ``peerbot_agent`` marker.

Fixtures (function-scoped; the async ones are pytest-asyncio fixtures, so they work in its
``auto`` and ``strict`` modes; in strict mode mark the tests ``@pytest.mark.asyncio``):

- ``peerbot_session``: ``await peerbot_session(source, **connect_options)`` opens a started
  ``OrgaSession`` against the target (below); every session it opened is closed at teardown,
  whether the test passed or not.
- ``peerbot_conversation``: ``await peerbot_conversation(script)`` runs a ``Script`` (or a TOML
  or JSON script file, relative to the test's file) over a session of its own and returns the
  ``ConversationResult``.
- ``peerbot_report``: the test's report (``peerbot.testing.PeerbotReport``); the conversations and
  sessions of the two factories are in it. At teardown, passed or failed, it is written in
  ``--peerbot-reports DIR`` (ini ``peerbot_reports``, default ``peerbot-reports`` next to the ini
  file): ``NAME.json`` and ``NAME.html`` for the conversations, ``NAME.call1.json``… for each session
  opened on its own (``NAME``: from the node id); linked from pytest-html when it is installed,
  and named in the JUnit XML as ``peerbot_report`` properties.
- ``peerbot_orga_target``: where sessions go: ``.connect_kwargs`` for ``peerbot.orga.connect``,
  ``.server`` (the embedded server, or None), ``.description``.
- ``peerbot_orga_server``: the embedded Orga-compatible server with its voice agent
  (``peerbot_orga_server_options``, the ``peerbot_agent(...)`` marker on top); a test that asks
  for it talks to it, whatever the target.
- ``peerbot_orbit_server``: an embedded Orbit-compatible server.

The target (``--peerbot-target``, ini ``peerbot_target``): ``auto`` (default) is Orga when
``ORGA_API_KEY`` is set (credentials from ``ORGA_*``, as ``peerbot converse``), else the embedded
server; ``local`` is always the embedded server; ``orga`` always Orga (``ORGA_API_KEY`` required).
A test that uses ``peerbot_orga_server`` or the ``peerbot_agent`` marker is always local.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .cli.orga_target import OrgaTarget
    from .local.orbit_server import LocalOrbitServer
    from .local.orga_server import LocalOrgaServer
    from .testing.factories import ConversationFactory, SessionFactory
    from .testing.report import PeerbotReport

try:
    import pytest_asyncio
except ImportError:  # the fixtures that need it say so when a test asks for one
    pytest_asyncio = None  # type: ignore[assignment]

TARGETS = ("auto", "local", "orga")
AGENT_DEFAULTS: dict[str, Any] = {"assistant": "agent", "endpointing": 0.5, "think_time": 0.7, "barge_in": True}
"""The embedded server of ``peerbot_orga_server``: the voice agent, as ``peerbot converse`` runs it."""

_REPORT = pytest.StashKey["PeerbotReport"]()
_OUTCOME = pytest.StashKey[str]()
_WRITTEN = pytest.StashKey[list[Path]]()
_LOCAL_FIXTURES = ("peerbot_orga_server",)


def _async_fixture(function: Callable[..., Any]) -> Any:
    """A pytest-asyncio fixture (both modes); without pytest-asyncio one that fails saying so."""
    if pytest_asyncio is not None:
        return pytest_asyncio.fixture(function)

    @pytest.fixture(name=function.__name__)
    def needs_pytest_asyncio() -> None:
        pytest.fail(f"{function.__name__} is an asyncio fixture: it needs pytest-asyncio"
                    " (pip install pytest-asyncio)", pytrace=False)

    needs_pytest_asyncio.__doc__ = function.__doc__
    return needs_pytest_asyncio


# --- options --------------------------------------------------------------------------------

def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("peerbot", "peerbot (voice-agent and call tests; fixtures peerbot_*)")
    group.addoption("--peerbot-reports", metavar="DIR", dest="peerbot_reports", default=None,
                    help="directory of the per-test reports (NAME.json, NAME.html) of tests using peerbot's"
                         " fixtures (default: ini peerbot_reports, else peerbot-reports)")
    group.addoption("--peerbot-target", choices=TARGETS, dest="peerbot_target", default=None,
                    help="where peerbot_session and peerbot_conversation connect: auto (Orga when ORGA_API_KEY is"
                         " set, else the embedded server; the default), local (the embedded voice agent), orga")
    parser.addini("peerbot_reports", "directory of peerbot's per-test reports, relative to the ini file",
                  default="peerbot-reports")
    parser.addini("peerbot_target", "auto, local or orga: see --peerbot-target", default="auto")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "peerbot_agent(**options): options of the embedded voice agent for this test"
                                       " (think_time, endpointing, barge_in; see LocalOrgaServer); the test runs"
                                       " against the embedded server")
    target = config.getoption("peerbot_target") or config.getini("peerbot_target")
    if target not in TARGETS:
        raise pytest.UsageError(f"peerbot_target must be one of {', '.join(TARGETS)}, got {target!r}")


def reports_directory(config: pytest.Config) -> Path:
    """Where the per-test reports go: ``--peerbot-reports`` (relative to where pytest was started),
    else the ``peerbot_reports`` ini value (relative to the ini file, or the rootdir)."""
    given = config.getoption("peerbot_reports")
    if given:
        return Path(config.invocation_params.dir, Path(given).expanduser())
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return Path(base, Path(str(config.getini("peerbot_reports"))).expanduser())


def _wants_local(request: pytest.FixtureRequest) -> bool:
    if any(name in request.fixturenames for name in _LOCAL_FIXTURES):
        return True
    if request.node.get_closest_marker("peerbot_agent") is not None:
        return True
    target = request.config.getoption("peerbot_target") or request.config.getini("peerbot_target")
    if target == "orga":
        if not os.environ.get("ORGA_API_KEY"):
            pytest.fail("--peerbot-target=orga needs ORGA_API_KEY (and ORGA_USER_EMAIL) in the environment",
                        pytrace=False)
        return False
    return target == "local" or not os.environ.get("ORGA_API_KEY")


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture
def peerbot_orga_server_options() -> dict[str, Any]:
    """Keyword arguments of the embedded ``LocalOrgaServer``, over ``AGENT_DEFAULTS`` (the voice
    agent: endpointing 0.5 s, think time 0.7 s, stops when talked over): none. Override this
    fixture to change them for a module or a directory (``{"think_time": 0.3}``); the
    ``peerbot_agent(...)`` marker changes them for one test, over both."""
    return {}


@_async_fixture
async def peerbot_orga_target(request: pytest.FixtureRequest,
                              peerbot_orga_server_options: dict[str, Any]) -> AsyncIterator[OrgaTarget]:
    """Where this test's sessions go (see the plugin's docstring): ``connect_kwargs``, ``server``
    (the embedded server when local, started for the test), ``description``."""
    from .cli.orga_target import orga_target

    local = _wants_local(request)
    options = {**AGENT_DEFAULTS, **peerbot_orga_server_options}
    marker = request.node.get_closest_marker("peerbot_agent")
    if marker is not None:
        if marker.args:
            pytest.fail("the peerbot_agent marker takes keyword arguments only,"
                        " e.g. @pytest.mark.peerbot_agent(barge_in=False)", pytrace=False)
        options.update(marker.kwargs)
    async with orga_target(local=local, **(options if local else {})) as target:
        yield target


@pytest.fixture
def peerbot_orga_server(peerbot_orga_target: OrgaTarget) -> LocalOrgaServer:
    """The embedded Orga-compatible server with its voice agent, started for this test; this
    test's ``peerbot_session`` and ``peerbot_conversation`` talk to it. ``.calls`` holds each
    call and its agent's timeline."""
    server: LocalOrgaServer | None = peerbot_orga_target.server
    if server is None:  # only when the fixture was asked for late, by getfixturevalue
        pytest.fail("peerbot_orga_server was requested after the test's target (Orga) was chosen:"
                    " request it as an argument of the test", pytrace=False)
    return server


@_async_fixture
async def peerbot_orbit_server() -> AsyncIterator[LocalOrbitServer]:
    """An embedded Orbit-compatible server (``base_url``, ``secret_key``, ``publishable_key``),
    started for this test."""
    from .local.orbit_server import LocalOrbitServer

    async with LocalOrbitServer() as server:
        yield server


@pytest.fixture
def peerbot_report(request: pytest.FixtureRequest) -> Iterator[PeerbotReport]:
    """This test's report: ``add()`` a ``ConversationResult`` or a session; ``assert_thresholds(…,
    report=peerbot_report)`` adds its checks. Written at teardown (passed or failed) in the
    reports directory, when anything is in it; ``paths`` lists the files."""
    from .testing.report import PeerbotReport, report_name

    node = request.node
    report = PeerbotReport(reports_directory(request.config), report_name(node.nodeid), test=node.nodeid)
    node.stash[_REPORT] = report
    yield report
    report.outcome = node.stash.get(_OUTCOME, "not run")
    if not report:
        return
    try:
        paths = report.write()
    except OSError as exc:
        warnings.warn(f"peerbot: the report of {node.nodeid} was not written: {exc}", stacklevel=1)
        return
    node.stash[_WRITTEN] = paths
    request.config.stash.setdefault(_WRITTEN, []).extend(paths)
    node.user_properties += [("peerbot_report", str(p)) for p in paths if p.suffix == ".html"]


@_async_fixture
async def peerbot_session(peerbot_orga_target: OrgaTarget,
                          peerbot_report: PeerbotReport) -> AsyncIterator[SessionFactory]:
    """``await peerbot_session(source, video, **options)``: a started ``OrgaSession`` against the
    target (``options`` go to ``peerbot.orga.connect``). Each one is in the report and is closed at
    teardown, whether the test passed or not."""
    from .testing.factories import SessionFactory

    peerbot_report.target = peerbot_orga_target.description
    factory = SessionFactory(peerbot_orga_target.connect_kwargs, report=peerbot_report)
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def peerbot_conversation(request: pytest.FixtureRequest, peerbot_session: SessionFactory) -> ConversationFactory:
    """``await peerbot_conversation(script, **options)``: run a ``Script`` or a script file (TOML
    or JSON, relative to the test's file) over a new session and return its ``ConversationResult``
    (also in the report). ``options`` go to ``peerbot.orga.connect``."""
    from .testing.factories import ConversationFactory

    return ConversationFactory(peerbot_session, base=Path(request.node.path).parent)


# --- reporting ------------------------------------------------------------------------------

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if _REPORT not in item.stash:
        return report
    if report.when == "call" or (report.when == "setup" and not report.passed):
        item.stash[_OUTCOME] = "error" if report.when == "setup" and report.failed else report.outcome
    if report.when == "teardown" and item.stash.get(_WRITTEN, None):
        _attach_to_pytest_html(item, report, item.stash[_WRITTEN])
    return report


def _attach_to_pytest_html(item: pytest.Item, report: Any, paths: list[Path]) -> None:
    """Links to the report files, and its figures, in pytest-html's row of the test."""
    if not item.config.pluginmanager.hasplugin("html"):
        return
    try:
        from pytest_html import extras  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    from html import escape

    html_report = item.config.getoption("htmlpath", None)
    added = []
    for path in paths:
        href = os.path.relpath(path, Path(str(html_report)).resolve().parent) if html_report else path.resolve().as_uri()
        added.append(extras.url(href, name=f"peerbot {path.name}"))
    lines = item.stash[_REPORT].summary_lines()
    if lines:
        added.append(extras.html("<div class=\"peerbot\">" + "<br>".join(escape(line) for line in lines) + "</div>"))
    report.extras = [*getattr(report, "extras", []), *added]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    written = config.stash.get(_WRITTEN, None)
    if written:
        directory = reports_directory(config)
        terminalreporter.write_line(f"peerbot: {len(written)} report files in {directory}")
