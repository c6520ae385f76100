"""``peerbot converse SCRIPT``: run a scripted conversation with a voice agent and measure it.

Against Orga when ``ORGA_API_KEY`` is set, otherwise against the embedded server started in this
process with its voice-agent assistant (``--think-time``, ``--endpointing`` set it up). A live
view while it runs (a terminal only), a summary per turn at the end, ``--report`` files and
``--assert`` thresholds over every turn of every conversation (``--parallel N`` runs N at once).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import textwrap
import time
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..errors import ConfigurationError, PeerbotError
from ..quality.cli import report_stem
from ..quality.thresholds import Threshold, check, format_value
from .options import agent_seconds, whole_number
from .signals import HangUpSignal
from .text import shown

EXIT_STATUS = ("exit status: 0 every turn passed (and every --assert), 1 a turn failed (no answer, no stop at a"
               " barge-in, an expectation unmet), a conversation failed or a threshold failed, 2 bad usage, a bad"
               " script or settings, 130/143 SIGINT/SIGTERM (the conversations are hung up first)")
ASSERT_HELP = textwrap.fill(
    '--assert NAME OP VALUE[UNIT] checks the summary over every turn, in the language of "peerbot call'
    ' --assert": e.g. "v2v_p95<=1500ms", "v2v_p50<=1.2s", "barge_in_stop_p95<=500ms", "turns_failed==0",'
    ' "expectations_failed==0". Over the turns, with _p50 _p95 _min _max _mean (none: the mean): v2v'
    " (voice to voice, ms), response (answer duration, s), barge_in_stop (ms). Counts: turns, turns_failed,"
    " expectations, expectations_failed, barge_ins, barge_ins_not_stopped, updates_failed, conversations,"
    " conversations_failed. A figure not measured fails.", width=100, subsequent_indent="  ", break_on_hyphens=False)
JSON_HELP = ("--json: no live view; one JSON object on stdout at the end (command, exit_status, target, script,"
             " summary, conversations with their turns, thresholds, report); the rest goes to stderr.")
MAX_PARALLEL = 16


def _parallel(text: str) -> int:
    return whole_number(text, lambda n: 1 <= n <= MAX_PARALLEL, f"expected a whole number from 1 to {MAX_PARALLEL}")


def _threshold(text: str) -> Threshold:
    from ..conversation.thresholds import conversation_threshold

    return conversation_threshold(text)


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("converse", help="run a scripted conversation with a voice agent and measure its latency"
                                             " (embedded agent when ORGA_API_KEY is unset)",
                            epilog=f"{EXIT_STATUS}\n\n{JSON_HELP}\n\n{ASSERT_HELP}",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", metavar="SCRIPT", help="the conversation: a .toml or .json file (README \"Conversation tests\")")
    p.add_argument("--report", metavar="STEM", default=None, type=report_stem,
                   help="write STEM.json (every turn's figures and events) and STEM.html (timeline, latency per turn)")
    p.add_argument("--assert", dest="assertions", metavar="EXPR", action="append", type=_threshold, default=None,
                   help='a threshold over the turns, e.g. "v2v_p95<=1500ms" (repeatable; exit 1 if one fails)')
    p.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                   help=f"run N conversations at once, each with its own results (1–{MAX_PARALLEL})")
    p.add_argument("--json", action="store_true", help="no live view; the results as one JSON object on stdout")
    p.add_argument("--local", action="store_true", help="use the embedded server even if ORGA_API_KEY is set")
    p.add_argument("--think-time", type=agent_seconds, default=None, metavar="S",
                   help="the embedded agent's think time before it answers (default 0.7)")
    p.add_argument("--endpointing", type=agent_seconds, default=None, metavar="S",
                   help="the silence after which the embedded agent takes the turn (default 0.5)")
    p.add_argument("--agent-keeps-talking", action="store_true",
                   help="the embedded agent does not stop when talked over (to see a barge-in test fail)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_converse(args))


async def _converse(args: argparse.Namespace) -> int:
    from ..conversation import load_script, prepare_utterances

    as_json = args.json
    console = Console(highlight=False, soft_wrap=True, stderr=as_json)
    script = load_script(args.script)
    local = True if args.local else not os.environ.get("ORGA_API_KEY")
    agent_options = {k: v for k, v in (("think_time", args.think_time), ("endpointing", args.endpointing)) if v is not None}
    if args.agent_keeps_talking:
        agent_options["barge_in"] = False
    if agent_options and not local:
        raise ConfigurationError("--think-time, --endpointing and --agent-keeps-talking set up the embedded agent;"
                                 " with ORGA_API_KEY set the far side is Orga (add --local for the embedded one)")
    utterances = await asyncio.to_thread(prepare_utterances, script)
    hang_up = HangUpSignal()
    from .orga_target import orga_target

    server_options = {"assistant": "agent", **agent_options} if local else {}
    started_at = time.time()
    async with orga_target(local=local, **server_options) as target:
        turns = len(script.turns)
        console.print(f"Conversation {shown(script.name)}: {turns} turn{'' if turns == 1 else 's'}"
                      f"{f', {args.parallel} at once' if args.parallel > 1 else ''}, with {target.description}")
        run = _Run(script, utterances, target.connect_kwargs, args.parallel)
        results = await run.until_done(hang_up, console if console.is_terminal and not as_json else None)
    return _finish(args, console, script, results, target.description, started_at, hang_up)


class _Run:
    """N conversations at once over their own sessions, stopped together by a signal."""

    def __init__(self, script: Any, utterances: Any, connect_kwargs: dict[str, Any], parallel: int) -> None:
        self.script = script
        self.utterances = utterances
        self.connect_kwargs = connect_kwargs
        self.runners: dict[int, Any] = {}
        self.states = ["connecting"] * parallel
        self.parallel = parallel
        self.started = time.monotonic()

    async def until_done(self, hang_up: HangUpSignal, console: Console | None) -> list[Any]:
        tasks = [asyncio.create_task(self._one(i)) for i in range(self.parallel)]
        waiter = asyncio.create_task(hang_up.wait())
        live = Live(self.view(), console=console, refresh_per_second=4, transient=True) if console else None
        try:
            if live is not None:
                live.start()
            pending = set(tasks)
            while pending and not waiter.done():
                _, pending = await asyncio.wait(pending | {waiter}, timeout=0.25,
                                                return_when=asyncio.FIRST_COMPLETED)
                pending.discard(waiter)
                if live is not None:
                    live.update(self.view())
            if waiter.done():
                for runner in self.runners.values():
                    runner.stop()
                for i, task in enumerate(tasks):
                    if i not in self.runners:
                        task.cancel()  # still connecting: nothing to measure
        finally:
            waiter.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            if live is not None:
                live.stop()
        return [self._result_of(i, r) for i, r in enumerate(results)]

    def _result_of(self, index: int, outcome: Any) -> Any:
        from ..conversation import ConversationResult

        if isinstance(outcome, ConversationResult):
            return outcome
        if isinstance(outcome, ConfigurationError):
            raise outcome
        reason = "cancelled before it connected" if isinstance(outcome, asyncio.CancelledError) else \
            f"unexpected {type(outcome).__name__}: {outcome}"
        return ConversationResult(self.script.name, index=index, error=reason, interrupted=True)

    async def _one(self, index: int) -> Any:
        from .. import orga
        from ..conversation import ConversationResult, ConversationRunner, UtteranceSource

        source = UtteranceSource()
        session = orga.connect(source, return_transcription=True, reconnect=False, **self.connect_kwargs)
        try:
            await session.start()
        except ConfigurationError:
            raise
        except PeerbotError as exc:
            self.states[index] = "not connected"
            return ConversationResult(self.script.name, index=index, error=f"not connected: {exc}")
        try:
            runner = ConversationRunner(self.script, session, source, utterances=self.utterances, index=index)
            self.runners[index] = runner
            self.states[index] = "running"
            result = await runner.run()
            self.states[index] = "failed" if result.failed else "done"
            return result
        finally:
            await session.close()

    def view(self) -> RenderableType:
        total = len(self.script.steps)
        elapsed = time.monotonic() - self.started
        table = Table(box=None, pad_edge=False, show_edge=False)
        for title in ("", "step", "doing", "v2v last", "failures"):
            table.add_column(title, justify="right" if title in ("v2v last", "failures") else "left")
        for i in range(self.parallel):
            runner = self.runners.get(i)
            if runner is None:
                table.add_row(f"#{i + 1}", "", self.states[i], "", "")
                continue
            last = f"{runner.live_v2v_ms[-1]:.0f} ms" if runner.live_v2v_ms else "–"
            table.add_row(f"#{i + 1}", f"{runner.step}/{total}", escape(runner.phase[:60]), last, str(runner.failures))
        return Group(Text(f"peerbot converse  {elapsed:.0f} s"), table)


def _finish(args: argparse.Namespace, console: Console, script: Any, results: list[Any], target: str,
            started_at: float, hang_up: HangUpSignal) -> int:
    from ..conversation import summarize_turns, write_conversation_report
    from ..quality.report import report_meta

    summary = summarize_turns(results)
    for result in results:
        _print_conversation(console, result, len(results) > 1)
    _print_summary(console, summary, sum(t.v2v_ms is not None for r in results for t in r.turns))
    checks = check(summary, args.assertions or [])
    report = None
    status = 0
    if args.report:
        meta = report_meta("converse", target, started_at=started_at,
                           duration_s=max((r.duration_s for r in results), default=None),
                           script=str(script.source or script.name), parallel=len(results))
        try:
            paths = write_conversation_report(args.report, results, meta=meta, results=checks)
        except OSError as exc:
            console.print(f"  [red]report not written:[/red] {escape(str(exc))}")
            status = 1
        else:
            report = {"json": str(paths[0]), "html": str(paths[1])}
            console.print(f"  report:   {escape(paths[0].name)}, {escape(paths[1].name)} in"
                          f" {escape(str(paths[0].parent))}")
    if checks:
        failed = [c for c in checks if not c.passed]
        console.print(f"  thresholds: {f'[red]{len(failed)} of {len(checks)} failed[/red]' if failed else f'all {len(checks)} passed'}")
        for c in checks:
            console.print(f"    {'[green]pass[/green]' if c.passed else '[red bold]FAIL[/red bold]'} {escape(c.message)}")
    if hang_up.caught:
        status = hang_up.exit_status
    elif any(r.failed for r in results) or any(not c.passed for c in checks):
        status = 1
    if args.json:
        record = {"command": "converse", "exit_status": status, "target": target,
                  "script": str(script.source or script.name), "summary": summary,
                  "conversations": [r.to_dict() for r in results], "thresholds": [c.to_dict() for c in checks],
                  "report": report}
        from ..quality.report import json_safe

        print(json.dumps(json_safe(record), default=str), flush=True)
    return status


def _print_conversation(console: Console, result: Any, numbered: bool) -> None:
    head = f"Conversation {result.index + 1}" if numbered else "Conversation"
    verdict = "[red]failed[/red]" if result.failed else "passed"
    ident = f" {shown(result.conversation_id)}" if result.conversation_id else ""  # none: it never connected
    console.print(f"{head}{ident} {verdict} after {result.duration_s:.1f} s"
                  + (f": {shown(result.error)}" if result.error else ""))
    for turn in result.turns:
        figures = []
        if turn.v2v_ms is not None:
            figures.append(f"voice to voice {turn.v2v_ms:.0f} ms")
        if turn.response_s is not None:
            figures.append(f"answer {turn.response_s:.1f} s")
        if turn.barge_in is not None:
            b = turn.barge_in
            figures.append("barge-in: [red]did not stop[/red]" if not b.stopped else
                           f"barge-in stopped in {b.stop_ms:.0f} ms" if b.stop_ms is not None else
                           "barge-in began in a pause; the far side stayed quiet")
        if turn.kind == "silence":
            figures.append(f"far side spoke {turn.far_side_speech_s or 0:.1f} s")
        mark = "[red]✗[/red]" if turn.failed else "✓"
        console.print(f"  {mark} {turn.number:>2} {shown(turn.label[:50])!s:<52} {', '.join(figures)}")
        for failure in turn.failures:
            console.print(f"       [red]{shown(failure)}[/red]")
    for update in result.updates:
        if update.failed:
            console.print(f"  [red]✗[/red] {update.number:>2} session.update: [red]{shown(update.error)}[/red]")


def _print_summary(console: Console, summary: dict[str, Any], measured: int) -> None:
    def ms(name: str) -> str:
        parts = [f"{stat} {format_value(v, 'ms')}" for stat in ("p50", "p95", "max")
                 if (v := summary.get(f"{name}_{stat}")) is not None]
        return ", ".join(parts) if parts else "not measured"

    turns = int(summary["turns"])
    over = f"{turns} turn{'' if turns == 1 else 's'}" if measured == turns else f"{measured} of {turns} turns"
    console.print(f"  voice to voice: {ms('v2v_ms')} over {over}")
    if summary["barge_ins"]:
        console.print(f"  barge-in stop:  {ms('barge_in_stop_ms')}; {summary['barge_ins_not_stopped']:.0f} of"
                      f" {summary['barge_ins']:.0f} did not stop")
    console.print(f"  failed: {summary['turns_failed']:.0f} of {summary['turns']:.0f} turns,"
                  f" {summary['expectations_failed']:.0f} of {summary['expectations']:.0f} expectations"
                  + (f", {summary['conversations_failed']:.0f} of {summary['conversations']:.0f} conversations"
                     if summary["conversations"] > 1 else ""))


