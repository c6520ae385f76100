"""What both local servers share: listening on host:port (0 picks one) and the ``async with`` life."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from aiohttp import web


class Listener:
    """An aiohttp app on ``host:port``; subclasses set ``self.app`` and may extend ``stop()``."""

    app: web.Application

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The port it listens on; the picked one when started with ``port=0``."""
        if self._port is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://host:port``: what a client takes as its base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Start listening."""
        if self._runner is not None:
            raise RuntimeError("the server is already started")
        # No access log: query strings carry emails and tokens.
        runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def serve_until_signal(make: Callable[[], Listener], on_ready: Callable[[Any], None]) -> None:
    """Run the server ``make()`` builds until SIGINT or SIGTERM (for ``peerbot serve``)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on Windows, nor off the main thread
            pass
    async with make() as server:
        on_ready(server)
        await stop.wait()
