"""Media modes for the load tests, importable by a worker process (``tests/`` is on its path)."""

from __future__ import annotations

import os
from typing import Any


class DyingMedia:
    """A media mode whose worker process dies at its first participant, as a crash would."""

    name = "dying"

    def __init__(self, config: Any) -> None:
        pass

    def sources(self) -> tuple[Any, Any]:
        os._exit(3)

    def session_options(self) -> dict[str, Any]:
        return {}

    async def receive(self, session: Any, first_audio: Any) -> None:
        pass
