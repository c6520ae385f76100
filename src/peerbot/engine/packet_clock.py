"""Pre-encoded send without a task per participant: one clock per event loop sends every
registered stream's next packet every 20 ms.

aiortc's sender runs a task per track that awaits ``recv()``, packs, protects and sends, with
several awaits per packet. Here the streams of a process share ``SLOTS`` timers spread over the
20 ms (so packets leave in small groups, not one burst), and each tick sends one packet per
stream of its slot synchronously (``_aiortc.RtpSendContext``). Each stream has its own random
timestamp origin; its SSRC and sequence numbers are its sender's. A tick that comes late by
less than ``MAX_LATENESS`` catches up (sends the missed packets at once); later than that, the
missed packets are skipped and the timestamps jump over them, as ``media.Tone`` does.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Callable

from aiortc import clock as aiortc_clock

from ..media._paced import FRAME_SECONDS, MAX_LATENESS

SLOTS = 10


class PacketStream:
    """One sender's packets: ``next_payload()`` gives ``(payload, RTP offset in samples)``,
    ``send(payload, timestamp, ntp)`` sends one (False when it could not)."""

    __slots__ = ("next_payload", "skip", "send", "origin", "packets_sent", "send_failures")

    def __init__(self, next_payload: Callable[[], tuple[bytes, int]], skip: Callable[[int], None],
                 send: Callable[[bytes, int, int], bool]) -> None:
        self.next_payload, self.skip, self.send = next_payload, skip, send
        self.origin = random.randrange(1 << 32)
        self.packets_sent = 0
        self.send_failures = 0

    def send_next(self, ntp: int) -> None:
        payload, offset = self.next_payload()
        if self.send(payload, (self.origin + offset) & 0xFFFFFFFF, ntp):
            self.packets_sent += 1
        else:
            self.send_failures += 1


class PacketClock:
    """The clock of one event loop; ``PacketClock.of(loop)`` (the running one by default)."""

    _clocks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PacketClock] = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._slots: list[list[PacketStream]] = [[] for _ in range(SLOTS)]
        self._timers: list[asyncio.TimerHandle | None] = [None] * SLOTS
        self._start = loop.time()
        self.late_ticks = 0  # ticks that had to catch up or skip: the loop was lagging
        self.skipped_frames = 0

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop | None = None) -> PacketClock:
        loop = loop or asyncio.get_running_loop()
        clock = cls._clocks.get(loop)
        if clock is None:
            clock = cls._clocks[loop] = cls(loop)
        return clock

    def __len__(self) -> int:
        return sum(map(len, self._slots))

    def add(self, stream: PacketStream) -> None:
        """Start sending ``stream``'s packets, from the next tick of the least busy slot."""
        slot = min(range(SLOTS), key=lambda i: len(self._slots[i]))
        self._slots[slot].append(stream)
        if self._timers[slot] is None:
            tick = int((self._loop.time() - self._start) / FRAME_SECONDS) + 1
            self._schedule(slot, tick)

    def remove(self, stream: PacketStream) -> None:
        for slot, streams in enumerate(self._slots):
            if stream in streams:
                streams.remove(stream)
                if not streams and self._timers[slot] is not None:
                    self._timers[slot].cancel()  # type: ignore[union-attr]
                    self._timers[slot] = None

    def _due(self, slot: int, tick: int) -> float:
        return self._start + (tick + slot / SLOTS) * FRAME_SECONDS

    def _schedule(self, slot: int, tick: int) -> None:
        self._timers[slot] = self._loop.call_at(self._due(slot, tick), self._tick, slot, tick)

    def _tick(self, slot: int, tick: int) -> None:
        streams = self._slots[slot]
        if not streams:
            self._timers[slot] = None
            return
        late = self._loop.time() - self._due(slot, tick)
        behind = int(late / FRAME_SECONDS)
        packets = 1
        if behind:
            self.late_ticks += 1
            if late <= MAX_LATENESS:
                packets += behind  # a little late: the missed packets go now
            else:
                self.skipped_frames += behind
                for stream in streams:
                    stream.skip(behind)
            tick += behind
        ntp = aiortc_clock.current_ntp_time()
        for stream in list(streams):
            for _ in range(packets):
                stream.send_next(ntp)
        self._schedule(slot, tick + 1)
