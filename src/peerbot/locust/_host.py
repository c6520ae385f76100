"""The clean peerbot process behind one Locust worker: one asyncio loop holding many sessions.

Locust monkey-patches ``selectors``, ``socket`` and ``threading`` with gevent when it is imported,
and an asyncio loop in a patched process breaks; so the sessions live here, in a fresh interpreter
that never imports locust or gevent, started by ``_bridge.Bridge`` as
``python -m peerbot.locust._host --fd N``. (Not ``multiprocessing``: its spawn start method
re-runs the parent's ``__main__``, the ``locust`` script, in the child, which would patch it.)

The protocol is newline-delimited JSON over a Unix socket pair, one object per line. The worker
sends ``{"id": n, "op": …}``; every reply carries the same ``id`` with ``"ok": true`` and the
result, or ``"ok": false`` and ``"error": {"type", "module", "message", "status", "code"}``.
Operations: ``connect`` (``sid``, ``options``), ``stats``, ``update`` (``fields``), ``close``
(``sid``), ``close_all`` and ``shutdown``. The host says ``{"op": "ready"}`` once its imports are
in. End of file on the socket (the worker quit or died) closes every session and ends the
process, so a host never outlives its worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..cli.sources import audio_source
from ..errors import SessionEndedError
from ..orga import OrgaSession, connect
from ..quality.metrics import METRICS, summarize

log = logging.getLogger(__name__)

_CLOSE_TIMEOUT = 10.0


@dataclass
class _Held:
    """One session the host holds for a Locust user."""

    session: OrgaSession
    started: float  # perf_counter at connect()
    read_audio: bool
    first_audio_ms: float | None = None
    reader: asyncio.Task[None] | None = None
    closing: asyncio.Future[dict[str, Any]] | None = None


class Host:
    """Runs the worker's commands; each command is a task of its own, so sessions overlap."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._held: dict[str, _Held] = {}
        self._connecting: set[str] = set()
        self._abandoned: set[str] = set()  # hung up by their user while still connecting
        self._tasks: set[asyncio.Task[None]] = set()
        self.stopping = asyncio.Event()

    def send(self, message: dict[str, Any]) -> None:
        self._writer.write(json.dumps(message, default=_jsonable).encode() + b"\n")

    def dispatch(self, line: bytes) -> None:
        try:
            command = json.loads(line)
        except ValueError:
            log.warning("peerbot.locust host: unreadable command %r", line[:80])
            return
        task = asyncio.create_task(self._run(command), name=f"peerbot-locust-{command.get('op')}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, command: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"id": command.get("id")}
        try:
            handler = getattr(self, f"_op_{command.get('op')}", None)
            if handler is None:
                raise ValueError(f"unknown operation {command.get('op')!r}")
            reply.update(await handler(command), ok=True)
        except Exception as exc:
            reply.update(ok=False, error=describe(exc))
        if command.get("id") is not None:
            self.send(reply)

    # --- operations -------------------------------------------------------------------

    async def _op_connect(self, command: dict[str, Any]) -> dict[str, Any]:
        sid, options = command["sid"], dict(command.get("options") or {})
        source = options.pop("source", "tone")
        read_audio = bool(options.pop("read_audio", False))
        started = time.perf_counter()
        session = connect(audio_source(source) if source is not None else None, **options)
        held = _Held(session, started, read_audio)
        self._connecting.add(sid)
        try:
            await session.start()
        finally:
            self._connecting.discard(sid)
        setup_ms = (time.perf_counter() - started) * 1000
        self._held[sid] = held
        if sid in self._abandoned:
            self._abandoned.discard(sid)
            await self._close(sid)
            raise SessionEndedError("hung up by its Locust user while connecting")
        held.reader = asyncio.create_task(self._read_audio(held), name=f"peerbot-locust-audio-{sid}")
        return {"setup_ms": setup_ms}

    async def _op_stats(self, command: dict[str, Any]) -> dict[str, Any]:
        held = self._get(command["sid"])
        return {"metrics": held.session.stats().to_metrics(), "state": held.session.state}

    async def _op_update(self, command: dict[str, Any]) -> dict[str, Any]:
        await self._get(command["sid"]).session.update(**command.get("fields", {}))
        return {}

    async def _op_close(self, command: dict[str, Any]) -> dict[str, Any]:
        if command["sid"] in self._connecting:
            self._abandoned.add(command["sid"])
            return {}
        return await self._close(command["sid"])

    async def _op_close_all(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.close_all()
        return {}

    async def _op_shutdown(self, command: dict[str, Any]) -> dict[str, Any]:
        await self.close_all()
        self.stopping.set()
        return {}

    # --- internals --------------------------------------------------------------------

    def _get(self, sid: str) -> _Held:
        held = self._held.get(sid)
        if held is None:
            raise KeyError(f"no session {sid!r} (it was never connected, or already hung up)")
        return held

    async def _read_audio(self, held: _Held) -> None:
        """Time the first received audio frame; then read on only if asked (reading costs a
        conversion per frame; the quality figures are counted whether or not anyone reads)."""
        stream = held.session.audio_frames()
        try:
            async for _ in stream:
                if held.first_audio_ms is None:
                    held.first_audio_ms = (time.perf_counter() - held.started) * 1000
                    if not held.read_audio:
                        return
        except Exception:  # the session ended abnormally: close() reports it
            pass
        finally:
            stream.close()

    async def _close(self, sid: str) -> dict[str, Any]:
        held = self._get(sid)
        if held.closing is None:  # a second close (a user's finally after an explicit hang-up) joins the first
            held.closing = asyncio.ensure_future(self._hang_up(held))
        try:
            return await asyncio.shield(held.closing)
        finally:
            self._held.pop(sid, None)

    async def _hang_up(self, held: _Held) -> dict[str, Any]:
        session = held.session
        error = session.error  # an abnormal end during the hold, before ours
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(_CLOSE_TIMEOUT):
                await session.close()
        if held.reader is not None:
            held.reader.cancel()
            await asyncio.gather(held.reader, return_exceptions=True)
        history = session.stats_history()
        if history:
            summary = summarize(history)  # the call's figure of each metric: its last value, or its mean for a gauge
            figures = {name: summary[name] for name in METRICS}
        else:
            figures = session.stats().to_metrics()
        return {"duration_ms": (time.perf_counter() - held.started) * 1000, "first_audio_ms": held.first_audio_ms,
                "metrics": figures, "error": {"type": "SessionEndedError", "module": "peerbot.errors",
                                              "message": error} if error else None}

    async def close_all(self) -> None:
        self._abandoned |= self._connecting
        await asyncio.gather(*(self._close(sid) for sid in list(self._held)), return_exceptions=True)


def describe(exc: BaseException) -> dict[str, Any]:
    """What the worker needs to rebuild the typed error for Locust (never a traceback)."""
    return {"type": type(exc).__name__, "module": type(exc).__module__, "message": str(exc),
            "status": getattr(exc, "status", None), "code": getattr(exc, "code", None)}


def _jsonable(value: object) -> object:
    return str(value)


async def serve(fd: int) -> None:
    """Run commands from the socket ``fd`` until ``shutdown`` or end of file."""
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    host = Host(writer)
    host.send({"op": "ready"})
    stop = asyncio.ensure_future(host.stopping.wait())
    try:
        while not host.stopping.is_set():
            line = asyncio.ensure_future(reader.readline())
            await asyncio.wait({line, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not line.done():
                line.cancel()
                break
            if not line.result():  # end of file: the worker is gone
                break
            host.dispatch(line.result())
    finally:
        stop.cancel()
        await host.close_all()
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m peerbot.locust._host")
    parser.add_argument("--fd", type=int, required=True, help="the socket to the Locust worker")
    args = parser.parse_args()
    # The worker decides when the host ends (a command, or its socket closing), not a terminal's Ctrl-C.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="peerbot host: %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.fd))


if __name__ == "__main__":
    main()
