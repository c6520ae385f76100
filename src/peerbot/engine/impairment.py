"""Network impairment applied where aiortc's ICE transport sends and receives datagrams.

``Blackout`` is a total outage of one peer's network path: every datagram its ICE sockets would
send or receive (host and relay alike) is dropped while it lasts, the sockets staying open, so
the far side and the peer itself see exactly what a dead link shows them.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection

from . import _aiortc
from .peer import Peer


class _Muted:
    """A datagram transport that sends nothing; everything else goes to the real one."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def sendto(self, data: bytes, addr: Any = None) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _drop(data: bytes | str, addr: tuple[Any, ...]) -> None:
    pass


class Blackout:
    """Drop all of a peer's datagrams, both ways: ``with Blackout(peer): ...`` or ``start()``/``stop()``."""

    def __init__(self, target: Peer | RTCPeerConnection) -> None:
        self._pc = target._pc if isinstance(target, Peer) else target
        self._muted: list[tuple[StunProtocol, Any]] = []

    @property
    def active(self) -> bool:
        return bool(self._muted)

    def start(self) -> None:
        """Begin the outage on every socket the peer has now (idempotent)."""
        if self._muted:
            return
        for connection in _aiortc.ice_connections(self._pc):
            for protocol in _aiortc.stun_protocols(connection):
                self._muted.append((protocol, protocol.transport))
                protocol.transport = _Muted(protocol.transport)  # type: ignore[assignment]
                protocol.datagram_received = _drop  # type: ignore[method-assign]

    def stop(self) -> None:
        """End the outage: the sockets send and receive again."""
        for protocol, transport in self._muted:
            protocol.transport = transport
            del protocol.datagram_received  # the class's method again
        self._muted.clear()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
