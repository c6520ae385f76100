"""Peerbot participants as Locust users, for load tests beyond one machine.

``from peerbot.locust import PeerbotUser`` in a locustfile, then ``locust -f locustfile.py --master``
and ``locust -f locustfile.py --worker`` on as many machines as needed. Each Locust worker
process starts one clean peerbot host process (an asyncio loop holding all that worker's
sessions, untouched by Locust's gevent patching) and talks to it over a socket, cooperatively.
See ``PeerbotUser`` for the settings and ``peerbot.locust._user`` for what Locust's tables show.

Importing this package is cheap and imports neither locust nor gevent; the names below load them
on first use (``import peerbot`` never imports this package).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._bridge import HostError, RemoteError
    from ._user import MEDIA, WEBRTC, CallResult, HeldSession, PeerbotUser

__all__ = ["MEDIA", "WEBRTC", "CallResult", "HeldSession", "HostError", "PeerbotUser", "RemoteError"]

_WHERE = {"MEDIA": "_user", "WEBRTC": "_user", "CallResult": "_user", "HeldSession": "_user",
          "PeerbotUser": "_user", "HostError": "_bridge", "RemoteError": "_bridge"}


def __getattr__(name: str) -> Any:
    # Lazily, because the host process (``python -m peerbot.locust._host``) imports this package
    # first and must stay free of gevent's monkey-patching, which importing locust applies.
    if name in _WHERE:
        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
