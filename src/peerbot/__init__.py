"""peerbot: a headless realtime participant in WebRTC calls.

``peerbot.orga.connect(...)`` joins an Orga AI realtime session, ``peerbot.orbit.call(...)`` and
``peerbot.orbit.answer(...)`` place and take Orbit calls; ``peerbot.media`` has the
sources (microphone, file, app-pushed, synthetic) and sinks (speaker, recorder);
``peerbot.local`` has the local Orga- and Orbit-compatible servers (imported on first use).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import errors, media, orbit, orga
from .errors import PeerbotError

__all__ = ["PeerbotError", "errors", "local", "media", "orbit", "orga"]

try:
    __version__ = version("peerbot")
except PackageNotFoundError:  # run from a source tree that was not installed
    __version__ = "0.0.0"


def __getattr__(name: str) -> Any:
    # The local servers pull in aiohttp and the echo assistant: load them only when asked for.
    if name == "local":
        return importlib.import_module(".local", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
