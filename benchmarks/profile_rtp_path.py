"""Profile the per-packet path of N participants: peerbot's lean RTP path against aiortc's own.

    .venv/bin/python benchmarks/profile_rtp_path.py [N] [--modes peerbot,peerbot-aiortc-path] [--uvloop]

Starts a reflecting embedded server in its own process, runs the density worker of ``peerbot
bench density`` for each mode with a cProfile of its hold window, and prints, per mode, the CPU
per participant-second and the functions that cost the most (cProfile's own overhead roughly
doubles the Python time: compare the modes with each other, not with ``bench density``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from peerbot.cli.bench_density import reflecting_servers


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", type=int, nargs="?", default=60)
    parser.add_argument("--modes", default="peerbot,peerbot-aiortc-path")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--hold", type=float, default=6.0)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    async with reflecting_servers(1) as (server,):
        for mode in args.modes.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                out = Path(tmp) / "profile"
                argv = [sys.executable, "-m", "peerbot.cli.bench_density", "worker", mode, str(args.n),
                        "--server", f"{server.base_url},{server.key}", "--hold", str(args.hold),
                        "--profile", str(out)] + (["--uvloop"] if args.uvloop else [])
                proc = await asyncio.create_subprocess_exec(*argv, stdout=subprocess.PIPE,
                                                            stderr=subprocess.DEVNULL)
                stdout, _ = await proc.communicate()
                result = [json.loads(line) for line in stdout.decode().splitlines() if '"result"' in line]
                if not result:
                    print(f"{mode}: no result")
                    continue
                r = result[-1]
                print(f"\n=== {mode}{' +uvloop' if args.uvloop else ''}, N={args.n}: "
                      f"{r['cpu_ms_per_full_participant']:.2f} ms CPU per participant-second (profiled),"
                      f" coverage p5 {r['coverage_p5']:.1f} %, waited for a CPU {r['cpu_wait_percent']:.0f} %")
                pstats.Stats(str(out)).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
