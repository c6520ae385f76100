"""Ctrl-C and SIGTERM as a request to hang up, with the shell's exit status for each (130, 143)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


class Interrupted(Exception):
    """A signal came before what was awaited (connecting, waiting for a ring) had finished."""


class HangUpSignal:
    """SIGINT/SIGTERM on the running loop: remembered, never a traceback. Make it inside the loop."""

    def __init__(self) -> None:
        self.signal: signal.Signals | None = None
        self._event = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._caught, sig)

    def _caught(self, sig: signal.Signals) -> None:
        if self.signal is None:  # the first one decides the exit status
            self.signal = sig
        self._event.set()

    @property
    def caught(self) -> bool:
        return self._event.is_set()

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process ended by this signal: 128 + its number."""
        return 128 + int(self.signal or signal.SIGINT)

    @property
    def reason(self) -> str:
        """How the summary names the signal: ``interrupted`` (SIGINT, Ctrl-C) or ``terminated`` (SIGTERM)."""
        return "terminated" if self.signal == signal.SIGTERM else "interrupted"

    async def wait(self) -> None:
        await self._event.wait()

    async def run(self, step: Awaitable[T]) -> T:
        """Await ``step``; a signal cancels it (its own clean-up runs) and raises ``Interrupted``."""
        task = asyncio.ensure_future(step)
        waiter = asyncio.create_task(self._event.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled() and self.caught:
            raise Interrupted
        return task.result()
