"""``peerbot bench``: benchmarks that print figures (they assert nothing)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator

from rich.console import Console
from rich.progress import Progress

from .options import count
from .options import seconds as _seconds
from .orga_target import LOCAL_USER_EMAIL


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bench", help="run a benchmark and print its figures")
    which = p.add_subparsers(dest="bench", required=True, metavar="BENCH")
    setup = which.add_parser("setup", help="time from connect() to the first received audio frame")
    setup.add_argument("--sessions", type=count, default=20, help="sessions per phase (default 20)")
    setup.set_defaults(run=run_setup)
    quality = which.add_parser("quality", help="what N simultaneous calls receive: coverage, concealment, MOS"
                               " (a starved machine must show it)")
    quality.add_argument("--sessions", type=_counts, default=[1, 10, 30], metavar="N[,N…]",
                         help="simultaneous sessions per round (default 1,10,30)")
    quality.add_argument("--duration", type=_seconds, default=8.0, metavar="S", help="seconds per round (default 8)")
    quality.set_defaults(run=run_quality)
    from . import bench_density

    density = which.add_parser("density", help="participants per process that hold full audio: peerbot's cheap"
                               " mode against plain aiortc, side by side")
    bench_density.add_arguments(density)
    density.set_defaults(run=bench_density.run)



def _counts(text: str) -> list[int]:
    return [count(part.strip()) for part in text.split(",")]


def run_quality(args: argparse.Namespace) -> int:
    return asyncio.run(_quality(args.sessions, args.duration))


async def _one_call(base_url: str, key: str, seconds: float) -> dict[str, float | None]:
    from .. import orga
    from ..media import Tone

    async with orga.connect(Tone(), api_key=key, base_url=base_url, user_email=LOCAL_USER_EMAIL) as session:
        frames = 0
        with contextlib.suppress(asyncio.TimeoutError):
            async with asyncio.timeout(seconds):
                async for _ in session.audio_frames():  # consumed, as an application would
                    frames += 1
    figures = session.stats().to_metrics()
    # The whole call's MOS, as the README's thresholds define the plain name: the mean of its
    # seconds, not the last interval's figure.
    mos = [m for sample in session.stats_history() if (m := sample.get("mos")) is not None]
    figures["mos"] = statistics.fmean(mos) if mos else None
    figures["frames_per_s"] = frames / seconds
    return figures


def _spread(values: list[float | None]) -> str:
    """Median and range over the sessions of a round."""
    measured = sorted(v for v in values if v is not None)
    if not measured:
        return "–"
    return f"{statistics.median(measured):.1f} [{measured[0]:.1f}–{measured[-1]:.1f}]"


async def _quality(rounds: list[int], seconds: float) -> int:
    console = Console(soft_wrap=True, markup=False)  # "[min–max]" is text, not a style
    console.print(f"N simultaneous {seconds:g} s calls in this process, the embedded server in another one;"
                  " per round: median [min–max] over the sessions")
    columns = [("audio_coverage_percent", "coverage %"), ("concealed_percent", "concealed %"),
               ("frames_per_s", "frames/s"), ("mos", "MOS"), ("loss_percent", "loss %"), ("jitter_ms", "jitter ms")]
    console.print("  N  " + "".join(f"{title:>20}" for _, title in columns))
    any_failed = False
    async with _server_process() as (base_url, key):
        for n in rounds:
            calls = await asyncio.gather(*(_one_call(base_url, key, seconds) for _ in range(n)),
                                         return_exceptions=True)
            done = [c for c in calls if isinstance(c, dict)]
            failed = len(calls) - len(done)
            row = "".join(f"{_spread([c.get(name) for c in done]):>20}" for name, _ in columns)
            console.print(f"{n:3}  {row}" + (f"   ({failed} failed)" if failed else ""))
            errors = [c for c in calls if not isinstance(c, dict)]
            if errors:
                any_failed = True
                console.print(f"     first failure: {type(errors[0]).__name__}: {errors[0]}")
    console.print("a session that gets all its audio in time: coverage 100 %, 50 frames/s, concealed 0 %")
    return 1 if any_failed else 0


def run_setup(args: argparse.Namespace) -> int:
    return asyncio.run(_setup(args.sessions))


@contextlib.asynccontextmanager
async def _server_process() -> AsyncIterator[tuple[str, str]]:
    """The embedded server in its own process, so client and server do not share one GIL."""
    key = "orga_bench_" + secrets.token_hex(8)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "peerbot.cli.main", "serve", "--port", "0", "--api-key", key,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None  # stdout=PIPE
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        match = re.search(r"(http://\S+)", line)
        if not match:
            raise RuntimeError(f"the server did not start: {line.strip()}")
        yield match.group(1), key
    finally:
        proc.terminate()
        await proc.wait()


async def _time_to_first_audio(base_url: str, key: str) -> float:
    from .. import orga
    from ..media import Tone

    started = time.perf_counter()
    async with orga.connect(Tone(), api_key=key, base_url=base_url, user_email=LOCAL_USER_EMAIL) as session:
        async for _ in session.audio_frames():
            return time.perf_counter() - started
    raise RuntimeError("no audio received")


def _summary(name: str, seconds: list[float]) -> str:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (f"{name:<11} n={len(ms):<3} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"
            f"   min {ms[0]:7.1f} ms   max {ms[-1]:7.1f} ms")


async def _setup(n: int) -> int:
    console = Console(soft_wrap=True)
    console.print(f"connect() → first received audio frame, embedded server in a separate process, {n} sessions each")
    async with _server_process() as (base_url, key):
        await _time_to_first_audio(base_url, key)  # warm-up: imports, codec set-up
        sequential: list[float] = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("sequential", total=n)
            for _ in range(n):
                sequential.append(await _time_to_first_audio(base_url, key))
                progress.advance(task)
        console.print(_summary("sequential", sequential))
        concurrent = await asyncio.gather(*(_time_to_first_audio(base_url, key) for _ in range(n)))
        console.print(_summary("concurrent", list(concurrent)))
    console.print("goals on a 2-core machine: sequential median ≤ 100 ms, concurrent p95 ≤ 500 ms")
    return 0
