"""An Orbit call on the engine: ``peerbot.orbit.call(...)`` places one, ``peerbot.orbit.answer(...)``
takes one. Signalling goes through the participant's REST client and event WebSocket; media
through one ``Peer``. The two meet only here.

aiortc has no ICE restart, so a lost connection is rebuilt with a fresh peer over the same call:
the caller posts a new offer, the callee answers it (a ``call:offer`` on an active call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from ..engine.options import positive_seconds
from ..engine.peer import Peer
from ..engine.ice import IceServerEntry, check_ice_servers
from ..errors import CallNotConnectedError, ConfigurationError, NoCallError, OrbitError, PeerConnectionError
from ..media.source import MediaSource
from ..session import PeerSession
from . import routes
from .client import OrbitUser
from .events import OrbitEvent

log = logging.getLogger(__name__)

CallType = Literal["voice", "video"]
_SETUP_SIGNALS = (routes.CALL_ACCEPTED, routes.CALL_REJECTED, routes.CALL_OFFER, routes.CALL_ANSWER)
# A far side's DTLS close usually comes with its call:ended; wait this long for it before
# taking the close for a lost connection.
_HANGUP_GRACE = 2.0
_INVALID_STATE = 409


class OrbitCall(PeerSession):
    """A live Orbit call. ``type="voice"`` is audio sendrecv; ``"video"`` adds video sendrecv.

    Received media, stats, recording, ``closed()`` and ``state`` are those of every session.
    Either side hanging up ends the other's call normally (the iterators stop, ``state`` is
    ``closed``); a lost connection is renegotiated over the same call unless ``reconnect=False``,
    and ends the call with ``SessionEndedError`` in the iterators when that fails. With
    ``metrics_interval`` the call's quality is submitted every N seconds.
    """

    def __init__(
        self,
        source: MediaSource | None = None,
        video: MediaSource | None = None,
        *,
        user: OrbitUser,
        callee_id: str | None = None,
        call_id: str | None = None,
        type: CallType = "voice",
        on_token_expired: Callable[[], Awaitable[str]] | None = None,
        ring_timeout: float | None = 30.0,
        connect_timeout: float = 10.0,
        metrics_interval: float | None = None,
        ice_servers: list[IceServerEntry] | None = None,
        **options: Any,
    ) -> None:
        if callee_id is not None and (not isinstance(callee_id, str) or not callee_id.strip()):
            raise ConfigurationError(f"callee_id must be a non-empty user id, got {callee_id!r}")
        if type not in routes.CALL_TYPES:
            raise ConfigurationError(f"call type must be one of {routes.CALL_TYPES}, got {type!r}")
        # None waits for as long as it takes: an answering bot waits for the next call with no limit.
        self._ring_timeout = positive_seconds("ring_timeout", ring_timeout) if ring_timeout is not None else None
        self._connect_timeout = positive_seconds("connect_timeout", connect_timeout)
        self._metrics_interval = (positive_seconds("metrics_interval", metrics_interval)
                                  if metrics_interval is not None else None)
        # Instead of the server's TURN credentials (which are then not asked for), as orga.connect does.
        self._ice_override = check_ice_servers(ice_servers) if ice_servers is not None else None
        super().__init__(source, video, **options)
        self._user = user
        self.callee_id = callee_id
        self.caller_id: str | None = None  # known once a call is answered
        self.call_id = call_id
        self.type: CallType = type
        self.role: Literal["caller", "callee"] = "caller" if callee_id is not None else "callee"
        self._events = user.events(on_token_expired)
        self._signals: dict[str, asyncio.Future[OrbitEvent]] = {}
        self._candidates: list[OrbitEvent] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._established = False
        self._signalling_lost = False
        self._remote_ended = asyncio.Event()
        self.ended_by_remote: str | None = None
        self.metrics_submitted = 0

    # --- set-up -----------------------------------------------------------------------

    async def _connect(self) -> None:
        """Ring (or wait for a ring), negotiate, and wait until media can flow."""
        await self._events.connect()
        if self.role == "caller":
            await self._place()
        else:
            await self._take()
        try:
            await self._require_peer().wait_connected(self._connect_timeout)
        except PeerConnectionError:
            if self.ended_by_remote is not None:  # the other party hung up while ICE ran
                raise CallNotConnectedError("ended", "the other party hung up during set-up") from None
            raise
        self._established = True
        if self._metrics_interval:
            self._tasks.append(asyncio.create_task(self._submit_metrics(self._metrics_interval)))

    async def _reconnect_once(self) -> None:
        if self.role == "caller":
            await self._offer()
        else:
            await self._answer()
        await self._require_peer().wait_connected(self._connect_timeout)

    async def _place(self) -> None:
        assert self.callee_id is not None
        call = await self._user.calls.initiate(self.callee_id, self.type)
        self.call_id = call.id
        self._watch()
        try:
            signal = await asyncio.wait_for(self._signal(routes.CALL_ACCEPTED), self._ring_timeout)
        except asyncio.TimeoutError:
            raise CallNotConnectedError("no_answer", f"{self.callee_id} did not answer within {self._ring_timeout:g} s") from None
        log.debug("call %s accepted: %s", call.id, signal.type)
        await self._offer()

    async def _offer(self) -> None:
        # The caller's round: a fresh peer, its offer, the callee's answer.
        assert self.call_id is not None
        self._signals.pop(routes.CALL_ANSWER, None)  # an answer to an earlier offer
        self._candidates.clear()
        peer = await self._make_peer()
        peer.add_transceiver("audio", self._audio_track, "sendrecv")
        if self.type == "video":
            peer.add_transceiver("video", self._video_track, "sendrecv")
        await self._user.calls.submit_offer(self.call_id, await peer.create_offer())
        await self._trickle_local_candidates()
        answer = await self._take_signal(routes.CALL_ANSWER, "answer")
        await peer.accept_answer(answer.data.get("sdp") or "")

    async def _take(self) -> None:
        if self.call_id is None:
            await self._accept_next_ringing_call()
        else:
            call = await self._user.calls.accept(self.call_id)
            self.type, self.caller_id = call.type, call.caller_id
        self._watch()
        await self._answer()

    async def _accept_next_ringing_call(self) -> None:
        # The event socket first replays what this user missed: a call:incoming of a call that
        # has since ended or been missed is skipped (accepting it is refused with 409).
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._ring_timeout if self._ring_timeout is not None else None
        while True:
            remaining = deadline - loop.time() if deadline is not None else None
            if remaining is not None and remaining <= 0:
                raise NoCallError(f"no call came within {self._ring_timeout:g} s")
            try:
                incoming = await self._events.wait_for(routes.CALL_INCOMING, timeout=remaining)
            except TimeoutError:
                raise NoCallError(f"no call came within {self._ring_timeout:g} s") from None
            if incoming.call_id is None or incoming.data.get("status", "ringing") != "ringing":
                continue
            try:
                call = await self._user.calls.accept(incoming.call_id)
            except OrbitError as exc:
                if exc.status != _INVALID_STATE:
                    raise
                log.info("skipping call %s: %s", incoming.call_id, exc.message)
                continue
            self.call_id, self.type, self.caller_id = call.id, call.type, call.caller_id
            return

    async def _answer(self) -> None:
        # The callee's round: the caller's (new) offer, a fresh peer, our answer.
        assert self.call_id is not None
        offer = await self._take_signal(routes.CALL_OFFER, "offer")
        peer = await self._make_peer()
        answer = await peer.accept_offer(offer.data.get("sdp") or "", audio=self._audio_track,
                                         video=self._video_track if self.type == "video" else None)
        await self._user.calls.submit_answer(self.call_id, answer)
        await self._trickle_local_candidates()

    async def _make_peer(self) -> Peer:
        if self._ice_override is not None:
            peer = self._new_peer(self._ice_override)
        else:
            peer = self._new_peer((await self._user.calls.get_turn_credentials()).ice_servers)
        for event in self._candidates:
            await self._add_candidate(event)
        return peer

    async def _trickle_local_candidates(self) -> None:
        # aiortc gathers before the description goes out (they are in the SDP too); sending them
        # as well lets a trickling far side that ignores SDP candidates connect.
        assert self.call_id is not None
        for candidate in self._require_peer().local_candidates():
            await self._user.calls.add_ice_candidate(self.call_id, candidate)

    # --- the call's events ------------------------------------------------------------

    def _watch(self) -> None:
        self._tasks.append(asyncio.create_task(self._dispatch(), name=f"orbit-call-{self.call_id}"))

    def _signal(self, kind: str) -> asyncio.Future[OrbitEvent]:
        return self._signals.setdefault(kind, asyncio.get_running_loop().create_future())

    async def _take_signal(self, kind: str, what: str) -> OrbitEvent:
        """The next ``kind`` signal (consumed: a later round waits for a new one)."""
        future = self._signal(kind)
        try:
            return await asyncio.wait_for(asyncio.shield(future), self._connect_timeout)
        except asyncio.TimeoutError:
            raise PeerConnectionError(f"the other party sent no {what} within {self._connect_timeout:g} s") from None
        finally:
            if future.done() and self._signals.get(kind) is future:
                del self._signals[kind]

    def _deliver(self, event: OrbitEvent) -> None:
        future = self._signals.get(event.type)
        if future is None or future.done():  # the newest signal replaces one nobody took
            future = self._signals[event.type] = asyncio.get_running_loop().create_future()
        future.set_result(event)

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
                    await self._on_remote_end(event.data.get("reason") or routes.END_HANGUP)
                    return
                elif event.type == routes.CALL_REJECTED:
                    self._fail_setup(CallNotConnectedError("rejected", f"{self.callee_id} rejected the call"))
                elif event.type == routes.CALL_OFFER and self.role == "callee":
                    await self._on_offer(event)
                elif event.type in _SETUP_SIGNALS:
                    self._deliver(event)
        except OrbitError as exc:
            self._fail_setup(exc)
            self._signalling_lost = True
            await self._shutdown(f"the event connection failed: {exc}", error=True)

    async def _on_offer(self, event: OrbitEvent) -> None:
        self._candidates.clear()  # the caller's candidates for this offer follow it
        self._deliver(event)
        peer = self.peer
        if self._established and peer is not None and not peer.ended:
            # The caller lost the connection before we noticed: make way for the new one.
            await peer.close("the caller renegotiated the connection", error=True)

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
        self._remote_ended.set()
        message = {"missed": "nobody answered", "cancelled": "the caller cancelled"}.get(reason, "the other party hung up")
        self._fail_setup(CallNotConnectedError(reason if reason != routes.END_HANGUP else "ended", message))
        if self.peer is not None:  # before that, _fail_setup has told the waiting set-up
            await self._shutdown(f"{message} ({reason})", error=reason != routes.END_HANGUP)

    async def _is_outage(self, peer: Peer) -> bool:
        if peer.error is not None:
            return True
        try:
            await asyncio.wait_for(self._remote_ended.wait(), _HANGUP_GRACE)
        except asyncio.TimeoutError:
            return True  # media closed but the call goes on: the connection was lost
        return False

    async def _submit_metrics(self, interval: float) -> None:
        assert self.call_id is not None
        while True:
            await asyncio.sleep(interval)
            s = self.stats().summary
            if s.bitrate_in_kbps is None or s.bitrate_out_kbps is None or s.loss_percent is None or s.jitter_ms is None:
                continue  # nothing measured yet: Orbit takes numbers, and an unknown is not a 0
            with contextlib.suppress(OrbitError):
                await self._user.calls.submit_metrics(
                    self.call_id, bitrate=s.bitrate_in_kbps + s.bitrate_out_kbps, packet_loss=s.loss_percent,
                    jitter=s.jitter_ms, rtt=s.rtt_ms if s.rtt_ms is not None else 0.0)  # 0: no RTCP report yet, as before
                self.metrics_submitted += 1

    # --- hang-up ----------------------------------------------------------------------

    @property
    def _records_video(self) -> bool:
        return self.type == "video"

    async def _hang_up_signalling(self, reason: str, error: bool) -> None:
        if self.peer is not None and not error:
            self.peer.expect_close(reason)  # the far side closing after our hang-up is no failure
        if self.call_id and self.ended_by_remote is None and not self._signalling_lost:
            with contextlib.suppress(OrbitError):  # already ended on the server: nothing to undo
                await self._user.calls.end(self.call_id)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _close_signalling(self) -> None:
        await self._events.aclose()
        await self._user.aclose()


def call(
    callee_id: str,
    source: MediaSource | None = None,
    video: MediaSource | None = None,
    *,
    token: str,
    client_id: str | None = None,
    base_url: str | None = None,
    type: CallType = "voice",
    **options: Any,
) -> OrbitCall:
    """Place a call to ``callee_id`` as the user of ``token``: ``async with peerbot.orbit.call(...) as c``.

    Raises ``CallNotConnectedError`` when it is rejected or not answered within ``ring_timeout``
    (default 30 s; None rings until the callee answers or the server gives up).
    Invalid settings raise ``ConfigurationError`` here, before any request. ``options``:
    ``on_token_expired``, ``ring_timeout``, ``connect_timeout``, ``metrics_interval``, ``record``,
    ``reconnect`` (default True), ``reconnect_attempts``, ``reconnect_backoff``, ``ice_servers`` (instead
    of the server's TURN credentials), and the engine's ``relay_only``, ``codecs``, ``gather_timeout``, ``liveness_timeout``, ``turn_tls_ca``, ``impair``.
    """
    if not isinstance(callee_id, str) or not callee_id.strip():  # "" would silently become an answer
        raise ConfigurationError(f"callee_id must be a non-empty user id, got {callee_id!r}")
    user = OrbitUser(base_url, token, client_id)
    return OrbitCall(source, video, user=user, callee_id=callee_id, type=type, **options)


def answer(
    source: MediaSource | None = None,
    video: MediaSource | None = None,
    *,
    token: str,
    client_id: str | None = None,
    base_url: str | None = None,
    call_id: str | None = None,
    **options: Any,
) -> OrbitCall:
    """Answer the next live incoming call (or ``call_id``): ``async with peerbot.orbit.answer(...) as c``.

    Waits up to ``ring_timeout`` seconds (default 30; None waits with no limit) for a ringing
    ``call:incoming`` (calls that ended or were missed before are skipped; ``NoCallError``, a
    ``CallNotConnectedError`` with outcome ``no_call`` and also a ``TimeoutError``, if none comes);
    the call's own type decides video.
    """
    user = OrbitUser(base_url, token, client_id)
    return OrbitCall(source, video, user=user, call_id=call_id, **options)
