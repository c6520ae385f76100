"""What both local servers share: listening on host:port (0 picks one) and the ``async with`` life.

aiohttp waits for a request head as long as the client likes, so a client that connects and
sends nothing, or trickles a byte a second, would hold a connection forever. Each connection
here must deliver its first request head within ``read_timeout`` seconds, and each next one
within ``max(read_timeout, MIN_IDLE_TIMEOUT)`` of the previous response: an idle keep-alive
connection is closed then. The floor keeps the server from closing an idle connection just as a
client reuses it (httpx keeps them 5 s), which would fail that request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Self

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from ..errors import SessionStateError
from ._json_api import BODY_TIMEOUT_KEY, error_response

log = logging.getLogger(__name__)

_HEAD_END = b"\r\n\r\n"
MIN_IDLE_TIMEOUT = 15.0
_DEADLINES: web.AppKey[dict[asyncio.BaseTransport, _HeadDeadline]] = web.AppKey("head_deadlines")


class _ProtocolErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's connection logger, with what it reports as exceptions logged at debug.

    The handlers' own failures never reach it (``json_errors`` answers them), so what is left is
    malformed HTTP from a client (a request line past 8 KiB, a bad header): one request must not
    be able to write a traceback into the log.
    """

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self.debug(msg, *args, **kwargs)


class _HeadDeadline(asyncio.Protocol):
    """Wraps aiohttp's protocol: closes the connection if no complete request head arrives in time."""

    def __init__(self, inner: asyncio.Protocol, timeout: float, idle_timeout: float,
                 registry: dict[asyncio.BaseTransport, _HeadDeadline]) -> None:
        self._inner = inner
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        self._registry = registry
        self._tail = b""
        self._timer: asyncio.TimerHandle | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._registry[transport] = self
        self._arm(self._timeout)
        self._inner.connection_made(transport)

    def expect_next_head(self) -> None:
        """A response is on its way: the next request head must come within the idle timeout."""
        if self._timer is None:
            self._tail = b""
            self._arm(self._idle_timeout)

    def _arm(self, timeout: float) -> None:
        self._timer = asyncio.get_running_loop().call_later(timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            seen = self._tail + data
            if _HEAD_END in seen:
                self._timer.cancel()
                self._timer = None  # from here on aiohttp's keep-alive timeout and the body timeout apply
            else:
                self._tail = seen[-(len(_HEAD_END) - 1):]
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._transport is not None:
            self._registry.pop(self._transport, None)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def _expire(self) -> None:
        self._timer = None
        log.debug("closing a connection that sent no complete request head in time")
        if self._transport is not None:
            self._transport.abort()


class _JsonErrorHandler(RequestHandler):
    """aiohttp's protocol, answering malformed HTTP (a request line past 8 KiB, a bad header)
    with the servers' JSON error body instead of plain text. aiohttp answers those before any
    application code runs, through ``handle_error``, so that is what is overridden."""

    __slots__ = ()  # the same layout as RequestHandler, so an instance's class can be switched

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        response = super().handle_error(request, status, exc, message)  # logs (at debug, see _ProtocolErrorLog)
        if not 400 <= status < 500:
            return response
        if isinstance(exc, LineTooLong):
            code, text = "request_too_large", "the request line or a header is too long (at most 8 KiB)"
        else:
            code, text = "bad_request", "the request is not well-formed HTTP"
        answer = error_response(status, code, text)
        answer.force_close()  # as aiohttp does: the parser's state is unknown from here
        return answer


def _json_parse_errors(protocol: RequestHandler) -> RequestHandler:
    # aiohttp's Server builds the RequestHandler itself (with the runner's settings), and the
    # class has __slots__: switching the instance's class is the way in without its private fields.
    protocol.__class__ = _JsonErrorHandler
    return protocol


async def _expect_next_head(request: web.Request, response: web.StreamResponse) -> None:
    # 101: the connection now carries WebSocket frames, not requests.
    deadline = request.app[_DEADLINES].get(request.transport) if request.transport is not None else None
    if deadline is not None and response.status != 101:
        deadline.expect_next_head()


class Listener:
    """An aiohttp app on ``host:port``; subclasses build ``self.app`` with :meth:`new_app` and may
    extend ``stop()``. ``read_timeout`` bounds the wait for a request head, a body, and an idle
    keep-alive connection."""

    app: web.Application

    def __init__(self, host: str, port: int, *, read_timeout: float = 10.0, reuse_port: bool = False) -> None:
        self.host = host
        self.read_timeout = read_timeout
        self.reuse_port = reuse_port  # several processes may listen on the port (SO_REUSEPORT)
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._server: asyncio.Server | None = None
        self._port: int | None = None

    @property
    def idle_timeout(self) -> float:
        """Seconds a keep-alive connection may wait for its next request."""
        return max(self.read_timeout, MIN_IDLE_TIMEOUT)

    def new_app(self, max_body_size: int, middlewares: Any) -> web.Application:
        """An aiohttp application with the body size limit and the body and head read timeouts."""
        app = web.Application(client_max_size=max_body_size, middlewares=middlewares)
        app[BODY_TIMEOUT_KEY] = self.read_timeout
        app[_DEADLINES] = {}
        app.on_response_prepare.append(_expect_next_head)
        return app

    @property
    def port(self) -> int:
        """The port it listens on; the picked one when started with ``port=0``."""
        if self._port is None:
            raise SessionStateError("the server is not started: use 'async with' or await start()")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``: what a client takes as its base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening."""
        if self._runner is not None:
            raise SessionStateError("the server is already started")
        # No access log: query strings carry emails and tokens.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0, keepalive_timeout=self.idle_timeout,
                               logger=_ProtocolErrorLog(logging.getLogger("peerbot.local.http"), {}))
        await runner.setup()
        handler = runner.server
        assert handler is not None  # set by setup()
        try:
            self._server = await asyncio.get_running_loop().create_server(
                lambda: _HeadDeadline(_json_parse_errors(handler()), self.read_timeout, self.idle_timeout,
                                      self.app[_DEADLINES]),
                self.host, self._requested_port, reuse_port=self.reuse_port or None
            )
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        server, runner, self._server, self._runner = self._server, self._runner, None, None
        if server is not None:
            server.close()
        if runner is not None:
            await runner.cleanup()  # closes the open connections, waiting at most shutdown_timeout

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
