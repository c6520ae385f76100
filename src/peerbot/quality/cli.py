"""The report options every calling command shares: ``--report STEM`` and ``--assert EXPR``.

A command adds them with :func:`add_report_options` and, once the call is over, hands its
figures to :func:`finish_report`, which writes the files, prints the verdicts and says whether a
threshold failed. Expressions are parsed with the arguments, so a bad one exits 2 before any request.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import ConfigurationError
from .metrics import ALIASES, METRICS
from .report import write_report
from .thresholds import Threshold, check

__all__ = ["add_report_options", "finish_report"]

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


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--report STEM`` and the repeatable ``--assert EXPR`` (as ``args.report``, ``args.assertions``)."""
    parser.add_argument("--report", metavar="STEM", default=None,
                        help="write STEM.json (summary, per-second history) and STEM.html (an offline page, plots)")
    parser.add_argument("--assert", dest="assertions", metavar="EXPR", action="append", type=_threshold,
                        default=None, help='a threshold the call must meet, e.g. "rtt_p95<=300ms" (repeatable;'
                        " exit 1 if one fails)")


def finish_report(args: argparse.Namespace, *, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                  meta: Mapping[str, Any], console: Console) -> int | None:
    """Check ``--assert``, write ``--report``, print both; 1 if a threshold failed, else None
    (the command's own exit status stands)."""
    thresholds: list[Threshold] = args.assertions or []
    results = check(summary, thresholds)
    if args.report:
        json_path, html_path = write_report(args.report, summary=summary, history=history, meta=meta,
                                            results=results)
        console.print(f"  report:   {escape(str(json_path))}, {escape(str(html_path))}")
    if not results:
        return None
    failed = [r for r in results if not r.passed]
    verdict = f"[red]{len(failed)} of {len(results)} failed[/red]" if failed else f"all {len(results)} passed"
    console.print(f"  thresholds: {verdict}")
    for result in results:
        mark = "[green]pass[/green]" if result.passed else "[red bold]FAIL[/red bold]"
        console.print(f"    {mark} {escape(result.message)}")
    return 1 if failed else None
