"""``peerbot bench density``: how many audio participants one client process holds, peerbot's
cheap mode against plain aiortc, on this machine, in one run.

The far side is the embedded server in reflect mode (``peerbot serve --reflect``) in its own
process(es): it forwards each caller's RTP back undecoded, so what is measured is the client.
Each step runs N participants in a fresh client process (``python -m peerbot.cli.bench_density
worker …``): it joins them at ``--spawn-rate``, lets them settle, then measures a hold window:

- audio coverage per participant over the window: seconds of audio played in time (the virtual
  playout device of ``media.receive_stats``: decoded frames for aiortc, RTP packets in count
  mode) / wall seconds; loss: packets lost / expected over the window (peerbot's RFC 3550
  counters; aiortc's own receiver stats for the plain client);
- the client process's CPU (ms of CPU per second, per participant), event-loop lag (p99 of a
  20 ms ticker's lateness), RSS growth per participant, setup time (start → connected) p95;
- the server processes' CPU, so a server-limited step says so.

A step *holds* when the 5th-percentile participant has ≥ 99 % coverage, mean loss ≤ 0.5 % and
no participant failed. Modes: ``peerbot`` (``EncodedAudio`` replayed, ``receive="count"``, lean
RTP path), ``peerbot-aiortc-path`` (the same media through aiortc's own per-packet path: its sender
task, its receiver and jitter buffer, no decoder thread: the "before" of the lean path), and
``aiortc`` (what a user writes: ``RTCPeerConnection`` + a tone track encoded live + a task
consuming ``recv()``, i.e. aiortc's decoder).

After the steps, in the same run: RSS per participant at ``--rss-at`` (300) peerbot participants
in one process, from that density step if one ran, else from a step of its own, held or not; and
the setup time of ``--joins`` (20, 200) simultaneous joins in peerbot's load mode and of plain
aiortc (:mod:`.bench_joins`). Then the figures and the issue's goals, met or not
(:mod:`.bench_figures`); ``--json`` puts all of them on stdout as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import json
import math
import os
import re
import secrets
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from .bench_figures import COVERAGE_GOAL, LOSS_GOAL, contended, density_figures, goal_lines, holds, summary_lines

MODES = ("peerbot", "peerbot-aiortc-path", "aiortc")
DEFAULT_STEPS = {"peerbot": [50, 100, 150, 200, 250, 300, 400, 500],
                 "peerbot-aiortc-path": [20, 40, 60, 80, 100],
                 "aiortc": [5, 10, 15, 20, 25, 30, 40, 50]}
DEFAULT_JOINS = [20, 200]
DEFAULT_RSS_AT = 300
RSS_SETTLE, RSS_HOLD = 1.0, 2.0  # seconds: the RSS-only step needs its participants joined, not a long window
USER_EMAIL = "bench@peerbot.local"


# --- the worker: N participants in this process -----------------------------------------


def _rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _LagMeter:
    """A 20 ms ticker: how late the loop runs it (what every participant's packets also suffer)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += 0.020
            await asyncio.sleep(max(0.0, due - loop.time()))
            self.lags.append(max(0.0, loop.time() - due))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass
class _Window:
    """One participant's counters at a moment: played seconds, wall time, RTP packets expected and
    lost (received), and RTP packets handled both ways (sent + received)."""

    played: float
    wall: float
    expected: int
    lost: int
    packets: int


class _PeerbotParticipant:
    def __init__(self, session: Any) -> None:
        self.session = session

    def window(self) -> _Window:
        peer = self.session.peer
        playout = peer.audio.playout_stats()
        played = playout.totalSamplesDuration - (playout.concealedSamples / playout.sampleRate
                                                 if playout.sampleRate else 0.0)
        snapshot = peer.snapshot()
        inbound = [s for s in snapshot.inbound_rtp if s.kind == "audio"]
        received = sum(s.packetsReceived for s in inbound)
        lost = sum(s.packetsLost for s in inbound)
        sent = sum(s.packetsSent for s in snapshot.outbound_rtp)
        return _Window(played, time.monotonic(), received + lost, lost, received + sent)

    async def close(self) -> None:
        await self.session.close()


async def _peerbot_participant(base_url: str, key: str, audio: Any, rtp: str) -> _PeerbotParticipant:
    from .. import orga

    session = orga.connect(audio.track(), receive="count", rtp=rtp, api_key=key, base_url=base_url,
                           user_email=USER_EMAIL, modalities=("audio",))
    await session.start()
    return _PeerbotParticipant(session)


class _PlainParticipant:
    """What a user writes with aiortc alone (Orga's signalling is done with peerbot's client:
    it is the same few requests either way, and only the media is measured)."""

    def __init__(self) -> None:
        from aiortc import RTCPeerConnection

        from ..media.receive_stats import AudioPlayoutMeter

        class _Meter(AudioPlayoutMeter):
            def _measure_level(self, frame: Any, duration: float) -> None:
                pass  # only the clock of the frames is wanted: no cost added to the plain client

        self.pc = RTCPeerConnection()
        self.meter = _Meter()
        self.consumer: asyncio.Task[None] | None = None
        self.receiver: Any = None

    async def window_stats(self) -> tuple[int, int, int]:
        received = lost = sent = 0
        if self.receiver is not None:
            for stat in (await self.receiver.getStats()).values():
                if stat.type == "inbound-rtp":
                    received += stat.packetsReceived
                    lost += stat.packetsLost
        for sender in self.pc.getSenders():
            for stat in (await sender.getStats()).values():
                if stat.type == "outbound-rtp":
                    sent += stat.packetsSent
        return received, lost, sent

    async def window(self) -> _Window:
        playout = self.meter.stats()
        played = playout.totalSamplesDuration - (playout.concealedSamples / playout.sampleRate
                                                 if playout.sampleRate else 0.0)
        received, lost, sent = await self.window_stats()
        return _Window(played, time.monotonic(), received + lost, lost, received + sent)

    async def close(self) -> None:
        if self.consumer is not None:
            self.consumer.cancel()
        await self.pc.close()


def _plain_tone_track() -> Any:
    import av
    import numpy as np
    from aiortc.mediastreams import MediaStreamTrack

    class ToneTrack(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.pts = 0
            self.start: float | None = None

        async def recv(self) -> av.AudioFrame:
            if self.start is None:
                self.start = time.monotonic()
            else:
                self.pts += 960
                await asyncio.sleep(max(0.0, self.start + self.pts / 48000 - time.monotonic()))
            t = (np.arange(960) + self.pts) / 48000
            samples = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = 48000, self.pts, fractions.Fraction(1, 48000)
            return frame

    return ToneTrack()


async def _plain_participant(base_url: str, key: str, audio: Any, rtp: str) -> Any:
    from aiortc import RTCSessionDescription

    from ..orga.client import OrgaClient
    from ..orga.routes import DATA_CHANNEL_LABEL

    participant = _PlainParticipant()
    pc = participant.pc
    client = OrgaClient(api_key=key, base_url=base_url, user_email=USER_EMAIL)
    connected = asyncio.Event()

    @pc.on("track")
    def on_track(track: Any) -> None:
        participant.receiver = next(r for r in pc.getReceivers() if r.track is track)

        async def consume() -> None:
            with contextlib.suppress(Exception):
                while True:
                    participant.meter.on_frame(await track.recv())

        participant.consumer = asyncio.ensure_future(consume())

    @pc.on("connectionstatechange")
    def on_state() -> None:
        if pc.connectionState == "connected":
            connected.set()

    try:
        pc.addTrack(_plain_tone_track())
        pc.createDataChannel(DATA_CHANNEL_LABEL)
        config = await client.get_session_config()
        await pc.setLocalDescription(await pc.createOffer())
        answer, _ = await client.create_call(config.ephemeral_token, pc.localDescription)
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        await asyncio.wait_for(connected.wait(), 20)
    except BaseException:
        await participant.close()
        raise
    finally:
        await client.aclose()
    return participant


@dataclass
class _Joiner:
    """Joins participants of one mode over ``servers`` in turn, keeping each set-up time (s) and
    the failures by error type."""

    mode: str
    servers: list[tuple[str, str]]
    audio: Any
    setups: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)

    async def join(self, i: int) -> Any:
        """Participant ``i``, or None when it failed to join."""
        join = _plain_participant if self.mode == "aiortc" else _peerbot_participant
        base_url, key = self.servers[i % len(self.servers)]
        started = time.monotonic()
        try:
            participant = await join(base_url, key, self.audio, "aiortc" if self.mode == "peerbot-aiortc-path" else "lean")
        except Exception as exc:
            self.failures[type(exc).__name__] = self.failures.get(type(exc).__name__, 0) + 1
            return None
        self.setups.append(time.monotonic() - started)
        return participant


def _cpu_wait_seconds() -> float:
    """Seconds the main thread has waited on a run queue for a CPU (other processes had them)."""
    try:
        with open(f"/proc/self/task/{os.getpid()}/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _say(kind: str, **values: Any) -> None:
    print(json.dumps({"kind": kind, **values}), flush=True)


async def _window(participant: Any) -> _Window:
    result = participant.window()
    return await result if asyncio.iscoroutine(result) else result


async def run_worker(mode: str, n: int, servers: list[tuple[str, str]], spawn_rate: float, settle: float,
                     hold: float, profile: str | None = None) -> dict[str, Any]:
    """Join ``n`` participants of ``mode``, measure the hold window, close them: the figures."""
    from ..media.encoded import EncodedAudio

    joiner = _Joiner(mode, servers, EncodedAudio.tone(440.0))
    if mode == "aiortc":  # warm the codecs up, as the encoded tone did for peerbot
        import av
        av.CodecContext.create("libopus", "w")
    rss_before = _rss_kb()
    lag = _LagMeter()
    lag.start()
    setups, failures = joiner.setups, joiner.failures
    joining = []
    for i in range(n):
        joining.append(asyncio.ensure_future(joiner.join(i)))
        if (i + 1) % 10 == 0 or i + 1 == n:
            _say("progress", joined=i + 1)
        await asyncio.sleep(1 / spawn_rate)
    participants = [p for p in await asyncio.gather(*joining) if p is not None]
    _say("settle")
    await asyncio.sleep(settle)
    lag.lags.clear()
    before = [await _window(p) for p in participants]
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    times_before = os.times()
    cpu_before, wall_before, waited_before = time.process_time(), time.monotonic(), _cpu_wait_seconds()
    _say("hold")
    await asyncio.sleep(hold)
    cpu = time.process_time() - cpu_before
    times_after = os.times()
    if profiler is not None and profile:
        profiler.disable()
        profiler.dump_stats(profile)
    wall = time.monotonic() - wall_before
    waited = _cpu_wait_seconds() - waited_before
    after = [await _window(p) for p in participants]
    _say("measured")
    rss = _rss_kb() - rss_before
    coverage = [min(100.0, 100 * (b.played - a.played) / (b.wall - a.wall)) for a, b in zip(before, after)]
    loss = [100 * max(0, b.lost - a.lost) / (b.expected - a.expected) if b.expected > a.expected else 100.0
            for a, b in zip(before, after)]
    lag.stop()
    lags = sorted(lag.lags) or [0.0]
    # CPU per participant as if each handled its full 50 + 50 packets a second: a starved client
    # skips packets (and so spends less), which would flatter it.
    packets = sum(b.packets - a.packets for a, b in zip(before, after)) / wall / max(1, len(participants))
    await asyncio.gather(*(p.close() for p in participants), return_exceptions=True)
    return {
        "mode": mode, "n": n, "connected": len(participants), "failures": failures,
        "coverage_p5": _percentile(coverage, 5), "coverage_mean": statistics.fmean(coverage) if coverage else 0.0,
        "loss_mean": statistics.fmean(loss) if loss else 100.0, "loss_max": max(loss, default=100.0),
        "cpu_percent": 100 * cpu / wall, "cpu_ms_per_participant": 1000 * cpu / wall / max(1, len(participants)),
        "packets_per_participant_s": packets,
        "cpu_ms_per_full_participant": 1000 * cpu / wall / max(1, len(participants)) * 100 / max(packets, 1.0),
        "cpu_wait_percent": 100 * waited / wall,
        "kernel_percent_of_cpu": 100 * (times_after.system - times_before.system) / max(cpu, 1e-9),
        "lag_p99_ms": 1000 * _percentile(lags, 99), "rss_kb_per_participant": rss / max(1, len(participants)),
        "setup_p95_ms": 1000 * _percentile(setups, 95) if setups else None,
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
    }


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="peerbot.cli.bench_density worker")
    parser.add_argument("mode", choices=MODES)
    parser.add_argument("n", type=int)
    parser.add_argument("--server", action="append", required=True, metavar="URL,KEY")
    parser.add_argument("--spawn-rate", type=float, default=25.0)
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--hold", type=float, default=8.0)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the hold window to FILE")
    args = parser.parse_args(argv)
    servers = [tuple(s.split(",", 1)) for s in args.server]
    coro = run_worker(args.mode, args.n, servers, args.spawn_rate, args.settle, args.hold, args.profile)
    if args.uvloop:
        import uvloop
        result = uvloop.run(coro)
    else:
        result = asyncio.run(coro)
    _say("result", **result)
    return 0


# --- the orchestrator -------------------------------------------------------------------


@dataclass
class _Server:
    proc: asyncio.subprocess.Process
    base_url: str
    key: str
    cpu_at: float = 0.0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.asynccontextmanager
async def reflecting_servers(count: int) -> AsyncIterator[list[_Server]]:
    """``count`` reflecting embedded servers, each in its own process."""
    servers: list[_Server] = []
    try:
        for _ in range(count):
            key = "orga_bench_" + secrets.token_hex(8)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "peerbot.cli.main", "serve", "--reflect", "--port", "0", "--api-key", key,
                "--max-calls", "100000", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
            match = re.search(r"(http://\S+)", line)
            if not match:
                raise RuntimeError(f"the reflecting server did not start: {line.strip()}")
            servers.append(_Server(proc, match.group(1), key))
        yield servers
    finally:
        for server in servers:
            server.proc.terminate()
            await server.proc.wait()


@dataclass
class _Plan:
    modes: list[str]
    steps: dict[str, list[int]]
    hold: float = 8.0
    settle: float = 3.0
    spawn_rate: float = 25.0
    uvloop: list[bool] = field(default_factory=lambda: [False])
    joins: list[int] = field(default_factory=lambda: list(DEFAULT_JOINS))  # simultaneous joins to time
    rss_at: int | None = DEFAULT_RSS_AT  # participants at which RSS per participant is always measured
    as_json: bool = False


async def _step(mode: str, n: int, use_uvloop: bool, plan: _Plan, servers: list[_Server],
                progress: Any, console: Any) -> dict[str, Any] | None:
    argv = [sys.executable, "-m", "peerbot.cli.bench_density", "worker", mode, str(n),
            "--spawn-rate", str(plan.spawn_rate), "--settle", str(plan.settle), "--hold", str(plan.hold)]
    for server in servers:
        argv += ["--server", f"{server.base_url},{server.key}"]
    if use_uvloop:
        argv.append("--uvloop")
    proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    label = f"{mode}{' +uvloop' if use_uvloop else ''} N={n}"
    task = progress.add_task(f"{label}: joining", total=n)
    result: dict[str, Any] | None = None
    server_cpu: list[float] = []
    hold_started = 0.0
    async for raw in proc.stdout:
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        kind = message.pop("kind")
        if kind == "progress":
            progress.update(task, completed=message["joined"])
        elif kind == "settle":
            progress.update(task, description=f"{label}: settling")
        elif kind == "hold":
            progress.update(task, description=f"{label}: measuring {plan.hold:g} s")
            hold_started = time.monotonic()
            for server in servers:
                server.cpu_at = server.cpu_seconds()
        elif kind == "measured":
            span = time.monotonic() - hold_started
            server_cpu = [100 * (s.cpu_seconds() - s.cpu_at) / span for s in servers]
            progress.update(task, description=f"{label}: closing")
        elif kind == "result":
            result = message
    await proc.wait()
    progress.remove_task(task)
    if result is not None:
        result["server_cpu_percent"] = max(server_cpu, default=0.0)
        result["uvloop"] = use_uvloop
    return result


_COLUMNS = ("mode", "N", "holds", "cov p5 %", "cov mean %", "loss %", "client CPU %", "CPU ms/s/part",
            "pkt/s/part", "loop lag p99 ms", "CPU wait %", "RSS kB/part", "setup p95 ms", "server CPU %")


def _row(r: dict[str, Any]) -> list[str]:
    ok = "yes" if holds(r) else "no, contended" if contended(r) else "no"
    failed = r["n"] - r["connected"]
    return [f"{r['mode']}{' +uvloop' if r['uvloop'] else ''}", str(r["n"]),
            ok + (f" ({failed} failed)" if failed else ""), f"{r['coverage_p5']:.1f}", f"{r['coverage_mean']:.1f}",
            f"{r['loss_mean']:.2f}", f"{r['cpu_percent']:.0f}", f"{r['cpu_ms_per_full_participant']:.2f}",
            f"{r['packets_per_participant_s']:.0f}", f"{r['lag_p99_ms']:.1f}", f"{r['cpu_wait_percent']:.0f}",
            f"{r['rss_kb_per_participant']:.0f}",
            f"{r['setup_p95_ms']:.0f}" if r["setup_p95_ms"] is not None else "–", f"{r['server_cpu_percent']:.0f}"]


async def _stepping(plan: _Plan, servers: list[_Server], progress: Any, console: Any) -> list[dict[str, Any]]:
    """Every mode's steps, up to and including its first that does not hold."""
    results: list[dict[str, Any]] = []
    for mode in plan.modes:
        for use_uvloop in (plan.uvloop if mode != "aiortc" else [False]):
            for n in plan.steps[mode]:
                result = None
                for attempt in (1, 2):  # a step failed by other processes' load is tried once more
                    result = await _step(mode, n, use_uvloop, plan, servers, progress, console)
                    if result is None or holds(result) or not contended(result) or attempt == 2:
                        break
                    console.print(f"{mode} N={n}: failed while the machine was busy"
                                  f" (waited for a CPU {result['cpu_wait_percent']:.0f} % of the time): again")
                    await asyncio.sleep(5)
                if result is None:
                    console.print(f"{mode} N={n}: the worker gave no result")
                    break
                results.append(result)
                console.print("  ".join(f"{c}={v}" for c, v in zip(_COLUMNS, _row(result))))
                if not holds(result):
                    break
    return results


async def _rss_at(plan: _Plan, results: list[dict[str, Any]], servers: list[_Server], progress: Any,
                  console: Any) -> dict[str, Any] | None:
    """RSS growth per participant with ``plan.rss_at`` peerbot participants in one process, whether
    or not that many hold: from the density step of that size if one ran, else a step of its own."""
    n = plan.rss_at
    if not n:
        return None
    step = next((r for r in results if r["mode"] == "peerbot" and r["n"] == n and r["connected"] == n), None)
    source = f"the density step N={n}"
    if step is None:
        step = await _step("peerbot", n, plan.uvloop[0], replace(plan, settle=RSS_SETTLE, hold=RSS_HOLD),
                           servers, progress, console)
        source = f"an RSS-only step: joined at {plan.spawn_rate:g}/s, {RSS_SETTLE:g} s settle, {RSS_HOLD:g} s window"
    if step is None:
        console.print(f"RSS at {n}: the worker gave no result")
        return None
    return {"participants": n, "connected": step["connected"], "kb_per_participant": step["rss_kb_per_participant"],
            "holds": holds(step), "loop": "uvloop" if step["uvloop"] else "asyncio", "source": source}


async def _joins(plan: _Plan, servers: list[_Server], console: Any) -> list[dict[str, Any]]:
    """Setup times of simultaneous joins (:mod:`.bench_joins`): peerbot's load mode at each ``plan.joins``
    against the bench's reflecting server, and at the smallest also from cold (a fresh server, as
    ``peerbot load --reflect`` starts); plain aiortc at the smallest, against the bench's server."""
    from .bench_joins import aiortc_joins, peerbot_joins

    timed: list[dict[str, Any]] = []
    bench_server = (servers[0].base_url, servers[0].key)  # peerbot load takes one base URL: both use it
    runs: list[tuple[str, int, tuple[str, str] | None]] = []
    if "peerbot" in plan.modes:
        runs += [("peerbot", n, bench_server) for n in plan.joins]
        runs += [("peerbot", n, None) for n in plan.joins[:1]]  # from cold, as peerbot load --reflect is run
    if "aiortc" in plan.modes:
        runs += [("aiortc", n, bench_server) for n in plan.joins[:1]]
    for mode, n, server in runs:
        console.print(f"timing {n} simultaneous joins, {mode}{'' if server else ', fresh server'}…")
        try:
            if mode == "peerbot":
                timed.append(await peerbot_joins(n, server))
            else:
                timed.append(await aiortc_joins(n, [bench_server]))
        except Exception as exc:  # the rest of the figures still stand
            console.print(f"{n} simultaneous joins, {mode}: not measured ({type(exc).__name__}: {exc})")
    return timed


def _machine(server_processes: int) -> dict[str, Any]:
    cores = os.cpu_count() or 1
    cpu = ""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    load = os.getloadavg()[0]
    python = sys.version.split()[0]
    return {"cores": cores, "cpu": cpu, "arch": os.uname().machine, "python": python, "loadavg_1m_at_start": load,
            "server_processes": server_processes,
            "summary": f"{cores} cores, {cpu or os.uname().machine}, Python {python}, load {load:.2f} at the start"}


async def run_density(plan: _Plan, server_processes: int = 1) -> int:
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    # The table is wide: never folded. With --json, stdout carries the JSON object alone.
    console = Console(soft_wrap=True, width=max(170, Console().width), stderr=plan.as_json, highlight=False)
    machine = _machine(server_processes)
    console.print(f"density on {machine['summary']}: one client process per step, {server_processes} reflecting"
                  f" server process(es); a step holds at coverage p5 ≥ {COVERAGE_GOAL:g} %,"
                  f" mean loss ≤ {LOSS_GOAL:g} %")
    async with reflecting_servers(server_processes) as servers:
        with Progress(console=console, transient=True) as progress:
            results = await _stepping(plan, servers, progress, console)
            rss = await _rss_at(plan, results, servers, progress, console) if "peerbot" in plan.modes else None
        joins = await _joins(plan, servers, console)
    table = Table(title="participants per client process (one core: the GIL)")
    for column in _COLUMNS:
        table.add_column(column, justify="right")
    for result in results:
        table.add_row(*_row(result))
    console.print(table)
    figures = density_figures(results, plan.steps, plan.modes, rss, joins, machine)
    for line in summary_lines(figures) + goal_lines(figures):
        console.print(line, markup=False)
    if plan.as_json:
        from ..quality.report import json_safe

        print(json.dumps(json_safe(figures)), flush=True)
    return 0



def _counts(text: str) -> list[int]:
    """``N[,N…]`` of whole numbers ≥ 1, or ``none``: an empty list."""
    if text.strip().lower() == "none":
        return []
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = [0]
    if any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"expected N[,N…] of whole numbers ≥ 1, or none; got {text!r}")
    return counts


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modes", default="peerbot,aiortc", metavar="M[,M…]",
                   help=f"modes to step through, of {', '.join(MODES)} (default peerbot,aiortc)")
    for mode in MODES:
        p.add_argument(f"--steps-{mode}", type=_counts, default=DEFAULT_STEPS[mode], metavar="N[,N…]",
                       help=f"participant counts for {mode} (default {','.join(map(str, DEFAULT_STEPS[mode]))});"
                            " a mode stops at its first step that does not hold")
    p.add_argument("--hold", type=float, default=8.0, metavar="S", help="measured seconds per step (default 8)")
    p.add_argument("--settle", type=float, default=3.0, metavar="S", help="seconds after joining before measuring")
    p.add_argument("--spawn-rate", type=float, default=25.0, metavar="R", help="joins per second (default 25)")
    p.add_argument("--loops", default="asyncio,uvloop", metavar="L[,L]",
                   help="event loops for the peerbot modes: asyncio, uvloop or both (default both)")
    p.add_argument("--server-processes", type=int, default=1, metavar="P",
                   help="reflecting server processes, participants spread over them (default 1)")
    p.add_argument("--joins", type=_counts, default=DEFAULT_JOINS, metavar="N[,N…]|none",
                   help="time N simultaneous joins in peerbot's load mode (peerbot.load, --media encoded, a worker"
                        " per core) against the bench's reflecting server, the smallest N also against a fresh one"
                        " (peerbot load --reflect), and plain aiortc at the smallest N in as many processes"
                        f" (default {','.join(map(str, DEFAULT_JOINS))})")
    p.add_argument("--rss-at", type=_counts, default=[DEFAULT_RSS_AT], metavar="N|none",
                   help=f"measure RSS per participant with N peerbot participants in one process even if a smaller"
                        f" step did not hold (default {DEFAULT_RSS_AT})")
    p.add_argument("--json", action="store_true",
                   help="all figures as one JSON object on stdout (the rest goes to stderr)")


def run(args: argparse.Namespace) -> int:
    modes = [m.strip() for m in args.modes.split(",")]
    unknown = [m for m in modes if m not in MODES]
    loops = [name.strip() for name in args.loops.split(",")]
    if unknown or any(name not in ("asyncio", "uvloop") for name in loops):
        raise SystemExit(f"unknown mode or loop: choose modes from {', '.join(MODES)}, loops from asyncio, uvloop")
    if len(args.rss_at) > 1:
        raise SystemExit("--rss-at takes one count (or none)")
    steps = {m: getattr(args, f"steps_{m.replace('-', '_')}") for m in MODES}
    plan = _Plan(modes, steps, args.hold, args.settle, args.spawn_rate, [name == "uvloop" for name in loops],
                 joins=sorted(set(args.joins)), rss_at=args.rss_at[0] if args.rss_at else None, as_json=args.json)
    return asyncio.run(run_density(plan, args.server_processes))


if __name__ == "__main__":
    if sys.argv[1:2] == ["worker"]:
        sys.exit(worker_main(sys.argv[2:]))
    if sys.argv[1:2] == ["joins"]:
        from .bench_joins import joins_main

        sys.exit(joins_main(sys.argv[2:]))
    sys.exit("usage: peerbot bench density (this module's workers are started by it)")
