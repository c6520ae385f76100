"""Setup time of N simultaneous joins, for ``peerbot bench density``.

Both sides are timed from the start of a join (``connect()``, or a new ``RTCPeerConnection``) to
"connected" (signalling, offer/answer, ICE and DTLS done: media can flow), with every join started
at the same moment, against a reflecting server (``peerbot serve --reflect``) in its own process:

- peerbot's load mode: ``peerbot.load.run`` with ``media="encoded"``, i.e. what ``peerbot load -n N
  --media encoded`` runs (its worker processes, one per core), at a spawn rate so high that the
  joins start together. Against the bench's own reflecting server, which has served calls before
  (``server="bench"``), or with ``reflect=True`` and a fresh server of the run's own
  (``server="fresh"``: exactly ``peerbot load --media encoded --reflect``, a first call's one-off
  costs on the far side included);
- plain aiortc: the bench's own aiortc participants (live Opus encode, aiortc's decoder), the same
  N split over as many processes, each told "go" once all of them have imported and warmed up,
  against the bench's server.

Percentiles are linear-interpolated over the joins, as ``peerbot load``'s summary does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
from dataclasses import replace
from typing import Any

SIMULTANEOUS = 1e6  # joins per second: every spawn offset under a millisecond, i.e. all at once
READY_TIMEOUT = 60.0  # seconds for a join process to import and warm up


def _percentile(values: list[float], percent: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * percent / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _figures(mode: str, n: int, server: str, processes: int, setups_ms: list[float], errors: dict[str, int],
             how: str) -> dict[str, Any]:
    return {"mode": mode, "joins": n, "server": server, "processes": processes, "connected": len(setups_ms),
            "failed": n - len(setups_ms), "errors": errors,
            "setup_ms_p50": _percentile(setups_ms, 50), "setup_ms_p95": _percentile(setups_ms, 95),
            "setup_ms_max": max(setups_ms, default=None), "how": how}


def _load_config(n: int) -> Any:
    """The ``peerbot.load`` run of ``n`` joins at once (its ``worker_count``: the processes used)."""
    from ..load import LoadConfig

    # Long enough for the slowest join to connect while the others already send and receive.
    return LoadConfig(participants=n, duration=3.0 + n / 40, spawn_rate=SIMULTANEOUS, media="encoded")


async def peerbot_joins(n: int, server: tuple[str, str] | None = None) -> dict[str, Any]:
    """``n`` joins at once in peerbot's load mode, through ``peerbot.load``: against ``server``
    (base URL, API key), or, when None, a fresh reflecting server of the run's own."""
    from ..load import run
    from .bench_density import USER_EMAIL

    config = _load_config(n)
    if server is None:
        config = replace(config, reflect=True, local=True)
        how = "peerbot load --media encoded --reflect: its own fresh server"
    else:
        config = replace(config, local=False, base_url=server[0], api_key=server[1], user_email=USER_EMAIL)
        how = "peerbot load --media encoded against the bench's serve --reflect"
    result = await run(config)
    setups = [p.setup_ms for p in result.participants if p.setup_ms is not None]
    figures = _figures("peerbot", n, "fresh" if server is None else "bench", config.worker_count, setups,
                       dict(result.errors), f"{how}, {config.worker_count} worker process(es), all joins at once")
    figures["generator_limited"] = result.generator_limited
    return figures


async def aiortc_joins(n: int, servers: list[tuple[str, str]], processes: int | None = None) -> dict[str, Any]:
    """``n`` plain aiortc joins at once, split over ``processes`` processes started together (by
    default as many as ``peerbot load`` gives the same joins: one per core)."""
    processes = processes or _load_config(n).worker_count
    shares = [n // processes + (k < n % processes) for k in range(min(processes, n))]
    procs = []
    try:
        for k, share in enumerate(shares):
            argv = [sys.executable, "-m", "peerbot.cli.bench_density", "joins", "aiortc", str(share)]
            # Each process starts on its own server (with several), as the steps spread participants.
            for base_url, key in servers[k % len(servers):] + servers[:k % len(servers)]:
                argv += ["--server", f"{base_url},{key}"]
            procs.append(await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL))
        for proc in procs:  # every process imported and warmed up before any join starts
            message = await asyncio.wait_for(_message(proc), READY_TIMEOUT)
            if message.get("kind") != "ready":
                raise RuntimeError(f"a join process did not start: {message}")
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
        await asyncio.gather(*(proc.stdin.drain() for proc in procs if proc.stdin is not None))
        results = await asyncio.wait_for(asyncio.gather(*(_message(proc) for proc in procs)), 60 + n)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
    setups = [ms for r in results for ms in r.get("setups_ms", [])]
    errors: dict[str, int] = {}
    for r in results:
        for name, count in r.get("failures", {}).items():
            errors[name] = errors.get(name, 0) + count
    return _figures("aiortc", n, "bench", len(shares), setups, errors,
                    f"plain aiortc against the bench's serve --reflect, {len(shares)} process(es) (as many as"
                    " peerbot load's workers), all joins at once")


async def _message(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    """The next JSON line the process says (anything else it prints is skipped)."""
    assert proc.stdout is not None
    async for raw in proc.stdout:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if isinstance(message, dict):
            return message
    return {"kind": "exited"}


# --- a join process: python -m peerbot.cli.bench_density joins MODE N --server URL,KEY … ----------


async def _join_at_once(mode: str, n: int, servers: list[tuple[str, str]]) -> dict[str, Any]:
    from ..media.encoded import EncodedAudio
    from .bench_density import _Joiner

    joiner = _Joiner(mode, servers, None if mode == "aiortc" else EncodedAudio.tone(440.0))
    participants = [p for p in await asyncio.gather(*(joiner.join(i) for i in range(n))) if p is not None]
    await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
    return {"setups_ms": [1000 * s for s in joiner.setups], "failures": joiner.failures}


def joins_main(argv: list[str]) -> int:
    """Warm up, say ready, wait for "go" on stdin, join ``n`` at once, say the setup times."""
    from .bench_density import MODES

    parser = argparse.ArgumentParser(prog="peerbot.cli.bench_density joins")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("n", type=int)
    parser.add_argument("--server", action="append", required=True, metavar="URL,KEY")
    args = parser.parse_args(argv)
    servers = [(url, key) for url, _, key in (s.partition(",") for s in args.server)]
    import aiortc  # noqa: F401  (imports and codec set-up are not a join's cost: peerbot load warms up too)
    import av

    from ..orga.client import OrgaClient  # noqa: F401

    av.CodecContext.create("libopus", "w")
    print(json.dumps({"kind": "ready"}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    result = asyncio.run(_join_at_once(args.mode, args.n, servers))
    print(json.dumps({"kind": "result", **result}), flush=True)
    return 0
