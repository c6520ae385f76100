"""An Orbit call on the engine: ``peerbot.orbit.call(...)`` places one, ``peerbot.orbit.answer(...)``
takes one. Signalling goes through the participant's REST client and event WebSocket; media
through one ``Peer``. The two meet only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ..errors import CallNotConnectedError, OrbitServerError, PeerbotError
from ..session import PeerSession
from . import routes
from .client import OrbitUser
from .events import OrbitEvent

log = logging.getLogger(__name__)

CallType = Literal["voice", "video"]
_SETUP_SIGNALS = (routes.CALL_ACCEPTED, routes.CALL_REJECTED, routes.CALL_OFFER, routes.CALL_ANSWER)


class OrbitCall(PeerSession):
    """A live Orbit call. ``type="voice"`` is audio sendrecv; ``"video"`` adds video sendrecv.

    Received media, stats, recording, ``closed()`` and ``state`` are those of every session.
    Either side hanging up ends the other's call with a reason (``SessionEndedError`` in the
    iterators). With ``metrics_interval`` the call's quality is submitted every N seconds.
    """

    def __init__(
        self,
        source: Any = None,
        video: Any = None,
        *,
        user: OrbitUser,
        callee_id: str | None = None,
        call_id: str | None = None,
        type: CallType = "voice",
        on_token_expired: Callable[[], Awaitable[str]] | None = None,
        ring_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        metrics_interval: float | None = None,
        **options: Any,
    ) -> None:
        self._connect_timeout = connect_timeout
        super().__init__(source, video, **options)
        if type not in routes.CALL_TYPES:
            raise PeerbotError(f"call type must be one of {routes.CALL_TYPES}, got {type!r}")
        self._user = user
        self.callee_id = callee_id
        self.caller_id: str | None = None  # known once a call is answered
        self.call_id = call_id
        self.type: CallType = type
        self.role = "caller" if callee_id else "callee"
        self._ring_timeout = ring_timeout
        self._metrics_interval = metrics_interval
        self._events = user.events(on_token_expired)
        self._signals: dict[str, asyncio.Future[OrbitEvent]] = {}
        self._candidates: list[OrbitEvent] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self.ended_by_remote: str | None = None
        self.metrics_submitted = 0
        self._teardown: asyncio.Task[None] | None = None
        self._torn_down = asyncio.Event()

    # --- set-up -----------------------------------------------------------------------

    async def start(self) -> None:
        """Ring (or wait for a ring), negotiate, and wait until media can flow."""
        try:
            await self._events.connect()
            if self.role == "caller":
                await self._place()
            else:
                await self._take()
            await self._require_peer().wait_connected(self._connect_timeout)
            self._start_recording(with_video=self.type == "video")
            self._tasks.append(asyncio.create_task(self._hang_up_when_media_ends()))
            if self._metrics_interval:
                self._tasks.append(asyncio.create_task(self._submit_metrics()))
        except BaseException as exc:
            await self._finish(f"set-up failed: {exc}", error=True, tell_server=True)
            raise

    async def _place(self) -> None:
        call = await self._user.calls.initiate(self.callee_id, self.type)
        self.call_id = call.id
        self._watch()
        try:
            signal = await asyncio.wait_for(self._signal(routes.CALL_ACCEPTED), self._ring_timeout)
        except asyncio.TimeoutError:
            raise CallNotConnectedError("no_answer", f"{self.callee_id} did not answer within {self._ring_timeout:g} s") from None
        log.debug("call %s accepted: %s", call.id, signal.type)
        peer = await self._make_peer()
        peer.add_transceiver("audio", self._audio_track, "sendrecv")
        if self.type == "video":
            peer.add_transceiver("video", self._video_track, "sendrecv")
        await self._user.calls.submit_offer(call.id, await peer.create_offer())
        await self._trickle_local_candidates()
        answer = await asyncio.wait_for(self._signal(routes.CALL_ANSWER), self._connect_timeout)
        await peer.accept_answer(answer.data["sdp"])

    async def _take(self) -> None:
        if self.call_id is None:
            incoming = await self._events.wait_for(routes.CALL_INCOMING, timeout=self._ring_timeout)
            self.call_id = incoming.call_id
            self.type = incoming.data.get("type", "voice")
        self._watch()
        call = await self._user.calls.accept(self.call_id)
        self.type, self.caller_id = call.type, call.caller_id
        offer = await asyncio.wait_for(self._signal(routes.CALL_OFFER), self._connect_timeout)
        peer = await self._make_peer()
        answer = await peer.accept_offer(offer.data["sdp"], audio=self._audio_track,
                                         video=self._video_track if self.type == "video" else None)
        await self._user.calls.submit_answer(self.call_id, answer)
        await self._trickle_local_candidates()

    async def _make_peer(self):
        credentials = await self._user.calls.get_turn_credentials()
        peer = self._new_peer(credentials.ice_servers)
        for event in self._candidates:
            await self._add_candidate(event)
        return peer

    async def _trickle_local_candidates(self) -> None:
        # aiortc gathers before the description goes out (they are in the SDP too); sending them
        # as well lets a trickling far side that ignores SDP candidates connect.
        for candidate in self._require_peer().local_candidates():
            await self._user.calls.add_ice_candidate(self.call_id, candidate)

    # --- the call's events ------------------------------------------------------------

    def _watch(self) -> None:
        self._tasks.append(asyncio.create_task(self._dispatch(), name=f"orbit-call-{self.call_id}"))

    def _signal(self, kind: str) -> asyncio.Future[OrbitEvent]:
        return self._signals.setdefault(kind, asyncio.get_running_loop().create_future())

    async def _dispatch(self) -> None:
        try:
            async for event in self._events:
                if event.call_id != self.call_id:
                    continue
                if event.type == routes.CALL_ICE_CANDIDATE:
                    self._candidates.append(event)
                    if self.peer is not None:
                        await self._add_candidate(event)
                elif event.type == routes.CALL_ENDED:
                    await self._on_remote_end(event.data.get("reason") or "hangup")
                    return
                elif event.type == routes.CALL_REJECTED:
                    self._fail_setup(CallNotConnectedError("rejected", f"{self.callee_id} rejected the call"))
                elif event.type in _SETUP_SIGNALS:
                    future = self._signal(event.type)
                    if not future.done():
                        future.set_result(event)
        except OrbitServerError as exc:
            self._fail_setup(exc)
            await self._finish(f"the event connection failed: {exc}", error=True, tell_server=False)

    async def _add_candidate(self, event: OrbitEvent) -> None:
        data = event.data
        await self._require_peer().add_remote_candidate(data.get("candidate") or "", data.get("sdpMid"),
                                                        data.get("sdpMLineIndex"))

    def _fail_setup(self, exc: BaseException) -> None:
        for kind in _SETUP_SIGNALS:
            future = self._signal(kind)
            if not future.done():
                future.set_exception(exc)
                future.exception()  # retrieved: nobody may be waiting for this one

    async def _on_remote_end(self, reason: str) -> None:
        self.ended_by_remote = reason
        message = {"missed": "nobody answered", "cancelled": "the caller cancelled"}.get(reason, "the other party hung up")
        self._fail_setup(CallNotConnectedError(reason if reason != "hangup" else "ended", message))
        if self.peer is not None:
            await self._finish(f"{message} ({reason})", error=True, tell_server=False)

    async def _hang_up_when_media_ends(self) -> None:
        reason = await self._require_peer().closed()
        if self._require_peer().error and self.ended_by_remote is None:
            await self._finish(reason, error=True, tell_server=True)

    async def _submit_metrics(self) -> None:
        while True:
            await asyncio.sleep(self._metrics_interval)
            stats = self.stats()
            with contextlib.suppress(OrbitServerError):
                await self._user.calls.submit_metrics(
                    self.call_id, bitrate=stats.bitrate_in_kbps + stats.bitrate_out_kbps,
                    packet_loss=stats.loss_percent, jitter=stats.jitter_ms, rtt=stats.rtt_ms or 0.0)
                self.metrics_submitted += 1

    # --- hang-up ----------------------------------------------------------------------

    async def close(self) -> None:
        """Hang up: tell the server (the other party gets ``call:ended``), close media and sockets."""
        await self._finish("hung up", error=False, tell_server=True)

    async def closed(self) -> str:
        """Wait until the call has ended and everything is released; return why it ended."""
        reason = await super().closed()
        await self._torn_down.wait()
        return reason

    async def _finish(self, reason: str, *, error: bool, tell_server: bool) -> None:
        # One teardown, in its own task: the event task that may start it is among those it
        # cancels, and every later caller (close(), closed()) waits for the same one.
        if self._teardown is None:
            self._teardown = asyncio.create_task(self._tear_down(reason, error, tell_server))
        await asyncio.shield(self._teardown)

    async def _tear_down(self, reason: str, error: bool, tell_server: bool) -> None:
        try:
            if self.peer is not None and not error:
                self.peer.expect_close(reason)  # the far side closing after our hang-up is no failure
            if tell_server and self.call_id and self.ended_by_remote is None:
                with contextlib.suppress(OrbitServerError):  # already ended on the server: nothing to undo
                    await self._user.calls.end(self.call_id)
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await self._end(reason, error=error)
            await self._events.aclose()
            await self._user.aclose()
        finally:
            self._torn_down.set()

def call(
    callee_id: str,
    source: Any = None,
    video: Any = None,
    *,
    token: str,
    client_id: str | None = None,
    base_url: str | None = None,
    type: CallType = "voice",
    **options: Any,
) -> OrbitCall:
    """Place a call to ``callee_id`` as the user of ``token``: ``async with peerbot.orbit.call(...) as c``.

    Raises ``CallNotConnectedError`` when it is rejected or not answered within ``ring_timeout``.
    ``options``: ``on_token_expired``, ``ring_timeout``, ``connect_timeout``, ``metrics_interval``,
    ``record``, and the engine's ``relay_only``, ``codecs``, ``gather_timeout``, ``liveness_timeout``.
    """
    user = OrbitUser(base_url, token, client_id)
    return OrbitCall(source, video, user=user, callee_id=callee_id, type=type, **options)


def answer(
    source: Any = None,
    video: Any = None,
    *,
    token: str,
    client_id: str | None = None,
    base_url: str | None = None,
    call_id: str | None = None,
    **options: Any,
) -> OrbitCall:
    """Answer the next incoming call (or ``call_id``): ``async with peerbot.orbit.answer(...) as c``.

    Waits up to ``ring_timeout`` for ``call:incoming``; the call's own type decides video.
    """
    user = OrbitUser(base_url, token, client_id)
    return OrbitCall(source, video, user=user, call_id=call_id, **options)
