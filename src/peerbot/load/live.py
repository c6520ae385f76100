"""The live view of ``peerbot load`` (rich, refreshed twice a second, 80 columns), and the same
figures as the closing summary's text. With cheap (count-only) participants or a decode sample,
a ``decoded`` line says how many decode and what their decoded audio measures (tone heard,
strongest frequency, level) and how many decoder threads the workers hold."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..quality.thresholds import format_value
from .summary import CPU_LIMIT_PERCENT, LAG_LIMIT_MS, LoadState, ParticipantRecord, WorkerRecord, statistics

__all__ = ["LIMITED_NOTE", "SERVER_NOTE", "live_view", "summary_view"]

LIMITED_NOTE = ("limited by the load generator: a worker's event loop lagged > {lag:g} ms or its CPU reached"
                " {cpu:g} %, so these figures may be the generator's, not the server's (use more --workers,"
                " fewer participants, or another machine)").format(lag=LAG_LIMIT_MS, cpu=CPU_LIMIT_PERCENT)

SERVER_NOTE = ("limited by the local server: its process used {cpu:g} % of a core or more, so these figures may"
               " be the far side's (try --media encoded --reflect)").format(cpu=CPU_LIMIT_PERCENT)

_MEDIA = (("audio_coverage_percent", "coverage", "%"), ("loss_percent", "loss", "%"), ("jitter_ms", "jitter", "ms"),
          ("rtt_ms", "RTT", "ms"))
_DECODED = (("decoded_tone_percent", "tone heard", "%"), ("decoded_frequency_hz", "decoded freq", "Hz"),
            ("decoded_level_dbfs", "decoded level", "dBFS"))


def _v(value: float | None, unit: str) -> str:
    return "–" if value is None else format_value(value, unit)


def live_view(state: LoadState, duration: float) -> RenderableType:
    """Participants, set-up, media figures over the connected participants, errors, workers."""
    counts = state.counts()
    elapsed = max(0.0, time.monotonic() - state.started)
    head = Text(f"peerbot load  {min(elapsed, duration):.0f}/{duration:g} s   participants:"
                f" {counts['connecting']} connecting, {counts['connected']} connected,"
                f" {counts['failed']} failed, {counts['ended']} ended", no_wrap=False)
    live = [p for p in state.participants if p.connected and p.state != "failed"]  # ended ones keep theirs
    setups = statistics([p.setup_ms for p in state.participants if p.setup_ms is not None])
    media = Table(box=None, pad_edge=False, show_edge=False, width=78)
    for title in ("", "p5", "p50", "p95"):
        media.add_column(title, justify="right" if title else "left")
    media.add_row("setup", "", _v(setups["p50"], "ms"), _v(setups["p95"], "ms"))
    for name, title, unit in _MEDIA:
        stats = statistics([v for v in (p.figure(name) for p in live) if v is not None])
        media.add_row(title, _v(stats["p5"], unit), _v(stats["p50"], unit), _v(stats["p95"], unit))
    mos = statistics([v for v in (p.figure("mos") for p in live) if v is not None])
    media.add_row("MOS", _v(mos["p5"], ""), _v(mos["p50"], ""), _v(mos["p95"], ""))
    parts: list[RenderableType] = [head, media]
    decoded = _decoded_line(live, sum(w.decoder_threads for w in state.workers))
    if decoded is not None:
        parts.append(decoded)
    if state.errors:
        parts.append(Text("errors: " + ", ".join(f"{e} {n}" for e, n in state.errors.most_common()), style="red"))
    parts.append(_workers(state.workers, state))
    if state.limited_now or state.generator_limited:
        parts.append(Text(LIMITED_NOTE, style="bold yellow"))
    if state.server.limited:
        parts.append(Text(SERVER_NOTE, style="bold yellow"))
    return Group(*parts)


def _decoded_line(participants: list[ParticipantRecord], threads: int) -> Text | None:
    """``decoded: 2 of 40  tone 100% (min)  523 Hz  -12.3 dBFS  decoder threads 2``; None when there
    is nothing to say (plain participants, all decoding, none measuring)."""
    measuring = [p for p in participants if p.figure("decoded_frames") is not None]
    if all(p.decodes for p in participants) and not measuring:
        return None
    cells = [f"decoded: {sum(p.decodes for p in participants)} of {len(participants)}"]
    for name, _, unit in _DECODED:
        values = [v for v in (p.figure(name) for p in measuring) if v is not None]
        if values:  # the worst participant's tone (the one a threshold catches), the others' median
            value = min(values) if unit == "%" else statistics(values)["p50"]
            cells.append(_v(value, unit) + (" (min)" if unit == "%" else ""))
    cells.append(f"decoder threads {threads}")
    return Text("  ".join(cells))


def _workers(workers: list[WorkerRecord], state: LoadState | None = None) -> Text:
    cells = []
    for w in workers:
        if w.died:
            cells.append(f"w{w.worker} DIED ({w.died})")
        else:
            cpu = "–" if w.cpu_percent is None else f"{w.cpu_percent:.0f}%"
            lag = "–" if w.lag_ms is None else f"{w.lag_ms:.0f}ms"
            cells.append(f"w{w.worker} cpu {cpu} lag {lag}{' !' if w.limited_now else ''}")
    if state is not None and state.server.cpu_percent is not None:
        cells.append(f"server cpu {state.server.cpu_percent:.0f}%{' !' if state.server.limited_now else ''}")
    return Text("workers: " + "  ".join(cells))


def summary_view(result: Any) -> RenderableType:
    """The closing summary of a ``LoadResult``."""
    s: Mapping[str, float | None] = result.summary
    lines = [f"Load test against {result.target}: {s['participants']:.0f} participants over"
             f" {result.duration_s:.1f} s{' (interrupted)' if result.interrupted else ''}",
             f"  connected {s['connected']:.0f}, failed {s['failed']:.0f}"]
    table = Table(box=None, pad_edge=False, show_edge=False)
    for title in ("", "p5", "p50", "p95", "p99"):
        table.add_column(title, justify="right" if title else "left")
    rows = [("setup_ms", "setup", "ms"), ("first_audio_ms", "first audio", "ms"), *_MEDIA,
            ("concealed_percent", "concealed", "%"), ("mos", "MOS", "")]
    decoded = [p for p in result.participants if p.connected]
    if decoded and (not all(p.decodes for p in decoded) or s.get("decoded_frames") is not None):
        lines.append(f"  decoded {s.get('decoded') or 0:.0f} of {s['connected']:.0f},"
                     f" decoder threads at most {s.get('decoder_threads_max') or 0:.0f}")
        rows += [(key, title, unit) for key, title, unit in _DECODED if s.get(f"{key}_p50") is not None]
    for key, title, unit in rows:
        table.add_row(title, *(_v(s.get(f"{key}_{stat}"), unit) for stat in ("p5", "p50", "p95", "p99")))
    parts: list[RenderableType] = [Text("\n".join(lines)), table]
    if result.errors:
        parts.append(Text("  failures: " + ", ".join(f"{e} {n}" for e, n in result.errors.items()), style="red"))
        shown = [p for p in result.participants if p.error][:3]
        for p in shown:
            parts.append(Text(f"    #{p.index} {p.error} ({p.phase}): {p.message}", no_wrap=False))
    parts.append(_workers_summary(result.workers))
    if s.get("server_cpu_max_percent") is not None:
        parts.append(Text(f"  local server: cpu max {s['server_cpu_max_percent']:.0f}%"))
    if result.generator_limited:
        parts.append(Text(LIMITED_NOTE, style="bold yellow"))
    if s.get("server_limited"):
        parts.append(Text(SERVER_NOTE, style="bold yellow"))
    return Group(*parts)


def _workers_summary(workers: list[WorkerRecord]) -> Text:
    cells = [f"w{w.worker} " + (f"DIED ({w.died})" if w.died else
                                f"cpu max {w.cpu_max_percent:.0f}% lag max {w.lag_max_ms:.0f}ms"
                                f"{f', limited {w.limited_seconds} s' if w.limited_seconds else ''}")
             for w in workers]
    return Text("  workers: " + "; ".join(cells))
