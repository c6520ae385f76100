"""What every session (an Orga session, an Orbit call) offers on top of its signalling: received
media, stats, state, hang-up, and reconnection after an outage.

The session, not its ``Peer``, owns the received-frame streams: a reconnection replaces the peer
and the application's ``async for`` loops go on. A session ends once, in one teardown task that
every ending path (the application, the far side, a lost connection) awaits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import Any, Literal, Self

import av

from .engine.ice import IceServerEntry
from .engine.options import PeerOptions, count, positive_seconds
from .engine.peer import Peer
from .engine.stats import PeerSnapshot, StatsRecorder, StatsReport
from .engine.stats_history import Sample, StatsHistory
from .errors import ConfigurationError, SessionEndedError, SessionStateError
from .media.frames import AudioFrame, VideoFrame
from .media.recorder import Recorder, check_record_path, check_writable
from .media.source import MediaSource, track_of
from .media.streams import ConvertedStream, StreamHub, audio_converter, video_converter

log = logging.getLogger(__name__)

SessionState = Literal["new", "connecting", "connected", "reconnecting", "closed", "failed"]
_MAX_BACKOFF = 10.0

__all__ = ["PeerSession", "ReconnectPolicy", "SessionState"]


@dataclasses.dataclass(frozen=True)
class ReconnectPolicy:
    """Whether and how a session rebuilds its connection after an abnormal end (the far side went
    silent, ICE failed) while signalling still works: ``attempts`` tries, waiting ``backoff``
    seconds before the second, doubling up to 10 s."""

    enabled: bool = True
    attempts: int = 3
    backoff: float = 0.5

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigurationError(f"reconnect must be True or False, got {self.enabled!r}")
        count("reconnect_attempts", self.attempts, minimum=1)
        positive_seconds("reconnect_backoff", self.backoff)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt`` (1-based): none before the first."""
        return 0.0 if attempt <= 1 else min(_MAX_BACKOFF, self.backoff * 2 ** (attempt - 2))


class PeerSession:
    """Received media, stats, state, hang-up and reconnection for a session built on a ``Peer``.

    Subclasses do the signalling: ``_connect()`` (first connection), ``_reconnect_once()`` (a new
    peer over the same session), ``_is_outage()``, and the ``_hang_up_signalling()`` /
    ``_close_signalling()`` steps of the teardown. Settings are checked here, before any request.
    """

    def __init__(self, source: MediaSource | None = None, video: MediaSource | None = None, *,
                 record: str | Path | None = None, reconnect: bool = True, reconnect_attempts: int = 3,
                 reconnect_backoff: float = 0.5, **peer_options: Any) -> None:
        self._audio_track = track_of(source, "audio")
        self._video_track = track_of(video, "video")
        self._peer_options = PeerOptions(**peer_options)
        self._record_path = check_record_path(record) if record is not None else None
        if self._record_path is not None and self._peer_options.receive == "count":
            raise ConfigurationError("record needs decoded media: it cannot go with receive='count'")
        if self._record_path is not None:
            check_writable(self._record_path)  # before any request: a recording is never lost silently
        self.reconnect = ReconnectPolicy(reconnect, reconnect_attempts, reconnect_backoff)
        self._audio_hub: StreamHub[av.AudioFrame] = StreamHub()
        self._video_hub: StreamHub[av.VideoFrame] = StreamHub()
        self._hubs: list[StreamHub[Any]] = [self._audio_hub, self._video_hub]
        self.recorder: Recorder | None = None
        self.peer: Peer | None = None
        self.reconnects = 0
        self.outage_seconds = 0.0
        self.end_reason: str | None = None
        self._entered = False
        self._reconnecting = False
        self._live = asyncio.Event()  # set while the current peer is connected and not known lost
        self._final_state: SessionState | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._teardown: asyncio.Task[None] | None = None
        self._torn_down = asyncio.Event()
        self._recorder: StatsRecorder | None = None  # from the first connection on
        self._history = StatsHistory()
        self._earlier: list[PeerSnapshot] = []  # the final counters of the peers replaced so far
        self._sampler: asyncio.Task[None] | None = None

    # --- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect (signalling, offer/answer, ICE, DTLS) and wait until media can flow.

        A session starts once: a second start, or one after it closed, raises ``SessionStateError``.
        If set-up fails, everything opened so far is closed before the error is raised.
        """
        if self._entered:
            raise SessionStateError(f"this {type(self).__name__} was already started (or has closed):"
                                    " a session is entered once; make a new one")
        self._entered = True
        try:
            await self._connect()
            self._start_recording()
        except BaseException as exc:
            await self._shutdown(f"set-up failed: {exc or type(exc).__name__}", error=True)
            raise
        self._live.set()
        self._recorder = StatsRecorder()
        self._record()  # the reference of the first second's rates
        self._sampler = asyncio.create_task(self._sample(), name=f"peerbot-{type(self).__name__}-stats")
        self._supervisor = asyncio.create_task(self._supervise(), name=f"peerbot-{type(self).__name__}-supervisor")

    async def close(self) -> None:
        """Hang up: close the peer connection, stop sources and the recorder. Safe to call again."""
        if self._entered:
            await self._shutdown("closed by the application", error=False)

    async def closed(self) -> str:
        """Wait until the session has ended and everything is released; return why it ended."""
        self._require_started()
        await self._torn_down.wait()
        return self.end_reason or ""

    @property
    def error(self) -> str | None:
        """Why the session ended, when the end was abnormal (``state == "failed"``); else None."""
        return self.end_reason if self._final_state == "failed" else None

    @property
    def state(self) -> SessionState:
        """``new``, ``connecting``, ``connected``, ``reconnecting``, then ``closed`` (a normal end) or ``failed``."""
        if self._final_state is not None:
            return self._final_state
        if self._reconnecting:
            return "reconnecting"
        lost = self.peer is not None and self.peer.error is not None and self._supervisor is not None
        if lost and self.reconnect.enabled and self._teardown is None:  # the supervisor is about to rebuild it: no "failed" blip
            return "reconnecting"
        if self.peer is None:
            return "connecting" if self._entered else "new"
        return self.peer.state

    # --- what the application reads -----------------------------------------------------

    def audio_frames(self, sample_rate: int | None = None, channels: int | None = None,
                     *, max_queue: int = 50) -> ConvertedStream[av.AudioFrame, AudioFrame]:
        """Received audio as int16 frames (48 kHz stereo unless asked otherwise).

        Iteration continues across a reconnection, ends when the session ends normally, and
        raises ``SessionEndedError`` when it ended abnormally. A session made with
        ``receive="count"`` decodes nothing: ``SessionStateError``.
        """
        self._require_started()
        if self._peer_options.receive == "count":
            raise SessionStateError(f"this {type(self).__name__} receives with receive='count': RTP is counted,"
                                    " not decoded, so there are no audio frames; use receive='decode' to read them")
        if sample_rate is not None:
            count("sample_rate", sample_rate, minimum=1)
        if channels not in (None, 1, 2):
            raise ConfigurationError(f"channels must be 1 or 2, got {channels!r}")
        return ConvertedStream(self._audio_hub.subscribe(count("max_queue", max_queue, minimum=1)),
                               audio_converter(sample_rate, channels))

    def video_frames(self, format: str = "rgb24", *,
                     max_queue: int = 30) -> ConvertedStream[av.VideoFrame, VideoFrame]:
        """Received video as numpy pictures; ends like ``audio_frames()``."""
        self._require_started()
        if self._peer_options.receive == "count":
            raise SessionStateError(f"this {type(self).__name__} receives with receive='count': no video frames")
        return ConvertedStream(self._video_hub.subscribe(count("max_queue", max_queue, minimum=1)),
                               video_converter(format))

    def stats(self) -> StatsReport:
        """The call's quality now, refreshed every second (W3C stats per stream and a summary,
        see ``StatsReport``): counts since the session started, over every connection it had; after
        the session ended, the final report."""
        self._require_started()
        if self._recorder is None:
            return StatsReport()  # not connected yet, or the set-up failed
        latest = self._recorder.latest or self._record()
        # A reconnection shows at once, not at the next tick.
        return dataclasses.replace(latest, summary=dataclasses.replace(
            latest.summary, reconnects=self.reconnects, outage_seconds=round(self.outage_seconds, 2)))

    def stats_history(self) -> list[Sample]:
        """One flat sample per second for the whole call (``t``: seconds since it connected, and
        the metrics contract's names), also after it ended; see ``StatsHistory`` for the memory bound."""
        self._require_started()
        return self._history.samples()

    # --- for subclasses -----------------------------------------------------------------

    async def _connect(self) -> None:
        raise NotImplementedError

    async def _reconnect_once(self) -> None:
        """One attempt at a new, connected peer over the same session (``self.peer`` set to it)."""
        raise NotImplementedError

    async def _is_outage(self, peer: Peer) -> bool:
        """Whether the end of ``peer`` is a lost connection (rebuilt when reconnecting is on) rather
        than the session's normal end."""
        return peer.error is not None

    def _reconnected(self, outage: float) -> None:
        """Called after a successful reconnection that cost ``outage`` seconds without media."""

    async def _hang_up_signalling(self, reason: str, error: bool) -> None:
        """Teardown, before the media ends: tell the far side (the peer is still open)."""

    async def _close_signalling(self) -> None:
        """Teardown, last: close the signalling clients."""

    @property
    def _records_video(self) -> bool:
        return False

    def _new_peer(self, ice_servers: Iterable[IceServerEntry] | None) -> Peer:
        if self.peer is not None:  # its counts stay in the session's figures
            self._earlier.append(self.peer.snapshot())
        # Not dataclasses.asdict: it would turn the impairment's dataclasses into dicts.
        options = {f.name: getattr(self._peer_options, f.name) for f in dataclasses.fields(self._peer_options)}
        self.peer = Peer(ice_servers, **options,
                         audio_hub=self._audio_hub, video_hub=self._video_hub)
        return self.peer

    def _require_started(self) -> None:
        if not self._entered:
            raise SessionStateError(f"the {type(self).__name__} has not started: use `async with`"
                                    " (or await start()) before reading from it")

    async def _wait_for_connection(self) -> Peer:
        """The current peer once it is connected: at once, or after a reconnection in progress.

        Raises ``SessionEndedError`` if the session ends first (it was closed, or reconnecting
        failed); the wait is bounded by the reconnect policy, since a failed reconnection ends it.
        """
        self._require_started()
        while True:
            if self._teardown is not None:
                raise SessionEndedError(f"the {type(self).__name__} has ended: {self.end_reason or 'it is closing'}")
            peer = self.peer
            if self._live.is_set() and peer is not None and not peer.ended:
                return peer
            if self._live.is_set() and peer is not None:
                # Lost, and the supervisor has yet to notice: it does once the peer is closed.
                await peer.closed()
                await asyncio.sleep(0)
                continue
            live, ended = asyncio.ensure_future(self._live.wait()), asyncio.ensure_future(self._torn_down.wait())
            try:
                await asyncio.wait({live, ended}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                live.cancel()
                ended.cancel()

    def _require_peer(self) -> Peer:
        self._require_started()
        if self.peer is None:
            raise SessionStateError(f"the {type(self).__name__} has no connection (its set-up failed)")
        return self.peer

    # --- internals ----------------------------------------------------------------------

    def _record(self, *, final: bool = False) -> StatsReport:
        assert self._recorder is not None  # connected once
        current = self.peer.snapshot() if self.peer is not None else PeerSnapshot()
        return self._recorder.record(current, self._earlier, reconnects=self.reconnects,
                                     outage_seconds=self.outage_seconds, final=final)

    async def _sample(self) -> None:
        # On a fixed schedule, not after each sleep: one sample a second over an hour on a busy loop.
        assert self._recorder is not None
        interval, ticks = self._peer_options.stats_interval, 0
        while True:
            ticks += 1
            await asyncio.sleep(max(0.0, self._recorder.started + ticks * interval - time.monotonic()))
            try:
                self._history.add(self._record())
            except Exception:  # stats must never take the call down
                log.debug("recording the stats failed", exc_info=True)

    async def _record_final(self) -> None:
        if self._sampler is not None:
            self._sampler.cancel()
            await asyncio.gather(self._sampler, return_exceptions=True)
        if self._recorder is None:
            return
        report = self._record(final=True)  # the last full interval's rates, the whole call's MOS
        last = self._history.last_t
        if last is None or report.summary.t - last >= 0.5:  # else the last tick already is the end
            self._history.add(report)

    def _start_recording(self) -> None:
        if self._record_path is not None:
            self.recorder = Recorder(self._record_path)
            self.recorder.start(self._audio_hub.subscribe(500),
                                self._video_hub.subscribe(100) if self._records_video else None)

    async def _supervise(self) -> None:
        try:
            await self._watch_peers()
        except Exception as exc:  # never leave the session running unwatched
            log.warning("%s: unexpected failure while watching the connection", type(self).__name__, exc_info=True)
            await self._shutdown(f"internal error: {exc!r}", error=True)

    async def _watch_peers(self) -> None:
        # Watches the current peer; rebuilds it after an outage, or ends the session.
        while True:
            peer = self._require_peer()
            reason = await peer.closed()
            self._live.clear()
            if self._teardown is not None:
                return
            if not await self._is_outage(peer):
                await self._shutdown(reason, error=False)
                return
            if self.reconnect.enabled:
                failure = await self._recover(peer)
                if failure is None:
                    self._live.set()
                    continue
                reason = failure
            await self._shutdown(reason, error=True)
            return

    async def _recover(self, lost: Peer) -> str | None:
        """Rebuild the connection; None once connected again, else why it could not be."""
        self._reconnecting = True
        outage_from = lost.last_received or time.monotonic()
        log.info("%s lost its connection (%s): reconnecting", type(self).__name__, lost.end_reason)
        last: BaseException | None = None
        try:
            for attempt in range(1, self.reconnect.attempts + 1):
                await asyncio.sleep(self.reconnect.delay(attempt))
                try:
                    await self._reconnect_once()
                except Exception as exc:  # signalling, ICE or aiortc: this attempt failed, try again
                    last = exc
                    log.info("reconnect attempt %d of %d failed: %s", attempt, self.reconnect.attempts, exc)
                    if self.peer is not None and self.peer is not lost:
                        await self.peer.close(f"reconnect attempt {attempt} failed: {exc}", error=True)
                    continue
                outage = time.monotonic() - outage_from
                self.reconnects += 1
                self.outage_seconds += outage
                log.info("reconnected after %.1f s without media (attempt %d)", outage, attempt)
                self._reconnected(outage)
                return None
        finally:
            self._reconnecting = False
        attempts = self.reconnect.attempts
        return f"{lost.end_reason}; {attempts} reconnect attempt{'s' if attempts > 1 else ''} failed (last: {last})"

    async def _shutdown(self, reason: str, *, error: bool) -> None:
        # One teardown, in its own task: the task that starts it (the supervisor, an event
        # handler) is among those it cancels, and every later caller waits for the same one.
        if self._teardown is None:
            self._teardown = asyncio.create_task(self._tear_down(reason, error), name="peerbot-session-teardown")
        await asyncio.shield(self._teardown)

    async def _tear_down(self, reason: str, error: bool) -> None:
        # Each step runs whatever the one before did: the media must end and the clients close.
        try:
            await self._step(self._hang_up_signalling(reason, error))
            if self._supervisor is not None:
                self._supervisor.cancel()
                await asyncio.gather(self._supervisor, return_exceptions=True)
            await self._end_media(reason, error)
            await self._step(self._close_signalling())
        finally:
            self._torn_down.set()

    async def _step(self, step: Awaitable[None]) -> None:
        try:
            await step
        except Exception:
            log.warning("%s teardown step failed", type(self).__name__, exc_info=True)

    async def _end_media(self, reason: str, error: bool) -> None:
        self.end_reason = reason
        self._final_state = "failed" if error else "closed"
        if self.recorder is not None:
            await self._step(self.recorder.stop())
        if self.peer is not None:
            await self._step(self.peer.close(reason, error=error))
        for hub in self._hubs:
            hub.end(reason if error else None)
        await self._step(self._record_final())  # after the hubs ended: their meters' clocks stopped
        for track in (self._audio_track, self._video_track):
            if track is not None:
                track.stop()
