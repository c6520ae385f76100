"""A data channel as peerbot hands it out: an async stream of messages plus ``send``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiortc import RTCDataChannel

from ..errors import PeerConnectionError
from ..media.streams import StreamHub, Subscription

Message = str | bytes


class DataChannel:
    """Wraps an aiortc channel; messages that arrive before anyone listens are kept (up to 1000).

    With ``on_message`` every message goes there instead (the owner keeps them), and
    ``messages()`` stays empty.
    """

    def __init__(self, channel: RTCDataChannel, on_message: Callable[[Message], None] | None = None) -> None:
        self.label: str = channel.label
        self._channel = channel
        self._open = asyncio.Event()
        self.hub: StreamHub[Message] = StreamHub(history=1000)
        if channel.readyState == "open":
            self._open.set()
        channel.on("open", self._open.set)
        channel.on("message", on_message or self.hub.publish)
        channel.on("close", self._on_close)

    def _on_close(self) -> None:
        self.end()

    def end(self, error: str | None = None) -> None:
        """End ``messages()`` (with ``error`` as the reason when abnormal) and wake waiting senders."""
        self.hub.end(error)
        self._open.set()  # anyone waiting to send will see the channel closed

    @property
    def ready_state(self) -> str:
        """``connecting``, ``open``, ``closing`` or ``closed``."""
        return str(self._channel.readyState)

    def messages(self, maxsize: int = 1000) -> Subscription[Message]:
        """Every message since the channel opened, then new ones as they come."""
        return self.hub.subscribe(maxsize)

    async def send(self, message: Message, timeout: float = 10.0) -> None:
        """Send once the channel is open; raise ``PeerConnectionError`` if it never opens."""
        # Only when not yet open: Python 3.11's wait_for swallows a cancellation that arrives as the
        # wait completes, and a loop sending on an open channel then never stops.
        if not self._open.is_set():
            try:
                await asyncio.wait_for(self._open.wait(), timeout)
            except asyncio.TimeoutError:
                raise PeerConnectionError(f"data channel {self.label!r} did not open within {timeout:g} s") from None
        if self._channel.readyState != "open":
            raise PeerConnectionError(f"data channel {self.label!r} is {self._channel.readyState}")
        self._channel.send(message)
