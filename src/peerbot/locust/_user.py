"""``PeerbotUser``: a Locust user whose tasks hold peerbot sessions, reported as Locust requests.

What Locust's statistics (web UI, ``--csv``, the master's totals) show, one row each:

=========== ======================== ============================================================
type        name                     response time column holds
=========== ======================== ============================================================
``WebRTC``  ``connect``              ms from ``connect()`` to media flowing (signalling, ICE, DTLS);
                                     a failure carries the typed error (``OrgaAIAuthenticationError``…)
``WebRTC``  ``first audio``          ms from ``connect()`` to the first received audio frame; a
                                     failure (``MediaError``) when a call heard nothing
``WebRTC``  ``call``                 ms from ``connect()`` to the end of the hang-up; a failure
                                     (``SessionEndedError``) when the session ended on its own
``media``   ``audio_coverage_percent`` the call's figure of that metric (``peerbot.quality.metrics``:
            ``loss_percent`` …       the last value of a cumulative one, the mean of a gauge), one
                                     sample per completed call, in the metric's unit (%, ms, MOS)
=========== ======================== ============================================================

So a media row's Average, Min and Max are the figure over the calls (exact); Locust rounds the
values it keeps for percentiles to whole numbers. The "Aggregated" row mixes milliseconds and
media figures: read the rows. Requests/s of a media row is completed calls per second.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gevent
from locust import User, events
from locust.env import Environment
from locust.runners import MasterRunner

from ..errors import MediaError
from ._bridge import Bridge, bridge, rebuild_error, running_bridge, stop_bridge

__all__ = ["CallResult", "HeldSession", "PeerbotUser", "MEDIA", "WEBRTC"]

WEBRTC = "WebRTC"
"""The request type of the ``connect``, ``first audio`` and ``call`` rows."""
MEDIA = "media"
"""The request type of the media figures' rows."""

_sids = itertools.count(1)


@dataclass(frozen=True)
class CallResult:
    """What a hung-up session reports: its duration, time to first audio, the call's media figures
    (every metric of ``peerbot.quality.metrics``, ``None`` when not measured) and its error, if it
    ended on its own."""

    duration_ms: float
    first_audio_ms: float | None
    metrics: Mapping[str, float | None] = field(default_factory=dict)
    error: Exception | None = None


class HeldSession:
    """A session the worker's peerbot host holds for a user: ``stats()``, ``update()``, ``hang_up()``.

    Returned by ``PeerbotUser.connect()``; usable as a context manager that hangs up.
    """

    def __init__(self, user: PeerbotUser, host: Bridge, sid: str, setup_ms: float, started: float) -> None:
        self.user = user
        self._started = started
        self.sid = sid
        self.setup_ms = setup_ms
        self._host = host
        self.result: CallResult | None = None

    def stats(self) -> dict[str, float | None]:
        """The session's figures now (``StatsReport.to_metrics()``)."""
        reply = self._host.request("stats", timeout=self.user.request_timeout, sid=self.sid)
        return dict(reply["metrics"])

    def update(self, **fields: Any) -> None:
        """``session.update`` on the data channel (``voice=``, ``instructions=``…)."""
        self._host.request("update", timeout=self.user.request_timeout, sid=self.sid, fields=fields)

    def hang_up(self, name: str = "call") -> CallResult:
        """Hang up and report the call (``call``, ``first audio`` and the media rows) to Locust."""
        if self.result is not None:
            return self.result
        try:
            reply = self._host.request("close", timeout=self.user.request_timeout, sid=self.sid)
        except Exception as exc:  # the host died or hung: the call failed, not the task
            self.result = CallResult((time.perf_counter() - self._started) * 1000, None, {}, exc)
            self.user._fire(WEBRTC, name, self.result.duration_ms, exc)
            return self.result
        finally:
            self.user._held.pop(self.sid, None)
        error = rebuild_error(reply["error"]) if reply.get("error") else None
        self.result = CallResult(reply["duration_ms"], reply.get("first_audio_ms"), reply.get("metrics") or {}, error)
        self.user._report_call(self.result, name)
        return self.result

    def abandon(self) -> None:
        """Hang up without waiting or reporting (the user's greenlet is being stopped)."""
        self.user._held.pop(self.sid, None)
        if self.result is None:
            self._host.notify("close", sid=self.sid)

    def __enter__(self) -> HeldSession:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        if kind is None:
            self.hang_up()
        else:
            self.abandon()


class PeerbotUser(User):
    """A Locust user holding peerbot sessions in its worker's peerbot host process.

    Configure by class attributes: ``host`` (Locust's ``--host``: an Orga base URL such as the
    embedded server's; else ``ORGA_BASE_URL``), ``api_key`` / ``user_email`` (else ``ORGA_API_KEY`` /
    ``ORGA_USER_EMAIL``, read in the worker's environment), ``source`` (as ``peerbot call --source``:
    ``tone``, ``tone:HZ``, ``silence``, a file path, ``FILE:loop`` or None), ``connect_options``
    (more keyword arguments of ``peerbot.orga.connect``, JSON-able: ``voice``, ``impair`` as a spec
    string…), ``media_metrics`` (which figures become Locust rows) and ``read_audio`` (read every
    received frame as an application would; by default only the first, to time it).

    Write tasks with ``self.call(seconds)``, or ``self.connect()`` and the ``HeldSession`` it returns.
    """

    abstract = True
    source: ClassVar[str | None] = "tone"
    api_key: ClassVar[str | None] = None
    user_email: ClassVar[str | None] = None
    connect_options: ClassVar[Mapping[str, Any]] = {}
    media_metrics: ClassVar[tuple[str, ...]] = ("audio_coverage_percent", "loss_percent", "jitter_ms", "rtt_ms",
                                                "mos")
    read_audio: ClassVar[bool] = False
    request_timeout: ClassVar[float] = 60.0  # s for any one command to the host (connect, hang-up…)

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._held: dict[str, HeldSession] = {}

    def connect(self, name: str = "connect", **options: Any) -> HeldSession:
        """Join an Orga session (``options`` override ``connect_options``) and report the set-up as
        a ``WebRTC`` request ``name``; a failure is reported with the typed error, then raised."""
        settings = {"source": self.source, "read_audio": self.read_audio, "api_key": self.api_key,
                    "user_email": self.user_email, "base_url": self.host or os.environ.get("ORGA_BASE_URL"),
                    **self.connect_options, **options}
        settings = {key: value for key, value in settings.items() if value is not None or key == "source"}
        sid = f"{os.getpid()}-{next(_sids)}"
        started = time.perf_counter()
        try:
            host = bridge()
            reply = host.request("connect", timeout=self.request_timeout, sid=sid, options=settings)
        except Exception as exc:
            self._fire(WEBRTC, name, (time.perf_counter() - started) * 1000, exc)
            raise
        except BaseException:  # stopped while connecting: the host hangs up once it is connected
            host_now = running_bridge()
            if host_now is not None:
                host_now.notify("close", sid=sid)
            raise
        session = HeldSession(self, host, sid, reply["setup_ms"], started)
        self._held[sid] = session
        self._fire(WEBRTC, name, session.setup_ms)
        return session

    def call(self, seconds: float = 10.0, *, name: str = "call", **options: Any) -> CallResult | None:
        """Connect, hold the session ``seconds`` (the host keeps sending and receiving), hang up and
        report it all; None when the connection failed (already reported as a failure)."""
        try:
            session = self.connect(**options)
        except Exception:
            return None
        try:
            gevent.sleep(seconds)
        except BaseException:  # stopped mid-call: the host hangs up, nothing half-measured is reported
            session.abandon()
            raise
        return session.hang_up(name)

    def on_stop(self) -> None:
        for session in list(self._held.values()):
            session.abandon()

    def _report_call(self, result: CallResult, name: str) -> None:
        self._fire(WEBRTC, name, result.duration_ms, result.error)
        if result.first_audio_ms is not None:
            self._fire(WEBRTC, "first audio", result.first_audio_ms)
        else:
            self._fire(WEBRTC, "first audio", result.duration_ms, MediaError("no audio received during the call"))
        for metric in self.media_metrics:
            value = result.metrics.get(metric)
            if value is not None:  # not measured is not 0
                self._fire(MEDIA, metric, float(value))

    def _fire(self, request_type: str, name: str, value: float, exception: BaseException | None = None) -> None:
        self.environment.events.request.fire(request_type=request_type, name=name, response_time=value,
                                             response_length=0, exception=exception, context=self.context())


def _uses_peerbot(environment: Environment) -> bool:
    if isinstance(environment.runner, MasterRunner):
        return False  # the master runs no users: its workers have the hosts
    return any(issubclass(cls, PeerbotUser) for cls in environment.user_classes or ())


def _start_host(environment: Environment, **_: Any) -> None:
    if _uses_peerbot(environment):
        gevent.spawn(_warm_up)  # the host's imports overlap the spawning of users


def _warm_up() -> None:
    try:
        bridge()
    except Exception:
        pass  # the first connect reports it


def _hang_up_all(environment: Environment, **_: Any) -> None:
    # Users stopped mid-call asked for their hang-ups already; this one covers any a kill cut short.
    if _uses_peerbot(environment):
        host = running_bridge()
        if host is not None:
            host.notify("close_all")


def _stop_host(environment: Environment, **_: Any) -> None:
    stop_bridge()


# Listeners of the process's Locust events; calls, not decorators: Locust's untyped decorator would untype them.
events.test_start.add_listener(_start_host)
events.test_stop.add_listener(_hang_up_all)
events.quitting.add_listener(_stop_host)
