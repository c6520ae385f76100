"""Per-user delivery of Orbit events to live WebSockets, with a short replay log.

Every event gets the next sequence number of its user and is kept for ``buffer_ttl`` seconds.
A connection that opens with ``since=<seq>`` is sent every kept event after it (a reconnect,
whatever happened to the old socket); one without ``since`` is sent the kept events that no
connection received (the user was offline), at most ``max_kept`` per user (the oldest go first).
One lock per user keeps ``seq`` order on the wire.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from aiohttp import web


@dataclass
class _Kept:
    seq: int
    at: float
    frame: str
    delivered: bool = False


class EventHub:
    """Each user's live event WebSockets and kept events."""

    def __init__(self, buffer_ttl: float, max_kept: int = 1000) -> None:
        self._ttl = buffer_ttl
        self._max_kept = max_kept
        self._sockets: defaultdict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._kept: defaultdict[str, deque[_Kept]] = defaultdict(deque)
        self._seq: defaultdict[str, int] = defaultdict(int)
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def publish(self, user_id: str, type: str, data: dict[str, Any]) -> bool:
        """Send an event to every connection of ``user_id``; keep it. True if some connection got it."""
        async with self._locks[user_id]:
            self._seq[user_id] += 1
            frame = json.dumps({"type": type, "data": data, "seq": self._seq[user_id]})
            kept = _Kept(self._seq[user_id], time.monotonic(), frame)
            self._kept_for(user_id).append(kept)
            for ws in list(self._sockets[user_id]):
                if await _send(ws, frame):
                    kept.delivered = True
                else:
                    self._sockets[user_id].discard(ws)
            return kept.delivered

    async def attach(self, user_id: str, ws: web.WebSocketResponse, since: int | None) -> bool:
        """Send the backlog, then deliver live events to ``ws``. False if ``ws`` failed meanwhile."""
        async with self._locks[user_id]:
            for kept in self._kept_for(user_id):
                if (kept.seq > since) if since is not None else not kept.delivered:
                    if not await _send(ws, kept.frame):
                        return False
                    kept.delivered = True
            self._sockets[user_id].add(ws)
            return True

    async def detach(self, user_id: str, ws: web.WebSocketResponse) -> None:
        """Stop delivering to ``ws``; events from now on are kept for the next connection."""
        async with self._locks[user_id]:
            self._sockets[user_id].discard(ws)

    def sockets(self, user_id: str | None = None) -> list[tuple[str, web.WebSocketResponse]]:
        """Live connections, of one user or of everyone, as ``(user_id, ws)`` pairs."""
        users = [user_id] if user_id is not None else list(self._sockets)
        return [(user, ws) for user in users for ws in list(self._sockets.get(user, ()))]

    def _kept_for(self, user_id: str) -> deque[_Kept]:
        kept = self._kept[user_id]
        horizon = time.monotonic() - self._ttl
        while kept and (kept[0].at < horizon or len(kept) > self._max_kept):
            kept.popleft()
        return kept


async def _send(ws: web.WebSocketResponse, frame: str) -> bool:
    if ws.closed:
        return False
    try:
        await ws.send_str(frame)
    except (ConnectionError, RuntimeError):
        return False
    return True
