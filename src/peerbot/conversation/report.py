"""Conversation reports: ``STEM.json`` (meta, the summary over every turn, thresholds, each
conversation's turns, speech, events and its call's per-second quality history) and ``STEM.html``: the call-quality page
(:func:`peerbot.quality.html.render_html`, self-contained, opens offline) with the conversation
on top: the summary, a timeline of who spoke when, and the latency of each turn, as inline SVG.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from ..quality.html import render_html
from ..quality.report import json_safe
from ..quality.thresholds import CheckResult, format_value
from .results import OVER_TURNS, SUMMARY_METRICS, ConversationResult, TurnResult, summarize_turns
from .script import EXPECT_EVENTS

__all__ = ["SCHEMA", "render_conversation_html", "write_conversation_report"]

SCHEMA = "peerbot.conversation/1"
"""The ``schema`` field of a conversation report: bumped when a field changes meaning."""

_STYLE = """<style>
svg.timeline text, svg.latency text { font: 11px system-ui, sans-serif; fill: #333; }
.caller { fill: #3b73b9; } .far { fill: #3c9b54; } .stop { fill: #d08a1d; } .turn { stroke: #bbb; }
td.failed { color: #b00; } td.notes { color: #666; }
</style>"""


def write_conversation_report(path_stem: str | Path, conversations: Sequence[ConversationResult], *,
                              meta: Mapping[str, Any], results: Sequence[CheckResult] = ()) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` (a ``.json``/``.html`` suffix on the stem is dropped);
    return their paths."""
    stem = Path(path_stem)
    if stem.suffix in (".json", ".html"):
        stem = stem.with_suffix("")
    record = {"schema": SCHEMA, "meta": dict(meta), "summary": summarize_turns(conversations),
              "thresholds": [r.to_dict() for r in results], "conversations": [{**c.to_dict(), "history": c.history} for c in conversations]}
    json_path, html_path = Path(f"{stem}.json"), Path(f"{stem}.html")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(json_safe(record), indent=1, allow_nan=False, default=str) + "\n", encoding="utf-8")
    html_path.write_text(render_conversation_html(conversations, meta=meta, results=results), encoding="utf-8")
    return json_path, html_path


def render_conversation_html(conversations: Sequence[ConversationResult], *, meta: Mapping[str, Any],
                             results: Sequence[CheckResult] = ()) -> str:
    """The whole page: the call-quality report of the (first) call, the conversation sections first."""
    first = conversations[0] if conversations else None
    page = render_html(summary=first.call_quality if first else {}, history=first.history if first else [],
                       meta=meta, results=results)
    parts = [_STYLE, _summary_table(summarize_turns(conversations)), _latency_chart(conversations)]
    for conversation in conversations:
        parts.append(_conversation_section(conversation, len(conversations) > 1))
    quality = "Call quality" + (" (conversation 1)" if len(conversations) > 1 else "")
    ours = "\n".join(parts) + f"\n<h2>{quality}</h2>"
    head, marker, tail = page.partition("<h2>Summary</h2>")
    if not marker:  # the quality page changed its headings: the conversation goes at the end
        head, marker, tail = page.partition("</body>")
        return f"{head}{ours}{marker}{tail}"
    return f"{head}{ours}{tail}"


def _summary_table(summary: Mapping[str, float | None]) -> str:
    columns = ("mean", "p50", "p95", "min", "max")
    rows = []
    for name in OVER_TURNS:
        metric = SUMMARY_METRICS[name]
        cells = "".join(_cell(summary.get(f"{name}_{c}"), metric.unit) for c in columns)
        rows.append(f"<tr><th>{escape(name)}</th><td>{escape(metric.title)}</td>{cells}</tr>")
    counts = ", ".join(f"{escape(n.replace('_', ' '))} {summary.get(n) or 0:.0f}"
                       for n in SUMMARY_METRICS if n not in OVER_TURNS)
    head = "".join(f"<th>{c}</th>" for c in columns)
    return (f"<h2>Conversation</h2><table class=\"summary\"><tr><th>figure</th><th></th>{head}</tr>"
            f"{''.join(rows)}</table><p>{counts}</p>")


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "<td class=\"n none\" title=\"not measured\">–</td>"
    return f"<td class=\"n\">{escape(format_value(value, unit))}</td>"


def _conversation_section(conversation: ConversationResult, numbered: bool) -> str:
    title = f"Conversation {conversation.index + 1}" if numbered else "Turns"
    ident = f" – {escape(conversation.conversation_id)}" if conversation.conversation_id else ""
    verdict = "failed" if conversation.failed else "passed"
    lines = [f"<h2>{title}{ident}: {verdict}</h2>"]
    if conversation.error:
        lines.append(f"<p class=\"note\">{escape(conversation.error)}</p>")
    if conversation.interrupted:
        lines.append("<p class=\"note\">interrupted before its end</p>")
    lines.append(_timeline(conversation))
    lines.append(_turns_table(conversation.turns))
    if conversation.updates:
        rows = "".join(f"<tr><td>{u.number}</td><td>{escape(json.dumps(u.fields))}</td>"
                       f"<td class=\"n\">{_ms(u.ack_ms)}</td><td class=\"failed\">{escape(u.error or '')}</td></tr>"
                       for u in conversation.updates)
        lines.append(f"<table><tr><th>step</th><th>session.update</th><th>acknowledged</th><th></th></tr>{rows}</table>")
    return "\n".join(lines)


def _turns_table(turns: Sequence[TurnResult]) -> str:
    rows = []
    for turn in turns:
        barge = ""
        if turn.barge_in is not None:
            b = turn.barge_in
            barge = (f"at {b.at_s:.2f} s: " if b.at_s is not None else "") + (
                "did not stop" if not b.stopped else
                f"stopped in {b.stop_ms:.0f} ms" if b.stop_ms is not None else "began in a pause; stayed quiet")
        events = "<br>".join(escape(f"{e.t:.2f} s {_SHORT.get(e.type, e.type)}" + (f": {e.text}" if e.text else ""))
                             for e in turn.events)
        checks = "<br>".join(escape(("pass " if r.passed else "FAIL ") + r.expectation) for r in turn.expectations)
        rows.append(f"<tr><td>{turn.number}</td><td>{escape(turn.label[:120])}</td>"
                    f"<td class=\"n\">{_ms(turn.v2v_ms)}</td>"
                    f"<td class=\"n\">{'–' if turn.response_s is None else f'{turn.response_s:.2f} s'}</td>"
                    f"<td>{escape(barge)}</td><td>{events}</td><td>{checks}</td>"
                    f"<td class=\"failed\">{escape('; '.join(turn.failures))}</td>"
                    f"<td class=\"notes\">{escape('; '.join(turn.notes))}</td></tr>")
    return ("<table class=\"turns\"><tr><th>turn</th><th>said</th><th>voice to voice</th><th>answer</th>"
            "<th>barge-in</th><th>events</th><th>expectations</th><th>failures</th><th>notes</th></tr>"
            f"{''.join(rows)}</table>")


_SHORT = {event_type: name for name, event_type in EXPECT_EVENTS.items()}  # transcript, reply


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


def _timeline(conversation: ConversationResult) -> str:
    """Who spoke when: the caller's speech above, the far side's below, turns as lines."""
    width, left, lane = 900, 70, 18
    end = max([conversation.duration_s, 0.001, *(e for _, e in conversation.far_speech if e is not None),
               *(e for _, e in conversation.caller_speech)])
    scale = (width - left - 10) / end

    def x(t: float) -> float:
        return round(left + max(0.0, t) * scale, 1)

    shapes = []
    for turn in conversation.turns:
        shapes.append(f"<line class=\"turn\" x1=\"{x(turn.started_t)}\" x2=\"{x(turn.started_t)}\" y1=\"4\""
                      f" y2=\"{8 + 2 * lane + 6}\"/><text x=\"{x(turn.started_t) + 2}\" y=\"12\">{turn.number}</text>")
    for start, stop in conversation.caller_speech:
        shapes.append(_bar(x(start), x(stop), 16, lane, "caller", f"caller {start:.2f}–{stop:.2f} s"))
    for start, maybe_stop in conversation.far_speech:
        stop_t = conversation.duration_s if maybe_stop is None else maybe_stop
        shapes.append(_bar(x(start), x(stop_t), 16 + lane + 4, lane, "far", f"far side {start:.2f}–{stop_t:.2f} s"))
    ticks = []
    step = _tick_step(end)
    t = 0.0
    while t <= end + 1e-9:
        ticks.append(f"<text x=\"{x(t)}\" y=\"{16 + 2 * lane + 20}\" text-anchor=\"middle\">{t:g}</text>")
        t += step
    height = 16 + 2 * lane + 28
    return (f"<figure><svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\""
            f" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">"
            f"<title>who spoke when (s since the conversation started)</title>"
            f"<text x=\"0\" y=\"{16 + lane - 5}\">caller</text><text x=\"0\" y=\"{16 + 2 * lane - 1}\">far side</text>"
            f"{''.join(shapes)}{''.join(ticks)}</svg><figcaption>Who spoke when: seconds since the conversation"
            " started; turn numbers on top.</figcaption></figure>")


def _bar(x0: float, x1: float, y: float, h: float, kind: str, title: str) -> str:
    return (f"<rect class=\"{kind}\" x=\"{x0}\" y=\"{y}\" width=\"{max(1.0, round(x1 - x0, 1))}\" height=\"{h}\">"
            f"<title>{escape(title)}</title></rect>")


def _tick_step(end: float) -> float:
    for step in (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600):
        if end / step <= 12:
            return float(step)
    return 1200.0


def _latency_chart(conversations: Sequence[ConversationResult]) -> str:
    """Voice-to-voice latency (and barge-in stop latency) of each turn, as bars."""
    bars = [(c.index, t) for c in conversations for t in c.turns if t.v2v_ms is not None or t.barge_in]
    if not bars:
        return "<p class=\"none\">No turn was answered: no latency to draw.</p>"
    top = max([1.0, *(t.v2v_ms or 0 for _, t in bars),
               *(t.barge_in.stop_ms or 0 for _, t in bars if t.barge_in)])
    width, height, left, bottom = 900, 200, 50, 30
    slot = (width - left - 10) / len(bars)
    shapes = []
    for i, (index, turn) in enumerate(bars):
        x0 = left + i * slot
        label = f"{index + 1}.{turn.number}" if len(conversations) > 1 else str(turn.number)
        for offset, value, kind, what in ((0.1, turn.v2v_ms, "far", "voice to voice"),
                                          (0.55, turn.barge_in.stop_ms if turn.barge_in else None, "stop",
                                           "barge-in stop")):
            if value is None:
                continue
            h = (height - bottom - 10) * value / top
            shapes.append(f"<rect class=\"{kind}\" x=\"{x0 + offset * slot:.1f}\" y=\"{height - bottom - h:.1f}\""
                          f" width=\"{max(1.0, slot * 0.35):.1f}\" height=\"{h:.1f}\">"
                          f"<title>turn {escape(label)}: {what} {value:.0f} ms</title></rect>")
        if len(bars) <= 60 or i % max(1, len(bars) // 30) == 0:
            shapes.append(f"<text x=\"{x0 + slot / 2:.1f}\" y=\"{height - bottom + 14}\""
                          f" text-anchor=\"middle\">{escape(label)}</text>")
    axis = (f"<text x=\"0\" y=\"14\">{top:.0f} ms</text><text x=\"0\" y=\"{height - bottom}\">0</text>"
            f"<line class=\"turn\" x1=\"{left}\" x2=\"{width - 10}\" y1=\"{height - bottom}\" y2=\"{height - bottom}\"/>")
    return (f"<figure><svg class=\"latency\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\""
            f" viewBox=\"0 0 {width} {height}\" role=\"img\"><title>latency per turn</title>{axis}{''.join(shapes)}"
            "</svg><figcaption>Latency per turn: voice to voice (green), barge-in stop (orange), ms.</figcaption>"
            "</figure>")

