"""The load runner: starts the far side (when local) and the worker processes, hears what they
say, and ends the run cleanly whatever happens (a worker dying, Ctrl-C, a cancelled test).

``await peerbot.load.run(LoadConfig(participants=4, duration=5))`` returns a ``LoadResult``;
``LoadRunner`` is the same with a handle on the run while it goes (``stop()``, ``state``,
``prometheus_port``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ..errors import ConfigurationError
from .config import LoadConfig
from .media import media_mode
from .messages import Connected, Connecting, Done, Ended, Failed, FirstAudio, Hello, Start, Stop, Tick
from .prometheus import PrometheusExporter
from .servers import cpu_seconds, local_server
from .summary import LoadState, ParticipantRecord, WorkerRecord
from .worker import SETUP_TIMEOUT, WORKER_TERMINATED

log = logging.getLogger(__name__)

__all__ = ["LoadResult", "LoadRunner", "run"]

HELLO_TIMEOUT = 60.0  # seconds for every worker to import and say Hello
REFRESH_INTERVAL = 0.5  # seconds between updates of the live view and the Prometheus gauges
WORKER_DIED = "WorkerDied"
NOT_STARTED = "NotStarted"  # the run ended (not stopped) before its worker started it


@dataclass
class LoadResult:
    """A finished load test: the load summary (:mod:`peerbot.load.summary`), failures by typed
    error, every participant and worker, the aggregated history (a sample a second: the mean over
    the connected participants of each metric), and how it ended."""

    config: LoadConfig
    target: str
    started_at: float  # time.time() of the first spawn
    duration_s: float
    summary: dict[str, float | None]
    errors: dict[str, int]
    participants: list[ParticipantRecord]
    workers: list[WorkerRecord]
    history: list[dict[str, float | None]] = field(default_factory=list)
    interrupted: bool = False

    @property
    def generator_limited(self) -> bool:
        """Whether a worker's loop lagged or its CPU saturated: the figures may be the generator's, not the server's."""
        return bool(self.summary.get("generator_limited"))

    @property
    def ok(self) -> bool:
        """Every participant connected and none failed, and no worker died."""
        return (not self.errors and all(w.died is None for w in self.workers)
                and all(p.connected for p in self.participants))

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "duration_s": round(self.duration_s, 3), "interrupted": self.interrupted,
                "generator_limited": self.generator_limited, "summary": self.summary, "errors": self.errors,
                "workers": [w.to_dict() for w in self.workers],
                "participants": [p.row() for p in self.participants]}


class LoadRunner:
    """One load test; ``await runner.run()`` once. ``on_update(state)`` is called twice a second."""

    def __init__(self, config: LoadConfig, *, on_update: Callable[[LoadState], None] | None = None,
                 log_level: int | None = None) -> None:
        media_mode(config)  # an unknown mode or a bad --source is refused here, before any process starts
        self.config = config
        self.state = LoadState(config.participants, config.worker_count)
        self.on_update = on_update
        self.prometheus_port: int | None = None
        self.target = ""
        self._log_level = log_level if log_level is not None else logging.getLogger().getEffectiveLevel()
        self._stop = asyncio.Event()
        self._interrupted = False
        self._conns: dict[int, Connection] = {}
        self._processes: dict[int, BaseProcess] = {}
        self._hello = asyncio.Event()
        self._finished = asyncio.Event()
        self._exporter: PrometheusExporter | None = None
        self._server_pid: int | None = None  # the local server's, when we started it
        self._terminated: list[tuple[int, str, str]] = []  # WorkerTerminated (index, message, phase), held back

    def stop(self) -> None:
        """Hang every participant up now (Ctrl-C): the run ends as soon as they have."""
        self._interrupted = True
        self._stop.set()

    async def run(self) -> LoadResult:
        config = self.config
        started_at = time.time()
        async with contextlib.AsyncExitStack() as stack:
            if config.prometheus_port is not None:  # a port taken is bad usage, before any process starts
                try:
                    self._exporter = PrometheusExporter(config.prometheus_port)
                except OSError as exc:
                    raise ConfigurationError(f"cannot serve Prometheus metrics on port {config.prometheus_port}:"
                                             f" {exc.strerror or exc}") from None
                stack.callback(self._exporter.close)
                self.prometheus_port = self._exporter.port
            stack.callback(self._reap)
            self._start_workers()  # they import while the server starts
            target = await self._target(stack)
            stack.callback(self._reap)  # again: the workers hang up before the server stops
            refresher = asyncio.create_task(self._refresh())
            stack.callback(refresher.cancel)
            await self._wait_for_hellos()
            started_at = time.time() + 0.1
            self.state.started = time.monotonic() + 0.1
            for conn in self._conns.values():  # Stopped already (Ctrl-C while they started): Stop, not Start
                self._send(conn, Stop() if self._stop.is_set() else Start(started_at, target))
            await self._wait_until_finished()
            self._settle()
            self.state.finish()
            self._update()
        return LoadResult(config, self.target, started_at, max(0.0, time.time() - started_at), self.state.summary(),
                          dict(self.state.errors.most_common()), self.state.participants, self.state.workers,
                          self.state.history, self._interrupted)

    def _settle(self) -> None:
        """At the end: a worker's SIGTERM counts unless we were stopped too (a signal to the whole
        process group); a participant that never connected within an unstopped run is a failure."""
        if self._interrupted:
            return
        for index, message, phase in self._terminated:
            self.state.fail(index, WORKER_TERMINATED, message, phase)
        for p in self.state.participants:
            if p.state == "waiting":
                self.state.fail(p.index, NOT_STARTED, "the run ended before this participant was started", "setup")
            elif p.state == "connecting":
                self.state.fail(p.index, SETUP_TIMEOUT, "still setting up when the run ended", "setup")

    async def _target(self, stack: contextlib.AsyncExitStack) -> dict[str, Any]:
        config = self.config
        if config.is_local():
            target, self._server_pid = await stack.enter_async_context(
                local_server(orbit=config.orbit, reflect=config.reflect, calls=config.participants))
            kind = "Orbit" if config.orbit else "reflecting Orga" if config.reflect else "Orga"
            self.target = f"the local {kind}-compatible server at {target['base_url']} (in its own process)"
            return target
        if config.orbit:
            secret = config.secret_key or os.environ.get("ORBIT_SECRET_KEY")
            base_url = config.base_url or os.environ.get("ORBIT_BASE_URL")
            if not secret or not base_url:
                raise ConfigurationError("an Orbit load test needs ORBIT_SECRET_KEY and ORBIT_BASE_URL (or --local)")
            import secrets

            self.target = f"Orbit at {base_url}"
            return {"secret_key": secret, "base_url": base_url,
                    "client_id": config.client_id or os.environ.get("ORBIT_CLIENT_ID"), "run_id": secrets.token_hex(4)}
        kwargs = {k: v for k, v in (("api_key", config.api_key), ("base_url", config.base_url),
                                    ("user_email", config.user_email)) if v is not None}
        self.target = f"Orga at {config.base_url or os.environ.get('ORGA_BASE_URL', 'https://api.orga-ai.com')}"
        return kwargs

    def _assignment(self) -> dict[int, list[int]]:
        k = self.config.worker_count
        plan: dict[int, list[int]] = {w: [] for w in range(k)}
        for index in range(self.config.participants):
            unit = index // 2 if self.config.orbit else index  # an Orbit pair stays in one worker
            plan[unit % k].append(index)
        return plan

    def _start_workers(self) -> None:
        from .worker import worker_main

        context = multiprocessing.get_context("spawn")
        loop = asyncio.get_running_loop()
        with _signals_ignored_by_children():
            for worker, indices in self._assignment().items():
                for index in indices:
                    self.state.participants[index].worker = worker
                ours, theirs = context.Pipe(duplex=True)
                process = context.Process(target=worker_main, name=f"peerbot-load-worker-{worker}", daemon=True,
                                          args=(worker, self.config, indices, theirs, self._log_level))
                process.start()
                theirs.close()  # so that its end closing (the worker exiting) is our EOF
                self._conns[worker], self._processes[worker] = ours, process
                loop.add_reader(ours.fileno(), self._receive, worker)

    async def _wait_for_hellos(self) -> None:
        waiter = asyncio.create_task(self._hello.wait())
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, timeout=HELLO_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            stopper.cancel()
        if not self._hello.is_set() and not self._stop.is_set():
            for record in self.state.workers:
                if record.pid is None and record.died is None:
                    record.died = f"no Hello within {HELLO_TIMEOUT:g} s"
            self._stop.set()

    async def _wait_until_finished(self) -> None:
        config = self.config
        deadline = time.monotonic() + config.duration + config.hang_up_timeout + 15
        stopper = asyncio.create_task(self._stop.wait())
        finisher = asyncio.create_task(self._finished.wait())
        try:
            await asyncio.wait({stopper, finisher}, timeout=max(0.0, deadline - time.monotonic()),
                               return_when=asyncio.FIRST_COMPLETED)
            if not self._finished.is_set():  # stopped early (or late): tell the workers, give them time to hang up
                for conn in list(self._conns.values()):
                    self._send(conn, Stop())
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._finished.wait(), config.hang_up_timeout + 5)
        finally:
            stopper.cancel()
            finisher.cancel()

    def _send(self, conn: Connection, message: object) -> None:
        with contextlib.suppress(OSError, ValueError):  # a worker gone: its EOF tells
            conn.send(message)

    def _receive(self, worker: int) -> None:
        conn = self._conns[worker]
        try:
            message = conn.recv()
        except (EOFError, OSError):
            self._gone(worker)
            return
        self._handle(worker, message)

    def _gone(self, worker: int) -> None:
        loop = asyncio.get_running_loop()
        conn = self._conns.pop(worker)
        loop.remove_reader(conn.fileno())
        conn.close()
        record = self.state.workers[worker]
        if not record.done:
            process = self._processes[worker]
            process.join(1)
            record.died = f"exit code {process.exitcode}" if process.exitcode is not None else "its pipe closed"
            log.warning("load worker %d died (%s)", worker, record.died)
            for p in self.state.participants:
                if p.worker == worker and p.state in ("waiting", "connecting", "connected"):
                    self.state.fail(p.index, WORKER_DIED, f"worker {worker} died ({record.died})",
                                    "call" if p.connected else "setup")
        if all(w.pid is not None or w.died for w in self.state.workers):
            self._hello.set()
        if not self._conns:
            self._finished.set()

    def _handle(self, worker: int, message: object) -> None:
        state = self.state
        if isinstance(message, Tick):
            state.tick(worker, message.lag_ms, message.cpu_percent, message.figures, message.decoder_threads)
        elif isinstance(message, Connecting):
            p = state.participants[message.index]
            p.state, p.decodes = "connecting", message.decodes
        elif isinstance(message, Connected):
            p = state.participants[message.index]
            p.state, p.setup_ms = "connected", message.setup_s * 1000
            if self._exporter is not None:
                self._exporter.setup(message.setup_s)
        elif isinstance(message, FirstAudio):
            state.participants[message.index].first_audio_ms = message.after_s * 1000
            if self._exporter is not None:
                self._exporter.first_audio(message.after_s)
        elif isinstance(message, Failed):
            if message.error == WORKER_TERMINATED:  # decided at the end (_settle)
                self._terminated.append((message.index, message.message, message.phase))
            else:
                state.fail(message.index, message.error, message.message, message.phase)
        elif isinstance(message, Ended):
            p = state.participants[message.index]
            p.summary, p.duration_s, p.call_id = dict(message.summary), message.duration_s, message.call_id
            if p.state != "failed":
                p.state = "ended"
        elif isinstance(message, Hello):
            state.workers[worker].pid = message.pid
            if all(w.pid is not None or w.died for w in state.workers):
                self._hello.set()
        elif isinstance(message, Done):
            state.workers[worker].done = True

    async def _refresh(self) -> None:
        last: tuple[float, float] | None = None  # (wall, CPU seconds) of the local server
        while True:
            await asyncio.sleep(REFRESH_INTERVAL)
            used = cpu_seconds(self._server_pid) if self._server_pid is not None else None
            if used is not None:
                now = time.monotonic()
                if last is not None and now - last[0] >= 1:
                    self.state.server_tick((used - last[1]) / (now - last[0]) * 100)
                    last = (now, used)
                elif last is None:
                    last = (now, used)
            self._update()

    def _update(self) -> None:
        if self._exporter is not None:
            self._exporter.update(self.state)
        if self.on_update is not None:
            self.on_update(self.state)

    def _reap(self) -> None:
        """Nothing left running: every worker joined, killed if it must be."""
        loop = asyncio.get_running_loop()
        for worker, conn in list(self._conns.items()):  # cancelled mid-run: they hang up on Stop
            self._send(conn, Stop())
            loop.remove_reader(conn.fileno())
            conn.close()
            self._conns.pop(worker)
        deadline = time.monotonic() + self.config.hang_up_timeout + 5
        for worker, process in self._processes.items():
            process.join(max(0.1, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("load worker %d did not end: killing it", worker)
                process.kill()
                process.join(5)
            record = self.state.workers[worker]
            if not record.done and record.died is None:
                record.died = f"exit code {process.exitcode}"


@contextlib.contextmanager
def _signals_ignored_by_children() -> Any:
    """Start processes with SIGINT and SIGTERM ignored (dispositions survive exec): a Ctrl-C or a
    SIGTERM to the whole process group while a worker is still importing must not kill it, the
    runner hangs it up. Blocked meanwhile here, so that none sent to us is lost. Main thread only
    (signal.signal's rule); elsewhere the worker ignores them as soon as it runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = {signal.SIGINT, signal.SIGTERM}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


async def run(config: LoadConfig, *, on_update: Callable[[LoadState], None] | None = None) -> LoadResult:
    """Run a load test to its end (see ``LoadRunner``)."""
    return await LoadRunner(config, on_update=on_update).run()
