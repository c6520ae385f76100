"""The datagram path an ``Impairment`` describes, spliced into aioice's sockets.

A ``Link`` is one direction: each datagram offered to it is dropped, passed on at once, or held
and released later from the event loop (one timer for the earliest held datagram). Sending is
impaired by wrapping a ``StunProtocol``'s transport (``sendto``), receiving by replacing its
``datagram_received``, so ICE, DTLS and SRTP go through the same link. All of a peer's sockets
share its two links, as they share one access network.

Time on a link is the call's: an ``ImpairmentClock`` starts at the first attach and every later
attach with the same clock (a session's rebuilt connections) continues it, so outage windows and
Gilbert–Elliott slots are placed on one timeline for the whole call.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import math
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from aioice import Connection
from aioice.ice import StunProtocol
from aiortc import RTCPeerConnection

from . import _aiortc

if TYPE_CHECKING:
    from .impairment import Impairment

LOGGED_DROPS = 10_000  # indices of randomly lost datagrams kept, for replaying a run
BURST_SLOT = 0.020  # seconds: the Gilbert–Elliott chain takes one step per slot, not per datagram


class ImpairmentClock:
    """The call's timeline for an impairment: ``epoch`` (event-loop time) is set by the first
    attach and kept by every later one, so a reconnection continues the call's outage windows
    instead of starting them again. A session holds one for all the connections it builds."""

    def __init__(self) -> None:
        self._epoch: float | None = None

    @property
    def epoch(self) -> float | None:
        """When the timeline started (``loop.time()``), None before the first attach."""
        return self._epoch

    def start(self, now: float) -> float:
        """The epoch, set to ``now`` if this is the first attach."""
        if self._epoch is None:
            self._epoch = now
        return self._epoch

    def __repr__(self) -> str:
        return f"ImpairmentClock(epoch={self._epoch})"


@dataclass
class LinkCounters:
    """What one direction's link did, in datagrams (``bytes_forwarded`` in bytes)."""

    datagrams: int = 0            # offered to the link
    forwarded: int = 0            # passed on (at once or after a delay)
    bytes_forwarded: int = 0
    lost: int = 0                 # random loss
    burst_lost: int = 0           # Gilbert–Elliott loss
    outage_dropped: int = 0       # inside an outage window
    queue_dropped: int = 0        # tail-dropped by the rate limit's full queue
    delayed: int = 0              # held for some time before release
    reordered: int = 0            # released before a datagram offered earlier (reorder=True only)
    lost_indices: list[int] = field(default_factory=list, repr=False)  # of the first LOGGED_DROPS random/burst losses

    @property
    def dropped(self) -> int:
        """Every datagram the link did not pass on."""
        return self.lost + self.burst_lost + self.outage_dropped + self.queue_dropped


class Link:
    """One direction of an impaired path; ``offer`` each datagram with the call that passes it on."""

    def __init__(self, impairment: Impairment, seed: int, loop: asyncio.AbstractEventLoop, epoch: float) -> None:
        self.impairment = impairment
        self.counters = LinkCounters()
        self._random = random.Random(seed)
        self._loop = loop
        self._epoch = epoch                     # the call's t=0 (outage windows, burst slots)
        self._bad = False                       # Gilbert–Elliott state, good at attach
        self._slot = self._slot_of(loop.time())  # the slot that state belongs to
        self._link_free = 0.0                   # when the rate-limited link finishes its backlog
        self._last_release = 0.0                # latest release time given so far
        self._held: list[tuple[float, int, Callable[[], None]]] = []  # (release, index, deliver)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._rate = impairment.rate_kbps * 125 if impairment.rate_kbps else None  # bytes per second
        self._queue_limit = impairment.queue_limit_seconds

    def offer(self, size: int, deliver: Callable[[], None]) -> None:
        """Drop, pass on or hold one datagram of ``size`` bytes."""
        i, now, counters = self.counters.datagrams, self._loop.time(), self.counters
        counters.datagrams += 1
        imp = self.impairment
        # Fixed draws per datagram whatever becomes of it, so a seed replays the same losses.
        draw = self._random.random
        lost = imp.loss > 0 and draw() * 100 < imp.loss
        burst_lost = False
        if imp.burst is not None:
            # The chain moves with time: n slots since the last datagram, in one draw (closed form).
            step, loss = draw(), draw() * 100
            slot = self._slot_of(now)
            self._bad = step < imp.burst.bad_probability(self._bad, slot - self._slot)
            self._slot = slot
            burst_lost = self._bad and loss < imp.burst.bad_loss
        extra = draw() * imp.jitter if imp.jitter else 0.0
        if self._in_outage(now):
            counters.outage_dropped += 1
            return
        if lost or burst_lost:
            if lost:
                counters.lost += 1
            else:
                counters.burst_lost += 1
            if len(counters.lost_indices) < LOGGED_DROPS:
                counters.lost_indices.append(i)
            return
        departure = now
        if self._rate is not None:
            start = max(now, self._link_free)
            if self._queue_limit is not None and start - now > self._queue_limit:
                counters.queue_dropped += 1
                return
            departure = self._link_free = start + size / self._rate
        release = departure + imp.delay + extra
        if release < self._last_release:
            if imp.reorder:
                counters.reordered += 1
            else:
                release = self._last_release  # never before the one offered before it
        self._last_release = max(self._last_release, release)
        counters.forwarded += 1
        counters.bytes_forwarded += size
        if release <= now and not self._held:
            deliver()
            return
        counters.delayed += 1
        heapq.heappush(self._held, (release, i, deliver))
        if self._timer is None or release < self._timer_at:
            self._arm(release)

    def _slot_of(self, now: float) -> int:
        return math.floor((now - self._epoch) / BURST_SLOT)

    def _in_outage(self, now: float) -> bool:
        since = now - self._epoch
        return any(o.start <= since < o.start + o.duration for o in self.impairment.outages)

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._release), when

    def _release(self) -> None:
        # call_at may fire up to one clock resolution early: what was due at the timer is due now.
        due = max(self._loop.time(), self._timer_at)
        self._timer = None
        while self._held and self._held[0][0] <= due:
            heapq.heappop(self._held)[2]()
        if self._held:
            self._arm(self._held[0][0])

    def close(self) -> None:
        """Forget held datagrams (in flight when the link went away)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._held.clear()


class _ImpairedTransport:
    """A protocol's transport whose ``sendto`` goes through a link; everything else is the real one."""

    def __init__(self, inner: Any, link: Link) -> None:
        self.inner = inner
        self.link: Link | None = link

    def sendto(self, data: bytes, addr: Any = None) -> None:
        if self.link is None:  # detached while a later layer still wraps us
            self.inner.sendto(data, addr)
            return
        inner = self.inner
        self.link.offer(len(data), lambda: None if _closing(inner) else inner.sendto(data, addr))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _closing(transport: Any) -> bool:
    is_closing = getattr(transport, "is_closing", None)  # TURN's transport has none
    return bool(is_closing()) if is_closing is not None else False


class _Tap:
    """One protocol's splice: what it had before, restored on ``remove``."""

    def __init__(self, protocol: StunProtocol, send: Link | None, receive: Link | None) -> None:
        self.protocol = protocol
        self.transport: _ImpairedTransport | None = None
        self.receive_link = receive
        self._previous_receive: Callable[[bytes | str, tuple[Any, ...]], None] | None = None
        if send is not None:
            self.transport = _ImpairedTransport(protocol.transport, send)
            protocol.transport = self.transport  # type: ignore[assignment]
        if receive is not None:
            self._previous_receive = vars(protocol).get("datagram_received")
            self._receiving = protocol.datagram_received
            protocol.datagram_received = self._received  # type: ignore[method-assign]

    def _received(self, data: bytes | str, addr: tuple[Any, ...]) -> None:
        if self.receive_link is None:
            self._receiving(data, addr)
            return
        transport, receiving = self.protocol.transport, self._receiving
        self.receive_link.offer(len(data), lambda: None if _closing(transport) else receiving(data, addr))

    def remove(self) -> None:
        protocol = self.protocol
        if self.transport is not None:
            if protocol.transport is cast(Any, self.transport):
                protocol.transport = self.transport.inner
            self.transport.link = None  # still wrapped by a later layer: pass through
        if self.receive_link is not None:
            if vars(protocol).get("datagram_received") == self._received:
                if self._previous_receive is None:
                    del protocol.datagram_received  # the class's method again
                else:
                    protocol.datagram_received = self._previous_receive  # type: ignore[method-assign, assignment]
            self.receive_link = None


class ImpairedNetwork:
    """An impairment attached to a peer's sockets: ``send``/``receive`` counters (None for a
    direction left alone), the ``seed`` in force (to replay a run) and ``detach()``."""

    def __init__(self, pc: RTCPeerConnection, send: Impairment | None, receive: Impairment | None,
                 description: str, clock: ImpairmentClock | None = None) -> None:
        loop = asyncio.get_running_loop()
        self.clock = clock if clock is not None else ImpairmentClock()
        epoch = self.clock.start(loop.time())
        seed = next((i.seed for i in (send, receive) if i is not None and i.seed is not None), None)
        self.seed: int = secrets.randbits(32) if seed is None else seed
        self.description = description
        self._send = self._link(send, 0, loop, epoch)
        self._receive = self._link(receive, 1, loop, epoch)
        self._taps: dict[int, _Tap] = {}
        self._detached = False
        if self._send is None and self._receive is None:
            return
        for connection in _aiortc.ice_connections(pc):
            self._tap(connection)
            _aiortc.after_gathering(connection, functools.partial(self._tap, connection))

    def _link(self, impairment: Impairment | None, direction: int, loop: asyncio.AbstractEventLoop,
              epoch: float) -> Link | None:
        if impairment is None:
            return None
        seed = self.seed if impairment.seed is None else impairment.seed
        # Each direction its own stream, so the two do not lose the same indices mirrored.
        return Link(impairment, seed * 2 + direction, loop, epoch)

    @property
    def send(self) -> LinkCounters | None:
        return self._send.counters if self._send is not None else None

    @property
    def receive(self) -> LinkCounters | None:
        return self._receive.counters if self._receive is not None else None

    def _tap(self, connection: Connection) -> None:
        if self._detached:
            return
        for protocol in _aiortc.stun_protocols(connection):
            if id(protocol) not in self._taps:
                self._taps[id(protocol)] = _Tap(protocol, self._send, self._receive)

    def detach(self) -> None:
        """Give the sockets their own path back; held datagrams are dropped (idempotent)."""
        self._detached = True
        for tap in self._taps.values():
            tap.remove()
        self._taps.clear()
        for link in (self._send, self._receive):
            if link is not None:
                link.close()

    def __repr__(self) -> str:
        return f"ImpairedNetwork({self.description}, seed={self.seed})"


def attach_links(pc: RTCPeerConnection, send: Impairment | None, receive: Impairment | None,
                 description: str, clock: ImpairmentClock | None = None) -> ImpairedNetwork:
    """``ImpairedNetwork`` over ``pc``'s ICE connections (see ``impairment.attach``)."""
    return ImpairedNetwork(pc, send, receive, description, clock)
