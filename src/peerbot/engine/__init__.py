"""The engine: one WebRTC ``Peer`` over aiortc, knowing nothing of signalling.

Importing it checks the installed aiortc/aioice against the pinned versions and keeps their
DEBUG logs free of ICE passwords and TURN credentials (see ``_aiortc``).
"""

from . import _aiortc  # noqa: F401  (the version check and the log filter run on import)
from ._aiortc import ParkedTrack

__all__ = ["ParkedTrack"]
