"""The reflecting far side: what a caller sends comes straight back, the way an SFU forwards.

A density test must measure the participants, not the server. The echo assistant decodes,
resamples, delays and re-encodes every caller's audio (two codecs and several tasks per call);
a reflecting call (``LocalOrgaServer(reflect=True)``, ``peerbot serve --reflect``) counts each
RTP packet as it arrives (no decoder) and sends its Opus payload back at once on its own
stream (``engine.Peer(reflect=True)``): a few microseconds per packet, one synchronous call.
The caller hears its own audio after one round trip, unchanged.
"""

from __future__ import annotations

import asyncio

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack


class ParkedAudioTrack(MediaStreamTrack):
    """The audio track of a reflecting call: it only gives the sender its place in the SDP; the
    reflector sends the packets, so ``recv()`` waits until the track stops."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._stopped: asyncio.Future[None] | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState == "live":
            self._stopped = self._stopped or asyncio.get_running_loop().create_future()
            await self._stopped
        raise MediaStreamError

    def stop(self) -> None:
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)
        super().stop()
