"""Shared fixtures: the embedded Orga-compatible server, started in-process per test; and the
markers of tests that need a real outside program (Chromium, coturn, PulseAudio, Node.js)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # media_checks, audio_device

from peerbot.local.orga_server import LocalOrgaServer  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
USER_EMAIL = "tester@peerbot.example"


@pytest.fixture
async def orga_server():
    async with LocalOrgaServer(echo_delay=0.1) as server:
        yield server


@pytest.fixture
def orga_kwargs(orga_server):
    """What ``peerbot.orga.connect`` needs to reach the embedded server."""
    return {"api_key": orga_server.api_key, "base_url": orga_server.base_url, "user_email": USER_EMAIL}


# A test needs an outside program when it, a fixture it uses, or a helper of its module reaches
# one of these test-bed modules; the node_sdk fixture is the only way to Node.js.
_MARKER_OF_MODULE = {"browser": "chromium", "turn_server": "turn", "audio_device": "pulseaudio"}
_MARKER_OF_FIXTURE = {"node_sdk": "node"}


def is_rerun(request: pytest.FixtureRequest) -> bool:
    """Whether this is ``make test`` running a failed test again (pytest-rerunfailures): a fixture
    that measures once for many tests measures afresh for it, or the rerun would re-read the very
    figures that failed."""
    return getattr(request.node, "execution_count", 1) > 1


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is None:
            continue
        fixtures = getattr(item, "_fixtureinfo", None)
        names = fixtures.names_closure if fixtures is not None else []
        functions = [function]
        for name in names:
            functions += [d.func for d in (fixtures.name2fixturedefs.get(name) or ())]
        needed = {_MARKER_OF_FIXTURE[n] for n in names if n in _MARKER_OF_FIXTURE}
        needed |= {_MARKER_OF_MODULE[m] for m in _modules_reached(functions) if m in _MARKER_OF_MODULE}
        for marker in sorted(needed):
            item.add_marker(marker)
        if config.pluginmanager.hasplugin("xdist"):
            # In parallel (make test: -n 2 --dist loadgroup): a file's tests on one worker, so its
            # module fixtures run once; and one PulseAudio daemon, so its tests one after another.
            item.add_marker(pytest.mark.xdist_group("pulseaudio" if "pulseaudio" in needed else item.nodeid.split("::")[0]))


def _modules_reached(functions: list) -> set[str]:
    """The modules of the globals these functions name, following functions of the tests' own modules."""
    reached: set[str] = set()
    seen: set[int] = set()
    todo = [f for f in functions if isinstance(f, types.FunctionType)]
    while todo:
        function = todo.pop()
        if id(function) in seen:
            continue
        seen.add(id(function))
        for name in _names(function.__code__):
            value = function.__globals__.get(name)
            module = getattr(value, "__module__", None)
            if module is None:
                continue
            reached.add(module)
            if isinstance(value, types.FunctionType) and module == function.__module__:
                todo.append(value)
    return reached


def _names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _names(const)
