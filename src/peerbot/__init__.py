"""peerbot: a headless realtime participant in WebRTC calls.

``peerbot.orga.connect(...)`` joins an Orga AI realtime session, ``peerbot.orbit.call(...)`` and
``peerbot.orbit.answer(...)`` place and take Orbit calls; ``peerbot.media`` has the
sources (microphone, file, app-pushed, synthetic) and sinks (speaker, recorder);
``peerbot.local`` has the local Orga- and Orbit-compatible servers. ``session.stats()`` returns a
``peerbot.StatsReport`` (W3C stats per stream and a summary; README "Call quality figures").

PYTEST_DONT_REWRITE: the package holds a pytest plugin, and a test file may import peerbot before
pytest starts (``pytest.main`` from a script); peerbot asserts nothing pytest should rewrite.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .errors import PeerbotError

if TYPE_CHECKING:
    from . import conversation, errors, local, media, orbit, orga, quality
    from .engine.stats import (CandidatePairStats, InboundRtpStats, OutboundRtpStats, RemoteInboundRtpStats,
                               StatsReport, StatsSummary)

__all__ = ["CandidatePairStats", "InboundRtpStats", "OutboundRtpStats", "PeerbotError", "RemoteInboundRtpStats",
           "StatsReport", "StatsSummary", "conversation", "errors", "local", "media", "orbit", "orga", "quality"]

try:
    __version__ = version("peerbot")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0.0.0"

_SUBPACKAGES = {"conversation", "errors", "local", "media", "orbit", "orga", "quality"}
_STATS = {"CandidatePairStats", "InboundRtpStats", "OutboundRtpStats", "RemoteInboundRtpStats", "StatsReport",
          "StatsSummary"}


def __getattr__(name: str) -> Any:
    # Subpackages load on first use: numpy, PyAV and aiortc take ~1 s to import, and the CLI
    # must be able to answer Ctrl-C (or --version) before they are in.
    if name in _SUBPACKAGES:
        return importlib.import_module(f".{name}", __name__)
    if name in _STATS:  # the engine (aiortc) loads with them
        return getattr(importlib.import_module(".engine.stats", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    # The lazy names too, so that dir(peerbot) and completion show them before first use.
    return sorted({*globals(), *__all__})
