"""Offline speech recognition for the voice agent: pocketsphinx's US English model, in a child process.

pocketsphinx holds the GIL while it decodes (its final pass over a 3 s sentence takes ~130 ms), so
in a thread it would stall every call's audio on the event loop; a child process per call keeps
the loop free, uses another core, and is fed as the caller speaks so that only that final pass is
left when the utterance ends. The child is ``_recognizer_worker`` (its protocol is described there).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import sys
from pathlib import Path

import numpy as np

from ._recognizer_worker import AUDIO, BEGIN, END, SAMPLE_RATE

log = logging.getLogger(__name__)

_WORKER = Path(__file__).with_name("_recognizer_worker.py")
_STOP_SECONDS = 2.0

__all__ = ["SAMPLE_RATE", "SpeechRecognizer"]


class SpeechRecognizer:
    """Utterances in (16 kHz int16 mono), text out: ``begin`` … ``feed`` … ``await finish()``.

    ``start`` launches the child and returns at once; audio given before its model has loaded
    (~0.5 s) waits in the pipe. If the child cannot run, every utterance is heard as ``""``.
    """

    def __init__(self, name: str = "recognizer") -> None:
        self.name = name
        self._process: asyncio.subprocess.Process | None = None
        self._waiting: collections.deque[asyncio.Future[str]] = collections.deque()
        self._tasks: list[asyncio.Task[None]] = []
        self._dead = False

    async def start(self) -> None:
        """Launch the child process (``-P``: the worker's folder must not shadow any module)."""
        try:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-P", str(_WORKER),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            log.warning("%s: cannot start the speech recognizer: %s", self.name, exc)
            self._dead = True
            return
        self._tasks = [asyncio.ensure_future(self._read_results()), asyncio.ensure_future(self._read_log())]

    def begin(self, pcm: np.ndarray) -> None:
        """Start an utterance with ``pcm`` (its first audio, lead-in included)."""
        self._write(BEGIN, b"")
        self.feed(pcm)

    def feed(self, pcm: np.ndarray) -> None:
        """More audio of the utterance in progress."""
        if pcm.size:
            self._write(AUDIO, np.ascontiguousarray(pcm, dtype=np.int16).tobytes())

    async def finish(self, timeout: float = 5.0) -> str:
        """End the utterance and return what was recognised (``""``: nothing, or no recognizer)."""
        if self._dead or self._process is None:
            return ""
        result = asyncio.get_running_loop().create_future()
        self._waiting.append(result)
        self._write(END, b"")
        try:
            return await asyncio.wait_for(asyncio.shield(result), timeout)
        except asyncio.TimeoutError:
            log.warning("%s: no transcript within %g s", self.name, timeout)
            return ""

    async def close(self) -> None:
        """End the child (it exits when its input closes) and the tasks reading it; never raises."""
        process, self._process = self._process, None
        self._dead = True
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), _STOP_SECONDS)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._fail_waiting()

    def _write(self, kind: bytes, payload: bytes) -> None:
        process = self._process
        if self._dead or process is None or process.stdin is None or process.stdin.is_closing():
            return
        # Never awaited (drain): the pipe is fed at the speed of speech, far below what the child reads.
        process.stdin.write(kind + len(payload).to_bytes(4, "big") + payload)

    async def _read_results(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        ready = await stdout.readline()
        if ready.strip() == b"ready":
            log.debug("%s: model loaded", self.name)
            while line := await stdout.readline():
                text = json.loads(line)
                if self._waiting:
                    future = self._waiting.popleft()
                    if not future.done():
                        future.set_result(text if isinstance(text, str) else "")
        if not self._dead:
            log.warning("%s: the speech recognizer exited; nothing more will be understood", self.name)
        self._dead = True
        self._fail_waiting()

    async def _read_log(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        while line := await self._process.stderr.readline():
            log.debug("%s: %s", self.name, line.decode(errors="replace").rstrip())

    def _fail_waiting(self) -> None:
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_result("")
