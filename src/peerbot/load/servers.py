"""The far side of a local load test: ``peerbot serve`` (Orga) or ``peerbot serve --orbit`` in a
process of its own, so it never shares the load generator's GIL. Its own session too: the
terminal's Ctrl-C reaches the runner, which hangs up first and then stops the server. On Linux it
is also sent SIGTERM when the runner dies (a parent-death signal): nothing is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..errors import PeerbotError

__all__ = ["cpu_seconds", "local_server"]

START_TIMEOUT = 30.0


class _ServerStartError(PeerbotError):
    """The local server process did not start."""


@contextlib.asynccontextmanager
async def local_server(*, orbit: bool, reflect: bool = False,
                       calls: int = 32) -> AsyncIterator[tuple[dict[str, Any], int]]:
    """Yield what the workers need to reach a fresh local server (Orga ``connect`` keyword
    arguments, or for Orbit the secret key, publishable key and base URL) and its process id. The Orga server holds
    ``calls`` live calls at most (its own default cap is 32: a bigger test is not refused by it)."""
    if orbit:
        secret, publishable = "sk_load_" + secrets.token_hex(8), "pk_load_" + secrets.token_hex(8)
        args = ["--orbit", "--no-demo", "--secret-key", secret, "--publishable-key", publishable]
    else:
        key = "orga_load_" + secrets.token_hex(8)
        args = ["--api-key", key, "--max-calls", str(max(32, calls)), *(["--reflect"] if reflect else [])]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerbot.cli.main", "serve", "--port", "0", *args,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=_die_with_parent(),
    )
    assert proc.stdout is not None  # stdout=PIPE
    drain: asyncio.Task[None] | None = None
    try:
        try:
            line = (await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)).decode(errors="replace")
        except asyncio.TimeoutError:
            raise _ServerStartError(f"the local server did not start within {START_TIMEOUT:g} s") from None
        match = re.search(r"(http://\S+)", line)
        if not match:
            rest = (await proc.stdout.read()).decode(errors="replace")
            raise _ServerStartError(f"the local server did not start: {(line + rest).strip()[-300:]}")
        drain = asyncio.create_task(_drain(proc.stdout))  # a full pipe would block the server
        base_url = match.group(1)
        if orbit:
            yield {"secret_key": secret, "client_id": publishable, "base_url": base_url,
                   "run_id": secrets.token_hex(4)}, proc.pid
        else:
            yield {"api_key": key, "base_url": base_url, "user_email": "load@localhost.localdomain"}, proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except asyncio.TimeoutError:
                proc.kill()
                await proc.wait()
        if drain is not None:
            drain.cancel()
            await asyncio.gather(drain, return_exceptions=True)


def _die_with_parent() -> Callable[[], None] | None:
    """For the server's child, before exec (Linux): SIGTERM it when the process that started it dies,
    so a load runner killed outright (SIGKILL, the OOM killer) leaves no server behind. prctl is
    looked up here, in the parent: the child only calls it."""
    if sys.platform != "linux":
        return None
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)
    return lambda: prctl(pr_set_pdeathsig, sigterm, 0, 0, 0) and None


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a process has used so far; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
