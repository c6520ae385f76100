"""Closing an aiortc ``RTCPeerConnection`` that a bad offer may have left half-built.

``RTCPeerConnection.close()`` stops its parts in order and gives up at the first that raises
(an offer with an empty ``a=mid:`` leaves the SCTP transport without a DTLS transport), leaving
the ICE sockets open; a second ``close()`` then waits forever. So it is called once, with a time
limit, and whatever it did not reach is stopped one public transport object at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)

STEP_TIMEOUT = 2.0


async def _attempt(what: str, step: Callable[[], Awaitable[object]]) -> bool:
    try:
        await asyncio.wait_for(step(), STEP_TIMEOUT)
    except Exception as exc:  # whatever aiortc raises here, closing goes on
        log.debug("closing the peer connection: %s failed: %r", what, exc)
        return False
    return True


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    """Close ``pc`` and every transport it holds; never raises (failures are logged at debug)."""
    if await _attempt("close()", pc.close):
        return
    for transceiver in pc.getTransceivers():
        await _attempt("a transceiver", transceiver.stop)
    dtls_transports = [t.receiver.transport for t in pc.getTransceivers()]
    if pc.sctp is not None:
        await _attempt("the SCTP transport", pc.sctp.stop)
        dtls_transports.append(pc.sctp.transport)
    for dtls in dtls_transports:
        if dtls is None:
            continue
        await _attempt("a DTLS transport", dtls.stop)
        await _attempt("an ICE transport", dtls.transport.stop)
    pc.remove_all_listeners()
