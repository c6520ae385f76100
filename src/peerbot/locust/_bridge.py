"""The gevent side of the bridge: one clean peerbot host process per Locust worker process.

Everything here is cooperative: the host's socket is a ``gevent.socket`` read by one reader
greenlet that hands each reply to the greenlet waiting for it (an ``AsyncResult``), so a user
waiting for its session never blocks the hub, and hundreds of users share one socket.
"""

from __future__ import annotations

import builtins
import itertools
import json
import logging
import os
import sys
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.socket
import gevent.subprocess

from .. import errors
from ..errors import PeerbotError

log = logging.getLogger(__name__)

READY_TIMEOUT = 60.0  # the host imports aiortc, PyAV and numpy first: seconds on a loaded machine
STOP_TIMEOUT = 15.0

__all__ = ["Bridge", "HostError", "RemoteError", "bridge", "rebuild_error", "running_bridge", "stop_bridge"]


class HostError(PeerbotError):
    """The peerbot host process of this Locust worker could not start, died, or did not answer."""


class RemoteError(PeerbotError):
    """An error from the host that is neither a peerbot error nor a built-in one; ``type`` names it."""

    def __init__(self, type: str, message: str) -> None:
        super().__init__(f"{type}: {message}")
        self.type = type


def rebuild_error(error: dict[str, Any]) -> Exception:
    """The host's error as the typed exception it was (``OrgaAIAuthenticationError``, ``IceFailedError``,
    ``TimeoutError``…), so Locust's failure table names the real type; ``status``/``code`` kept."""
    name, module, message = error.get("type", "Exception"), error.get("module", ""), error.get("message", "")
    cls = getattr(errors, name, None) if module.startswith("peerbot") else getattr(builtins, name, None)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RemoteError(name, message)
    exc = _construct(cls, message, {k: error[k] for k in ("status", "code") if error.get(k) is not None})
    try:
        repr(exc)  # what Locust's failure table shows
    except Exception:
        return RemoteError(name, message)
    return exc


def _construct(cls: type[Exception], message: str, fields: dict[str, Any]) -> Exception:
    for kwargs in (fields, {}) if fields else ({},):
        try:
            return cls(message, **kwargs)
        except TypeError:
            pass
    exc = cls.__new__(cls)  # a signature of its own (an outcome first): the type and the message still tell
    exc.args = (message,)
    for attr, value in {"message": message, "reason": message, **fields}.items():
        setattr(exc, attr, value)
    return exc


class Bridge:
    """One host process and the socket to it; ``request()`` from any greenlet."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._waiting: dict[int, gevent.event.AsyncResult] = {}
        self._write_lock = gevent.lock.Semaphore()
        self._ready = gevent.event.Event()
        self._gone = False
        self._sock: Any = None
        self._proc: gevent.subprocess.Popen[bytes] | None = None
        self._reader: gevent.Greenlet | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and not self._gone

    def start(self) -> None:
        ours, theirs = gevent.socket.socketpair()
        try:
            # A session of its own: the terminal's Ctrl-C reaches Locust, which then stops the host in order.
            self._proc = gevent.subprocess.Popen(
                [sys.executable, "-m", "peerbot.locust._host", "--fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=gevent.subprocess.DEVNULL, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            theirs.close()  # the host holds its own copy: its end of file is ours closing
        self._sock = ours
        self._reader = gevent.spawn(self._read)
        if not self._ready.wait(READY_TIMEOUT) or not self.alive:
            self.stop()
            raise HostError(f"the peerbot host process did not start within {READY_TIMEOUT:g} s")

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send a command and wait (cooperatively) for its reply; raise the typed error it reports."""
        if not self.alive:
            raise HostError("the peerbot host process is not running")
        ident = next(self._ids)
        result = gevent.event.AsyncResult()
        self._waiting[ident] = result
        try:
            self._write({"id": ident, "op": op, **fields})
            reply: dict[str, Any] = result.get(timeout=timeout)
        except gevent.Timeout:
            raise HostError(f"the peerbot host did not answer {op!r} within {timeout:g} s") from None
        finally:
            self._waiting.pop(ident, None)
        if not reply.get("ok"):
            raise rebuild_error(reply.get("error") or {})
        return reply

    def notify(self, op: str, **fields: Any) -> None:
        """Send a command without waiting for its reply (a hang-up from a greenlet being killed)."""
        if self.alive:
            try:
                self._write({"op": op, **fields})
            except OSError:
                pass

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Close every session, end the host and reap it; kill it if it does not end in ``timeout``."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None and not self._gone:
            try:
                self.request("shutdown", timeout=timeout)
            except (HostError, OSError):
                pass
        if self._sock is not None:
            self._sock.close()  # end of file: a host that missed the shutdown ends too
        try:
            proc.wait(timeout=timeout)
        except gevent.subprocess.TimeoutExpired:
            log.warning("the peerbot host process %s did not end in %g s: killed", proc.pid, timeout)
            proc.kill()
            proc.wait()
        self._gone = True
        if self._reader is not None:
            self._reader.kill(block=False)

    def _write(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self._write_lock:  # sendall may yield midway: one line at a time
            self._sock.sendall(data)

    def _read(self) -> None:
        stream = self._sock.makefile("rb")
        try:
            for line in stream:
                message = json.loads(line)
                if message.get("op") == "ready":
                    self._ready.set()
                    continue
                waiting = self._waiting.get(message.get("id"))
                if waiting is not None:
                    waiting.set(message)
        except (OSError, ValueError):
            log.debug("reading from the peerbot host failed", exc_info=True)
        finally:
            self._gone = True
            self._ready.set()
            gone = HostError("the peerbot host process ended")
            for waiting in list(self._waiting.values()):
                waiting.set_exception(gone)


_bridge: Bridge | None = None
_lock = gevent.lock.Semaphore()


def bridge() -> Bridge:
    """This process's host, started on first use (one per Locust worker, shared by its users)."""
    global _bridge
    with _lock:  # users spawned together wait for the one host being started
        if _bridge is None or not _bridge.alive:
            if _bridge is not None:
                _bridge.stop(timeout=1)
            _bridge = Bridge()
            _bridge.start()
        return _bridge


def running_bridge() -> Bridge | None:
    """This process's host if it was started and still runs; never starts one."""
    return _bridge if _bridge is not None and _bridge.alive else None


def stop_bridge() -> None:
    """Stop this process's host, if it runs (Locust is quitting)."""
    global _bridge
    with _lock:
        if _bridge is not None:
            _bridge.stop()
            _bridge = None
