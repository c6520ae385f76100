"""peerbot: a headless realtime participant in WebRTC calls."""

from .errors import PeerbotError

__all__ = ["PeerbotError"]
__version__ = "0.1.0"
