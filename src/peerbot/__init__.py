"""peerbot: a headless realtime participant in WebRTC calls.

``peerbot.orga.connect(...)`` joins an Orga AI realtime session; ``peerbot.media`` has the
sources (microphone, file, app-pushed, synthetic) and sinks (speaker, recorder).
"""

from . import errors, media, orga
from .errors import PeerbotError

__all__ = ["PeerbotError", "errors", "media", "orga"]
__version__ = "0.1.0"
