"""The received audio's reorder buffer: each RTP packet out as soon as it is next, a lost one skipped.

aiortc's ``JitterBuffer`` (capacity 16, used for audio too) holds every packet behind a missing
sequence number until the buffer spans 16 numbers (320 ms of 20 ms Opus), then discards the hole
*and the complete packet before it*, and releases one frame per packet received from then on: the
first loss of a call adds ~300 ms of delay for good, and each later loss, the buffer being full,
discards a good packet besides (simulated, 5 % random loss: 7 % of the received packets never
reach the decoder, and a fixed-delay player conceals 12–17 % of the call). An Opus packet is a
whole frame, so no waiting is needed to know it is complete: this buffer passes each packet on at
once when it follows the last one released, holds at most ``window − 1`` packets behind a hole
(reordering), and then skips the hole; a packet older than the last released (reordered beyond the
window, or a duplicate) is dropped. A lost packet costs its own 20 ms, nothing more.
"""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

_SEQ_MOD = 1 << 16
_MAX_MISORDER = 100  # a step back up to this is a late packet; more, a new numbering
_MAX_DROPOUT = 3000  # RFC 3550 A.1: a forward jump beyond this is a new numbering too


class AudioJitterBuffer(JitterBuffer):
    """A drop-in for aiortc's audio ``JitterBuffer`` (its ``add()``), see the module docstring."""

    def __init__(self, window: int = 1) -> None:
        super().__init__(capacity=16)
        self.window = max(1, window)
        self._held: dict[int, RtpPacket] = {}
        self._next: int | None = None  # the sequence number that plays next
        self.packets_dropped = 0  # older than what was released

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        seq = packet.sequence_number
        if self._next is not None:
            ahead = (seq - self._next) % _SEQ_MOD
            if ahead >= _SEQ_MOD - _MAX_MISORDER:
                self.packets_dropped += 1  # too late: its time was given to the packets after it
                return False, None
            if ahead > _MAX_DROPOUT:  # the sender restarted its numbering
                self._held.clear()
                self._next = None
        if self._next is None:
            self._next = seq
        self._held[seq] = packet
        return False, self._release()

    def _release(self) -> JitterFrame | None:
        expected = self._next
        assert expected is not None
        packet = self._held.pop(expected, None)
        if packet is None:
            if len(self._held) < self.window:
                return None  # wait a little for the missing one
            oldest = min(self._held, key=lambda s: (s - expected) % _SEQ_MOD)
            packet = self._held.pop(oldest)  # the hole is lost
        self._next = (packet.sequence_number + 1) % _SEQ_MOD
        return JitterFrame(data=getattr(packet, "_data", packet.payload), timestamp=packet.timestamp)
