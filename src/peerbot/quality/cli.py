"""The report options every calling command shares: ``--report STEM`` and ``--assert EXPR``.

A command adds them with :func:`add_report_options` and, once the call is over, hands its
figures to :func:`finish_report`, which writes the files, prints the verdicts and says whether a
threshold failed. Expressions are parsed with the arguments, so a bad one exits 2 before any request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import tempfile
import textwrap
from collections.abc import Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import ConfigurationError
from .latency import LatencyProbe, LatencyResult
from .metrics import ALIASES, METRICS
from .report import write_report
from .thresholds import Threshold, check

__all__ = ["add_latency_option", "add_report_options", "finish_report", "latency_tasks", "report_stem"]

ASSERT_HELP = textwrap.fill(
    '--assert NAME OP VALUE[UNIT] checks the call\'s summary when it ends, e.g. "mos>=4.0", "loss<=1%",'
    ' "rtt_p95<=300ms": ops <= < >= > ==; units % ms s kbps fps, converted to the metric\'s; a statistic'
    " over the call's seconds with _p50 _p95 _min _max _mean. A figure that was not measured fails; exit 1"
    f" when any fails. Names: {', '.join(METRICS)}; aliases: {', '.join(ALIASES)}.",
    width=100, subsequent_indent="  ", break_on_hyphens=False)


def _threshold(text: str) -> Threshold:
    try:
        return Threshold.parse(text)
    except ConfigurationError as exc:  # argparse shows ArgumentTypeError's message, not ValueError's
        raise argparse.ArgumentTypeError(str(exc)) from None


def report_stem(text: str) -> str:
    """A ``--report`` stem (argparse type): its directory must exist and take new files, and it must
    name a file there, so a bad one is exit 2 before any request rather than a lost report after the call."""
    stem = Path(text)
    if stem.suffix in (".json", ".html"):
        stem = stem.with_suffix("")
    if not text.strip() or not stem.name or text.endswith(("/", os.sep)) or stem.name in (".", ".."):
        raise argparse.ArgumentTypeError(f"needs a file name stem, e.g. 'out' or 'reports/call1', got {text!r}")
    directory = stem.parent
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{str(directory)!r} is not an existing directory (got {text!r})")
    try:  # a real file, not os.access: that says yes to root, and /proc takes no new files even from root
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".peerbot-report-"):
            pass
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot write in {str(directory)!r}: {exc.strerror or exc}") from None
    for suffix in (".json", ".html"):
        existing = Path(f"{stem}{suffix}")
        if existing.exists() and not existing.is_file():
            raise argparse.ArgumentTypeError(f"{str(existing)!r} exists and is not a file")
    return text


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--report STEM`` and the repeatable ``--assert EXPR`` (as ``args.report``, ``args.assertions``)."""
    parser.add_argument("--report", metavar="STEM", default=None, type=report_stem,
                        help="write STEM.json (summary, per-second history) and STEM.html (an offline page, plots)")
    parser.add_argument("--assert", dest="assertions", metavar="EXPR", action="append", type=_threshold,
                        default=None, help='a threshold the call must meet, e.g. "rtt_p95<=300ms" (repeatable;'
                        " exit 1 if one fails)")


def finish_report(args: argparse.Namespace, *, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                  meta: Mapping[str, Any], console: Console,
                  outcome: MutableMapping[str, Any] | None = None) -> int | None:
    """Check ``--assert``, write ``--report``, print both; 1 if a threshold failed or the report
    could not be written, else None (the command's own exit status stands). ``outcome``, when given,
    gets ``thresholds`` (each result as the JSON report stores it) and ``report`` (the paths written)."""
    thresholds: list[Threshold] = args.assertions or []
    results = check(summary, thresholds)
    status = None
    if outcome is not None:
        outcome["thresholds"] = [r.to_dict() for r in results]
    if args.report:
        try:
            json_path, html_path = write_report(args.report, summary=summary, history=history, meta=meta,
                                                results=results)
        except OSError as exc:  # checked before the call, but a disk fills and a directory goes
            console.print(f"  [red]report not written:[/red] {escape(str(exc))}")
            status = 1
        else:
            console.print(f"  report:   {escape(str(json_path))}, {escape(str(html_path))}")
            if outcome is not None:
                outcome["report"] = {"json": str(json_path), "html": str(html_path)}
    if not results:
        return status
    failed = [r for r in results if not r.passed]
    verdict = f"[red]{len(failed)} of {len(results)} failed[/red]" if failed else f"all {len(results)} passed"
    console.print(f"  thresholds: {verdict}")
    for result in results:
        mark = "[green]pass[/green]" if result.passed else "[red bold]FAIL[/red bold]"
        console.print(f"    {mark} {escape(result.message)}")
    return 1 if failed else status


def add_latency_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--latency-probe`` (as ``args.latency_probe``)."""
    parser.add_argument("--latency-probe", action="store_true",
                        help="measure mouth-to-ear latency through an echoing far side: a 50 ms chirp a second is"
                        " mixed over the --source audio and found again in what comes back (latency_ms)")


def latency_tasks(probe: LatencyProbe, session: Any, under: Any) -> list[asyncio.Task[None]]:
    """For the call: the probe listening to ``session``'s received audio, and ``under`` (the
    ``--source`` audio track, or None) mixed under its markers. Cancel them when the call ends."""

    async def quietly(work: Any) -> None:
        with contextlib.suppress(Exception):  # the call ending ends them; what was heard is kept
            await work

    tasks = [asyncio.create_task(quietly(probe.listen(session.audio_frames(channels=1))))]
    if under is not None:
        tasks.append(asyncio.create_task(quietly(probe.mix(under))))
    return tasks


def latency_figures(result: LatencyResult) -> dict[str, float | int | None]:
    """The end summary's latency figures: median and p95 round trip, markers lost."""
    return {"latency_ms": result.p50_ms, "latency_p95_ms": result.p95_ms,
            "latency_markers_lost": result.markers_lost}
