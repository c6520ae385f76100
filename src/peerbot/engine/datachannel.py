"""A data channel as peerbot hands it out: an async stream of messages plus ``send``."""

from __future__ import annotations

import asyncio

from aiortc import RTCDataChannel

from ..errors import PeerConnectionError
from ..media.streams import StreamHub, Subscription


class DataChannel:
    """Wraps an aiortc channel; messages that arrive before anyone listens are kept (up to 1000)."""

    def __init__(self, channel: RTCDataChannel) -> None:
        self.label = channel.label
        self._channel = channel
        self._open = asyncio.Event()
        self.hub: StreamHub[str | bytes] = StreamHub(history=1000)
        if channel.readyState == "open":
            self._open.set()
        channel.on("open", self._open.set)
        channel.on("message", self.hub.publish)
        channel.on("close", self._on_close)

    def _on_close(self) -> None:
        self.hub.end()
        self._open.set()  # wake anyone waiting to send: they will see the channel closed

    @property
    def ready_state(self) -> str:
        return self._channel.readyState

    def messages(self, maxsize: int = 1000) -> Subscription[str | bytes]:
        """Every message since the channel opened, then new ones as they come."""
        return self.hub.subscribe(maxsize)

    async def send(self, message: str | bytes, timeout: float = 10.0) -> None:
        """Send once the channel is open; raise ``PeerConnectionError`` if it never opens."""
        try:
            await asyncio.wait_for(self._open.wait(), timeout)
        except asyncio.TimeoutError:
            raise PeerConnectionError(f"data channel {self.label!r} did not open within {timeout:g} s") from None
        if self._channel.readyState != "open":
            raise PeerConnectionError(f"data channel {self.label!r} is {self._channel.readyState}")
        self._channel.send(message)
