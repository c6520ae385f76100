"""``peerbot load``: many participants at once against Orga (``ORGA_*``) or, with ``--orbit``,
pairs of Orbit users calling each other; by default against a local server in another process.

A live view while it runs (a terminal only), a summary at the end, ``--report`` files,
``--assert`` thresholds on the load summary and ``--prometheus-port``. The Python API is
``peerbot.load``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import textwrap
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.markup import escape

from ..quality.thresholds import check
from .options import count, impairment, number, port, seconds

EXIT_STATUS = ("exit status: 0 every participant connected and held, 1 a participant failed, a worker died or a"
               " threshold failed, 2 bad usage or settings, 130/143 SIGINT/SIGTERM (everything is hung up first)")
ASSERT_HELP = textwrap.fill(
    '--assert NAME OP VALUE[UNIT] checks the load summary at the end, in the language of "peerbot call'
    ' --assert": e.g. "setup_p95<=500ms", "coverage_p5>=99%", "mos_p5>=4", "loss_p95<=0.5%", "failed==0".'
    " Per-participant figures (setup, first_audio, and every call metric or alias: coverage, loss, jitter, rtt,"
    " mos, …) take a statistic over the participants: _p5 _p50 _p95 _p99 _min _max _mean (none: the mean)."
    " Counts: participants, connected, failed, connected_percent, failed_percent, decoded, decoder_threads_max,"
    " generator_limited. With --decode-sample, per sampled participant: tone (decoded_tone_percent: seconds in"
    " which the decoded audio is the --source tone), decoded_frequency_hz, decoded_level_dbfs, decoded_frames,"
    ' e.g. "tone_min>=99%".',
    width=100, subsequent_indent="  ", break_on_hyphens=False)
JSON_HELP = ("--json, or stdout not a terminal: no live view; the summary is one JSON object on stdout"
             " (target, summary, errors, workers, participants); the rest goes to stderr.")



def _percent(text: str) -> float:
    """``5%``, ``5`` or ``0.5%``: a share of the participants, from 0 to 100 (argparse type)."""
    return number(text, lambda v: 0 <= v <= 100, "expected a percentage such as 5% or 0.5%",
                  "must be from 0% to 100%", parse=lambda t: float(t.strip().removesuffix("%")))


def _rate(text: str) -> float:
    """A positive, finite number of participants per second (argparse type)."""
    return number(text, lambda v: v > 0, "expected participants per second, e.g. 10 or 0.5",
                  "must be more than 0 participants per second")


def _report(text: str) -> str:
    """``--report STEM`` checked as ``peerbot call``'s is (its directory must exist and take new
    files, the stem must name a file), so a bad one is exit 2 before the run, not a lost report after it;
    the CSV too."""
    from pathlib import Path

    from ..quality.cli import report_stem

    report_stem(text.removesuffix(".csv") if text.endswith(".csv") else text)
    stem = Path(text)
    if stem.suffix in (".json", ".html", ".csv"):
        stem = stem.with_suffix("")
    existing = Path(f"{stem}.csv")
    if existing.exists() and not existing.is_file():
        raise argparse.ArgumentTypeError(f"{str(existing)!r} exists and is not a file")
    return text


def _threshold(text: str) -> Any:
    from ..load.thresholds import load_threshold

    return load_threshold(text)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("load", help="a load test: many participants against Orga, or Orbit pairs (a local"
                                         " server in another process by default)",
                            epilog=f"{EXIT_STATUS}\n\n{JSON_HELP}\n\n{ASSERT_HELP}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--participants", type=count, required=True, metavar="N", help="participants (Orbit: even)")
    p.add_argument("--spawn-rate", type=_rate, default=10.0, metavar="R",
                   help="participants started per second, over all workers (default 10)")
    p.add_argument("--duration", type=seconds, default=30.0, metavar="S",
                   help="seconds from the first spawn to the hang-up, spawning included (default 30)")
    p.add_argument("--source", default="tone", metavar="tone[:HZ]|silence|FILE[:loop]",
                   help="audio every participant sends (default: a 440 Hz tone)")
    p.add_argument("--video", default="none", metavar="pattern|none|FILE[:loop]", help="video every participant sends")
    p.add_argument("--workers", type=count, default=None, metavar="K",
                   help="worker processes (default: one per core)")
    p.add_argument("--media", default="plain", metavar="MODE",
                   help="participants' media mode: plain (live encode, aiortc decode; default), encoded (Opus"
                        " encoded once per worker and replayed, RTP counted not decoded: far cheaper), or"
                        " module:attribute")
    p.add_argument("--decode-sample", type=_percent, default=0.0, metavar="P%",
                   help="with --media encoded: P%% of the participants (evenly spread, at least one; e.g. 5%%, 0.5%%)"
                        " decode what they receive and measure it (tone heard, frequency, level) while the others"
                        " count RTP; with --media plain everyone decodes: only 100%%, which also measures each one")
    p.add_argument("--orbit", action="store_true", help="N/2 pairs of Orbit users calling each other")
    p.add_argument("--local", action="store_true",
                   help="use a local server (in another process) even if ORGA_API_KEY / ORBIT_SECRET_KEY is set")
    p.add_argument("--reflect", action="store_true",
                   help="the local Orga server reflects RTP back without transcoding (the far side is no bottleneck)")
    p.add_argument("--impair", type=impairment, metavar="SPEC", help="impair every participant's network both ways")
    p.add_argument("--prometheus-port", type=port, metavar="P", help="serve live metrics on :P/metrics (0: any port)")
    p.add_argument("--report", metavar="STEM", type=_report, help="write STEM.json, STEM.csv (a row per participant), STEM.html")
    p.add_argument("--assert", dest="assertions", metavar="EXPR", action="append", type=_threshold, default=None,
                   help='a threshold the load summary must meet, e.g. "setup_p95<=500ms" (repeatable)')
    p.add_argument("--json", action="store_true", help="no live view; the summary as JSON on stdout")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_load(args))


async def _load(args: argparse.Namespace) -> int:
    from ..load import LoadConfig, LoadRunner
    from ..load.live import live_view, summary_view
    from ..load.report import write_load_report

    as_json = args.json or not sys.stdout.isatty()
    console = Console(highlight=False, soft_wrap=False, stderr=as_json, width=None if sys.stderr.isatty() else 100)
    options: dict[str, Any] = {} if args.workers is None else {"workers": args.workers}
    config = LoadConfig(participants=args.participants, duration=args.duration, spawn_rate=args.spawn_rate,
                        source=args.source, video=args.video, media=args.media,
                        decode_sample_percent=args.decode_sample, orbit=args.orbit,
                        local=True if args.local else None, reflect=args.reflect,
                        impair=str(args.impair) if args.impair else None,
                        prometheus_port=args.prometheus_port, **options)
    live: Live | None = None
    if not as_json:
        live = Live(console=console, auto_refresh=False, transient=True)
    runner = LoadRunner(config, on_update=(lambda state: live.update(live_view(state, config.duration), refresh=True))
                        if live is not None else None)
    caught: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        caught.append(sig)
        runner.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    console.print(f"Load test: {config.participants} participants at {config.spawn_rate:g}/s for"
                  f" {config.duration:g} s in {config.worker_count} worker processes"
                  f"{', Orbit pairs' if config.orbit else ''}")
    task = asyncio.create_task(runner.run())
    try:
        while runner.prometheus_port is None and config.prometheus_port is not None and not task.done():
            await asyncio.sleep(0.05)
        if runner.prometheus_port is not None:
            console.print(f"  Prometheus metrics on http://0.0.0.0:{runner.prometheus_port}/metrics")
        if live is not None:
            with live:
                result = await task
        else:
            result = await task
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print(summary_view(result))
    results = check(result.summary, args.assertions or [])
    if args.report:
        paths = write_load_report(args.report, result, results)
        console.print(f"  report:   {escape(', '.join(str(p) for p in paths))}")
    failed_checks = [r for r in results if not r.passed]
    if results:
        verdict = f"{len(failed_checks)} of {len(results)} failed" if failed_checks else f"all {len(results)} passed"
        console.print(f"  thresholds: {verdict}")
        for r in results:
            console.print(f"    {'pass' if r.passed else '[red bold]FAIL[/red bold]'} {escape(r.message)}")
    if caught:
        status = 128 + int(caught[0])
    else:
        status = 0 if result.ok and not failed_checks else 1
    if as_json:
        record = {**result.to_dict(), "thresholds": [r.to_dict() for r in results], "exit_status": status}
        from ..quality.report import json_safe

        print(json.dumps(json_safe(record)))
    return status

