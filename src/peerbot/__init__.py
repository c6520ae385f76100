"""peerbot: a headless realtime participant in WebRTC calls.

``peerbot.orga.connect(...)`` joins an Orga AI realtime session, ``peerbot.orbit.call(...)`` and
``peerbot.orbit.answer(...)`` place and take Orbit calls; ``peerbot.media`` has the
sources (microphone, file, app-pushed, synthetic) and sinks (speaker, recorder).
"""

from . import errors, media, orbit, orga
from .errors import PeerbotError

__all__ = ["PeerbotError", "errors", "media", "orbit", "orga"]
__version__ = "0.1.0"
