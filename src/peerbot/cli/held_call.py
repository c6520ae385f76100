"""Holding a connected call for ``peerbot call`` and ``peerbot orbit``: the live line, the counts
of what arrives, the latency probe, then the hang-up and the figures both commands print."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from ..quality import Sample, report_meta, summarize
from ..quality.cli import finish_report, latency_figures, latency_tasks
from ..quality.report import codecs_of
from .live import Ending, Received, count_audio, hold, play
from .options import Media
from .signals import HangUpSignal
from .summary import CallSummary


@dataclass
class HeldCall:
    """How a held call ended, and what was taken of it before and after the hang-up."""

    ending: Ending
    started: float  # time.monotonic() when the call began (connected or answered)
    started_at: float  # the same moment on the wall clock
    ended: float
    error: str | None
    end_reason: str | None
    candidate_pair: Any
    codecs: dict[str, list[str]] | None
    history: list[Sample]


async def hold_call(session: Any, media: Media, got: Received, summary: CallSummary, console: Console,
                    hang_up: HangUpSignal, duration: float | None, *,
                    tasks: Iterable[Coroutine[Any, Any, None]] = (),
                    before_hang_up: Callable[[], None] | None = None) -> HeldCall:
    """Hold ``session`` (connected) until it ends, a signal comes or ``duration`` passes; hang up.

    ``tasks`` run beside the counting of received audio, playback and the latency probe, and are
    cancelled at the hang-up; ``before_hang_up`` runs just before it (the far side is still there).
    The summary gets the figures of the call's end and its final ones.
    """
    started, started_at = time.monotonic(), time.time()
    running = [asyncio.create_task(task) for task in tasks]
    running.append(asyncio.create_task(count_audio(session, got)))
    if media.speaker is not None:
        running.append(asyncio.create_task(play(session, media.speaker)))
    if media.probe is not None:
        running += latency_tasks(media.probe, session, media.source_audio_track())
    try:
        ending = await hold(session, got, started, console, hang_up, duration)
        ended = time.monotonic()
        summary.duration_s = round(ended - started, 3)
        summary.add_stats(session.stats())
        codecs = codecs_of(session.stats())
        # Taken before hanging up: how the far side leaves after that is moot. The session's, not
        # its peer's: a reconnection replaces the peer.
        error, end_reason = session.error, session.end_reason
        pair = session.peer.candidate_pair() if session.peer is not None else None
        if before_hang_up is not None:
            before_hang_up()
    finally:
        for task in running:
            task.cancel()
        await session.close()
    summary.add_stats(session.stats())  # the final figures, and the call second by second
    history = session.stats_history()
    if media.probe is not None:  # the tasks are done: what the probe heard is complete
        latency = media.probe.result(started, ended)
        history = latency.per_second(history, started)
        for name, value in latency_figures(latency).items():
            setattr(summary, name, value)
    summary.add_received(got)
    return HeldCall(ending, started, started_at, ended, error, end_reason, pair, codecs, history)


def echo_canceller_line(processing: Any) -> str | None:
    """What the microphone's echo canceller had to work with, for the end summary (None when off)."""
    if processing is None or not processing.echo_cancellation:
        return None
    return (f"  echo canceller: {processing.reference_seconds:.1f} s of the speaker as reference,"
            f" stream delay {processing.stream_delay_ms} ms")


def finish_call(args: argparse.Namespace, summary: CallSummary, held: HeldCall, media: Media, console: Console,
                with_whom: str) -> int:
    """The report and thresholds of a held call (``--report``, ``--assert``), then the summary: the exit status."""
    if (line := echo_canceller_line(getattr(media.source, "processing", None))) is not None:
        console.print(line)
    meta = report_meta(summary.command, with_whom, started_at=held.started_at, duration_s=summary.duration_s,
                       candidate_pair=held.candidate_pair, codecs=held.codecs,
                       impairment=str(media.impair) if media.impair else None)
    outcome: dict[str, Any] = {}
    failed = finish_report(args, summary=summarize(held.history), history=held.history, meta=meta, console=console,
                           outcome=outcome)
    summary.thresholds, summary.report = outcome.get("thresholds", []), outcome.get("report")
    if failed and summary.exit_status == 0:
        summary.exit_status = failed
    return summary.finish(args.json)
