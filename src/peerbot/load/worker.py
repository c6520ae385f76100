"""A worker process: its own asyncio loop holding its share of the participants.

Started with multiprocessing's spawn context (a fresh interpreter: no inherited loop, threads
or sockets). It says ``Hello``, waits for ``Start``, spawns each of its participants at its
time, and sends a ``Tick`` every second: its loop's lag (how late a 100 ms timer fires), its CPU,
its live aiortc decoder threads and every connected participant's figures (with a decode sample,
the sampled ones' decoded figures too). On ``Stop``, at the end of the run, or when the
runner goes away (its pipe closes) it hangs every session up and sends ``Done``. SIGINT is
ignored here (from the process's birth: the runner starts it with SIGINT and SIGTERM ignored): the
runner, which gets Ctrl-C too, decides and says ``Stop``. SIGTERM hangs this worker's sessions up
cleanly (a ``timeout`` or a service manager signals the whole process group): its live participants
are reported ``WorkerTerminated``, which the runner counts only when it was not itself stopped.

A participant whose session is still being set up when the run ends (or whose set-up is cancelled
at the hang-up) is ``SetupTimeout``: it never connected within the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from multiprocessing.connection import Connection
from typing import Any, Literal

from .config import LoadConfig
from .decoded import decoder_threads
from .media import Decoding, MediaMode, media_mode, participant_media
from .messages import Connected, Connecting, Done, Ended, Failed, FirstAudio, Hello, Start, Stop, Tick

log = logging.getLogger(__name__)

LAG_INTERVAL = 0.1  # seconds between the lag timer's ticks
SETUP_TIMEOUT = "SetupTimeout"  # still setting up when the run ended
WORKER_TERMINATED = "WorkerTerminated"  # its worker got SIGTERM (counted unless the runner was stopped too)


def worker_main(worker: int, config: LoadConfig, indices: list[int], conn: Connection,
                log_level: int = logging.WARNING) -> None:
    """The process's entry point (module level, so that spawn can find it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # until the loop handles it (_Worker.run)
    logging.basicConfig(level=log_level, format=f"%(asctime)s %(levelname)s worker{worker} %(name)s: %(message)s")
    try:
        asyncio.run(_Worker(worker, config, indices, conn).run())
    except (BrokenPipeError, EOFError, ConnectionResetError):  # the runner is gone: nothing to tell
        pass
    finally:
        conn.close()


class _Worker:
    def __init__(self, worker: int, config: LoadConfig, indices: list[int], conn: Connection) -> None:
        self.worker, self.config, self.indices, self.conn = worker, config, indices, conn
        self.target: dict[str, Any] = {}
        self.sessions: dict[int, Any] = {}  # index → a connected session
        self.stop = asyncio.Event()
        self.mode: MediaMode | None = None
        self.modes: dict[int, MediaMode] = {}  # index → the mode that participant uses (decode sample)
        self.phases: dict[int, str] = {}  # index → "setup" or "call", while its session is live
        self.terminated = False  # SIGTERM: hang up now

    def _terminate(self) -> None:
        if not self.terminated:
            self.terminated = True
            for index, phase in sorted(self.phases.items()):
                with contextlib.suppress(OSError, ValueError):
                    self.send(Failed(index, WORKER_TERMINATED, f"worker {self.worker} got SIGTERM", phase))
        self.stop.set()

    def send(self, message: object) -> None:
        self.conn.send(message)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._terminate)
        self.mode = media_mode(self.config)
        _warm_up(self.config)  # imports before Start: the first spawn second is not an import's stall
        self.send(Hello(self.worker, os.getpid()))
        start = await self._first_command(loop)
        if start is None:  # stopped before it started
            self.send(Done(self.worker))
            return
        self.target = start.target
        loop.add_reader(self.conn.fileno(), self._command)
        end = start.epoch + self.config.duration
        monitor = asyncio.create_task(self._monitor())
        tasks = [asyncio.create_task(self._participant(i, start.epoch + self._offset(i))) for i in self.indices]
        try:
            stopping = asyncio.create_task(self.stop.wait())
            # The end of the run, a Stop, or every participant of this worker done (all failed, say).
            everyone: asyncio.Future[Any] = asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.wait({stopping, everyone}, timeout=max(0.0, end - time.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            self.stop.set()
            done, pending = await asyncio.wait(tasks, timeout=self.config.hang_up_timeout)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            monitor.cancel()
            loop.remove_reader(self.conn.fileno())
        self.send(Done(self.worker))

    def _offset(self, index: int) -> float:
        if self.config.orbit:  # a pair's callee (odd) starts first, so that it is waiting to answer
            pair_start = self.config.spawn_offset(index - index % 2)
            return pair_start + (0.05 if index % 2 == 0 else 0.0)
        return self.config.spawn_offset(index)

    async def _first_command(self, loop: asyncio.AbstractEventLoop) -> Start | None:
        message = await loop.run_in_executor(None, self.conn.recv)
        return message if isinstance(message, Start) else None

    def _command(self) -> None:
        try:
            message = self.conn.recv()
        except (EOFError, OSError):  # the runner is gone: hang up
            message = Stop()
            asyncio.get_running_loop().remove_reader(self.conn.fileno())
        if isinstance(message, Stop):
            self.stop.set()

    async def _monitor(self) -> None:
        """Loop lag and CPU, and the participants' figures, once a second."""
        cpu, wall = time.process_time(), time.monotonic()
        lag = 0.0
        while True:
            for _ in range(round(1 / LAG_INTERVAL)):
                expected = time.monotonic() + LAG_INTERVAL
                await asyncio.sleep(LAG_INTERVAL)
                lag = max(lag, time.monotonic() - expected)
            now_cpu, now = time.process_time(), time.monotonic()
            figures = {}
            for index, session in list(self.sessions.items()):
                with contextlib.suppress(Exception):
                    figures[index] = {**session.stats().to_metrics(), **self._decoded(index)}
            self.send(Tick(self.worker, round(lag * 1000, 1), round((now_cpu - cpu) / (now - wall) * 100, 1), figures,
                           decoder_threads()))
            cpu, wall, lag = now_cpu, now, 0.0

    async def _participant(self, index: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.time()))
        if self.stop.is_set():
            return
        assert self.mode is not None
        started = time.monotonic()
        phase = self.phases[index] = "setup"
        session: Any = None
        try:  # everything from here is the participant's: an error of its media mode is its failure too
            mode = self.modes[index] = participant_media(self.mode, index)
            options: dict[str, Any] = {**self.config.session_options, **mode.session_options()}
            self.send(Connecting(index, time.time(), decodes=options.get("receive", "decode") != "count"))
            session = await self._session(index, mode, options)
            await session.start()
            if self.stop.is_set():  # connected only once the run had ended: not within the run
                if not self.terminated:
                    self.send(Failed(index, SETUP_TIMEOUT, f"still setting up when the run ended"
                                     f" ({time.monotonic() - started:.1f} s after connect())", phase))
                return
            self.send(Connected(index, time.monotonic() - started))
            phase = self.phases[index] = "call"
            held_from = time.monotonic()
            self.sessions[index] = session
            await self._hold(index, session, started)
            if not self.stop.is_set() and session.error:  # ended on its own, abnormally
                self.send(Failed(index, "SessionEndedError", str(session.error), phase))
        except asyncio.CancelledError:  # the hang-up timeout cancelled it
            if phase == "setup" and not self.terminated:
                with contextlib.suppress(OSError, ValueError):
                    self.send(Failed(index, SETUP_TIMEOUT, f"still setting up when the run ended"
                                     f" ({time.monotonic() - started:.1f} s after connect())", phase))
            raise
        except Exception as exc:
            self.send(Failed(index, type(exc).__name__, " ".join(str(exc).split())[:300], phase))
        finally:
            self.phases.pop(index, None)
            self.sessions.pop(index, None)
            if session is not None:
                await session.close()
                if phase == "call":
                    from ..quality import summarize

                    self.send(Ended(index, {**summarize(session.stats_history()), **self._decoded(index)},
                                    time.monotonic() - held_from,
                                    getattr(session, "conversation_id", None) or getattr(session, "call_id", None)))

    def _decoded(self, index: int) -> dict[str, float | None]:
        mode = self.modes.get(index)
        return mode.decoded_figures() if isinstance(mode, Decoding) else {}

    async def _hold(self, index: int, session: Any, started: float) -> None:
        """Until the run ends or the session does, receiving as the participant's media mode does."""
        heard = False

        def first_audio() -> None:
            nonlocal heard
            if not heard:
                heard = True
                self.send(FirstAudio(index, time.monotonic() - started))

        receiving = asyncio.create_task(self.modes[index].receive(session, first_audio))
        stopping = asyncio.create_task(self.stop.wait())
        ended = asyncio.create_task(session.closed())
        try:
            await asyncio.wait({stopping, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (receiving, stopping, ended):
                task.cancel()
            await asyncio.gather(receiving, stopping, ended, return_exceptions=True)

    async def _session(self, index: int, mode: MediaMode, options: dict[str, Any]) -> Any:
        audio, video = mode.sources()
        options = dict(options)
        if self.config.impair:
            options["impair"] = self.config.impair
        if not self.config.orbit:
            from .. import orga

            return orga.connect(audio, video, **self.target, **options)
        return await self._orbit_session(index, audio, video, options)

    async def _orbit_session(self, index: int, audio: Any, video: Any, options: dict[str, Any]) -> Any:
        from .. import orbit

        pair, callee = index // 2, index % 2 == 1
        run = self.target["run_id"]
        async with orbit.OrbitServer(self.target["secret_key"], self.target["base_url"]) as backend:
            me = await backend.users.create(f"load-{run}-{index}", f"load {index}")
            token = (await backend.users.create_token(me.id, ttl=3600)).token
            peer = None if callee else await _wait_for_user(backend, f"load-{run}-{index + 1}")
        kwargs: dict[str, Any] = {"token": token, "client_id": self.target.get("client_id"),
                                  "base_url": self.target["base_url"], **options}
        call_type: Literal["voice", "video"] = "video" if video is not None else "voice"
        if callee:
            return orbit.answer(audio, video, ring_timeout=max(30.0, self.config.duration), **kwargs)
        assert peer is not None
        log.debug("pair %d: %s calls %s", pair, me.id, peer)
        return orbit.call(peer, audio, video, type=call_type, **kwargs)


async def _wait_for_user(backend: Any, external_id: str, timeout: float = 10.0) -> str:
    """The Orbit user id of the callee of a pair, once it has been upserted."""
    from ..errors import OrbitServerError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return str((await backend.users.get_by_external_id(external_id)).id)
        except OrbitServerError as exc:
            if exc.status != 404 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.05)



def _warm_up(config: LoadConfig) -> None:
    import aiortc  # noqa: F401

    from .. import orga  # noqa: F401
    from ..engine import peer  # noqa: F401

    if config.orbit:
        from .. import orbit  # noqa: F401
