"""A participant's event WebSocket (``GET /api/v1/ws?token=…&client_id=…``) as an async iterator.

``OrbitEvents`` reconnects by itself: after a drop with a growing, jittered backoff; after the
server's close code 4001 (token expired) at once, with a fresh token from ``on_token_expired``.
Frames carry a per-user ``seq``; a reconnect asks for ``since=<last seq>`` so that events the
server sent or queued meanwhile are replayed, and duplicates are dropped here.

Received events wait in one inbox: ``async for`` takes them in order, ``wait_for`` takes the first
that matches and leaves the others, so an event that arrives before ``wait_for`` is called is
not lost. httpx has no WebSocket, hence aiohttp.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .._redact import redact
from .._rest import MalformedResponse, read_json
from ..errors import ClientClosedError, OrbitAuthenticationError, OrbitError, OrbitServerError, SessionStateError
from . import routes
from ._http import require_credential, resolve_base_url, shown_url, status_error

__all__ = ["OrbitEvent", "OrbitEvents"]

logger = logging.getLogger("peerbot.orbit")

_CALL_OBJECT_EVENTS = (routes.CALL_INCOMING, routes.CALL_ACCEPTED, routes.CALL_REJECTED)
_HEALTHY_SECONDS = 0.5  # a connection that lived this long (or delivered an event) resets the backoff
_MAX_SEQ = 2**63 - 1  # a larger (or negative) seq is not the server's counter: the event is kept, its seq not


@dataclass(frozen=True)
class OrbitEvent:
    """One event from the WebSocket: its ``noun:verb`` type, its data, and its per-user sequence number."""

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int | None = None

    @property
    def call_id(self) -> str | None:
        """The call this event is about (``data["call_id"]``, or the call object's ``id``)."""
        value = self.data.get("call_id")
        if value is None and self.type in _CALL_OBJECT_EVENTS:
            value = self.data.get("id")
        return value if isinstance(value, str) else None


def parse_frame(text: str | bytes) -> OrbitEvent | None:
    """The event in a text frame ``{"type", "data", "seq"?}``; ``None`` for anything else, never raising.

    A ``seq`` that is not an integer in ``0..2**63-1`` is dropped (the event kept): a hostile or
    broken one must not make every later event look like a replay, nor a huge ``since=``.
    """
    try:
        frame = read_json(text, "a WebSocket frame")
    except MalformedResponse:
        return None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        return None
    data = frame.get("data")
    seq = frame.get("seq")
    return OrbitEvent(
        type=frame["type"],
        data=data if isinstance(data, dict) else {},
        seq=seq if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= _MAX_SEQ else None,
    )


class OrbitEvents:
    """The event stream of one participant; ``async with OrbitEvents(...) as events: async for e in events``.

    ``on_token_expired`` is an async callable returning a fresh user token; without it, an
    expired token ends the stream with ``OrbitAuthenticationError(status=401, code="token_expired")``.
    The first connection's failure is raised by :meth:`connect` (an ``OrbitError``); later ones
    are retried up to ``max_retries`` times in a row, then raised to the consumer. Frames that
    are not events are skipped (logged at debug level), never ending the stream. At most ``max_queued`` unread
    events are kept; past that the oldest are dropped and counted in ``dropped``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        client_id: str | None = None,
        on_token_expired: Callable[[], Awaitable[str]] | None = None,
        *,
        heartbeat: float = 20.0,
        connect_timeout: float = 10.0,
        max_retries: int = 8,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        max_queued: int = 1000,
    ) -> None:
        origin = resolve_base_url(base_url)
        self._url = "ws" + origin[len("http"):] + routes.EVENTS.template
        self._shown_url = shown_url(self._url)
        self._token = require_credential(token, "a user token (from users.create_token)")
        self._client_id = require_credential(
            client_id or os.environ.get("ORBIT_CLIENT_ID"),
            "the publishable key (pass client_id= or set ORBIT_CLIENT_ID)",
        )
        self._on_token_expired = on_token_expired
        self._heartbeat = heartbeat
        self._connect_timeout = connect_timeout
        self._max_retries = max_retries
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._inbox: deque[OrbitEvent] = deque(maxlen=max_queued)
        self._waiters: list[asyncio.Future[None]] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self._done = False
        self._last_seq: int | None = None
        self.reconnects = 0
        self.token_refreshes = 0
        self.dropped = 0

    # --- lifecycle -------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection (raising ``OrbitError`` if refused), then keep it up."""
        if self._done:
            raise ClientClosedError("OrbitEvents is closed (aclose() was called): make a new one")
        if self._task is not None:
            raise SessionStateError("OrbitEvents is already connected: connect() (or 'async with') only once")
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        try:
            self._ws = await self._open()
        except BaseException:
            await self._session.close()
            raise
        self._task = asyncio.create_task(self._run(), name="orbit-events")

    async def aclose(self) -> None:
        """Stop reconnecting and close the connection; iteration ends once the inbox is empty."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        if self._session is not None:
            await self._session.close()
        self._finish()

    async def __aenter__(self) -> OrbitEvents:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    @property
    def url(self) -> str:
        """The WebSocket URL, without its query (which holds the token)."""
        return self._shown_url

    def __repr__(self) -> str:
        return (
            f"OrbitEvents(url={self._shown_url!r}, client_id={self._client_id!r}, token={redact(self._token)!r}, "
            f"connected={self.connected})"
        )

    # --- reading ---------------------------------------------------------------------

    def __aiter__(self) -> OrbitEvents:
        return self

    async def __anext__(self) -> OrbitEvent:
        self._require_started()
        while not self._inbox:
            if self._done:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            await self._wait()
        return self._inbox.popleft()

    async def wait_for(
        self, type: str | tuple[str, ...], predicate: Callable[[OrbitEvent], bool] | None = None,
        timeout: float | None = 10.0,
    ) -> OrbitEvent:
        """The first unread event of ``type`` (or of any of several types, matching ``predicate``),
        taken out of the inbox.

        Raises ``TimeoutError`` after ``timeout`` seconds, or the stream's error if it ended.
        """
        self._require_started()
        types = (type,) if isinstance(type, str) else type
        try:
            async with asyncio.timeout(timeout):
                while True:
                    for index, event in enumerate(self._inbox):
                        if event.type in types and (predicate is None or predicate(event)):
                            del self._inbox[index]
                            return event
                    if self._done:
                        raise self._error or ClientClosedError("the Orbit event stream is closed")
                    await self._wait()
        except TimeoutError:
            raise TimeoutError(f"no {type!r} event within {timeout:g} s") from None

    def _require_started(self) -> None:
        if self._task is None and not self._done:
            raise SessionStateError("call connect() (or use 'async with') before reading Orbit events")

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def _finish(self) -> None:
        self._done = True
        self._wake()

    # --- the connection --------------------------------------------------------------

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        assert self._session is not None
        params = {"token": self._token, "client_id": self._client_id}
        if self._last_seq is not None:
            params["since"] = str(self._last_seq)
        try:
            async with asyncio.timeout(self._connect_timeout):
                ws = await self._session.ws_connect(self._url, params=params, heartbeat=self._heartbeat)
        except aiohttp.WSServerHandshakeError as exc:
            # The exception's text holds the URL, token included: never pass it on (hence from None).
            raise status_error(
                f"Orbit event WebSocket refused at {self._shown_url}: HTTP {exc.status}",
                status=exc.status,
                code=_handshake_code(exc.status),
            ) from None
        except TimeoutError:
            raise OrbitServerError(
                f"Orbit event WebSocket timed out after {self._connect_timeout:g} s at {self._shown_url}",
                status=0,
                code="timeout",
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = str(exc).replace(self._token, redact(self._token)) or type(exc).__name__
            raise OrbitServerError(
                f"Orbit event WebSocket unreachable at {self._shown_url}: {reason}", status=0, code="unreachable"
            ) from None
        logger.debug("Orbit events: connected to %s (token %s)", self._shown_url, redact(self._token))
        return ws

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        try:
            while True:
                if self._ws is None:
                    try:
                        self._ws = await self._open()
                    except OrbitError as exc:
                        if not _retryable(exc):
                            raise
                        failures = self._count_failure(failures, exc)
                        await asyncio.sleep(self._delay(failures))
                        continue
                    self.reconnects += 1
                opened = loop.time()
                received = await self._pump(self._ws)
                code, self._ws = self._ws.close_code, None
                healthy = received > 0 or loop.time() - opened >= _HEALTHY_SECONDS
                failures = 0 if healthy else failures + 1
                if failures > self._max_retries:
                    raise OrbitServerError(
                        f"Orbit event WebSocket kept closing ({failures} times in a row, last code {code})",
                        status=0,
                        code="unreachable",
                    )
                if code == routes.CLOSE_TOKEN_EXPIRED:
                    await self._refresh_token()
                    if failures:
                        await asyncio.sleep(self._delay(failures))
                    continue
                if code == routes.CLOSE_FORBIDDEN:
                    raise OrbitAuthenticationError(
                        "Orbit closed the event WebSocket: forbidden", status=403, code="forbidden"
                    )
                logger.info("Orbit events: connection lost (close code %s), reconnecting", code)
                await asyncio.sleep(self._delay(max(failures, 1)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # handed to the consumer by __anext__ / wait_for
            self._error = exc
        finally:
            self._finish()

    def _count_failure(self, failures: int, exc: OrbitError) -> int:
        failures += 1
        if failures > self._max_retries:
            raise status_error(
                f"gave up reconnecting after {self._max_retries} attempts: {exc.message}",
                status=exc.status,
                code=exc.code,
            )
        logger.info("Orbit events: reconnect attempt %d failed (%s)", failures, exc.code)
        return failures

    def _delay(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        # The exponent is capped: 2.0 ** 1024 overflows, and max_retries may be large.
        return min(self._max_backoff, self._backoff * 2.0 ** min(failures - 1, 32)) * random.uniform(0.5, 1.0)

    async def _refresh_token(self) -> None:
        if self._on_token_expired is None:
            raise OrbitAuthenticationError(
                "the user token expired and no on_token_expired callback was given", status=401, code="token_expired"
            )
        logger.debug("Orbit events: token expired, asking for a fresh one")
        self._token = require_credential(await self._on_token_expired(), "on_token_expired() must return a token")
        self.token_refreshes += 1

    async def _pump(self, ws: aiohttp.ClientWebSocketResponse) -> int:
        """Read frames into the inbox until the connection closes; return how many events came."""
        received = 0
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    event = parse_frame(message.data)
                    if event is None:
                        # Debug only: a server sending junk must not flood the application's logs.
                        logger.debug("Orbit events: skipped a frame that is not an event (%d chars)",
                                     len(message.data))
                    elif self._is_new(event):
                        received += 1
                        self._push(event)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    logger.debug("Orbit events: skipped a binary frame (%d bytes)", len(message.data))
                elif message.type is aiohttp.WSMsgType.ERROR:
                    break
        except (aiohttp.ClientError, ConnectionError):
            pass
        if not ws.closed:
            await ws.close()
        return received

    def _is_new(self, event: OrbitEvent) -> bool:
        """False for a replayed event already seen (its ``seq`` is not past the last one)."""
        if event.seq is None:
            return True
        if self._last_seq is not None and event.seq <= self._last_seq:
            return False
        self._last_seq = event.seq
        return True

    def _push(self, event: OrbitEvent) -> None:
        if len(self._inbox) == self._inbox.maxlen:
            self.dropped += 1
        self._inbox.append(event)
        self._wake()


def _retryable(exc: OrbitError) -> bool:
    return exc.status == 0 or exc.status >= 500


def _handshake_code(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "handshake_failed")
