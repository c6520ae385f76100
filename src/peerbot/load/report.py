"""``peerbot load --report STEM``: STEM.json (the record), STEM.csv (a row per participant) and
STEM.html (the quality report's page, with the load's own tables added). A row says whether the
participant ``decoded`` and, for a ``--decode-sample``'d one, its decoded figures.

The JSON has the shape of a call-quality report (``schema``, ``meta``, ``summary``, ``history``,
``thresholds``): its ``summary`` is the load summary (:mod:`peerbot.load.summary`), whose
``<metric>`` and ``<metric>_p50`` … keys are statistics over the participants; ``history`` a
sample a second, each metric the mean over the participants connected in that second. It adds
``errors``, ``workers`` and ``participants``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

from .. import __version__
from ..quality.html import render_html
from ..quality.report import SCHEMA, json_safe, report_meta
from ..quality.thresholds import CheckResult
from .decoded import DECODED_FIGURES
from .live import LIMITED_NOTE, SERVER_NOTE

__all__ = ["write_load_report"]


def write_load_report(stem: str | Path, result: Any, results: Sequence[CheckResult] = ()) -> tuple[Path, Path, Path]:
    """Write the three files; return their paths."""
    stem = Path(stem)
    if stem.suffix in (".json", ".html", ".csv"):
        stem = stem.with_suffix("")
    meta = report_meta("load", result.target, started_at=result.started_at, duration_s=round(result.duration_s, 3),
                       impairment=result.config.impair, participants=result.config.participants,
                       spawn_rate=result.config.spawn_rate, workers=len(result.workers), media=result.config.media,
                       decode_sample_percent=result.config.decode_sample_percent,
                       source=result.config.source, video=result.config.video,
                       generator_limited=result.generator_limited, interrupted=result.interrupted)
    rows = [p.row() for p in result.participants]
    record = json_safe({"schema": SCHEMA, "meta": {"peerbot_version": __version__, **meta}, "summary": result.summary,
                        "history": result.history, "thresholds": [r.to_dict() for r in results],
                        "errors": result.errors, "workers": [w.to_dict() for w in result.workers],
                        "participants": rows})
    paths = Path(f"{stem}.json"), Path(f"{stem}.csv"), Path(f"{stem}.html")
    paths[0].parent.mkdir(parents=True, exist_ok=True)
    paths[0].write_text(json.dumps(record, indent=1, allow_nan=False) + "\n", encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["participant"])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    page = render_html(summary=record["summary"], history=record["history"], meta=record["meta"], results=results)
    paths[2].write_text(page.replace("</body>", _load_tables(record) + "</body>", 1), encoding="utf-8")
    return paths


def _load_tables(record: dict[str, Any]) -> str:
    s = record["summary"]
    stats = ("p5", "p50", "p95", "p99", "min", "max", "mean")
    head = "".join(f"<th>{x}</th>" for x in stats)
    keys = ["setup_ms", "first_audio_ms", *(k for k in DECODED_FIGURES if s.get(f"{k}_p50") is not None)]
    rows = "".join(f"<tr><th>{escape(key)}</th>{''.join(_cell(s.get(f'{key}_{x}')) for x in stats)}</tr>"
                   for key in keys)
    counts = ", ".join(f"{k.replace('_', ' ')} {_num(s.get(k))}"
                       for k in ("participants", "connected", "failed", "failed_percent", "decoded"))
    errors = "".join(f"<tr><td>{escape(e)}</td><td class=\"n\">{n}</td></tr>" for e, n in record["errors"].items())
    workers = "".join(f"<tr><td>{w['worker']}</td><td class=\"n\">{_num(w['cpu_max_percent'])}</td>"
                      f"<td class=\"n\">{_num(w['lag_max_ms'])}</td><td class=\"n\">{w['limited_seconds']}</td>"
                      f"<td>{escape(w['died'] or '')}</td></tr>" for w in record["workers"])
    notes = [text for text, on in ((LIMITED_NOTE, record["meta"].get("generator_limited")),
                                   (SERVER_NOTE, s.get("server_limited"))) if on]
    note = "".join(f"<p class=\"note\">{escape(text)}</p>" for text in notes)
    return (f"<h2>Load</h2><p>{escape(counts)}</p>{note}<table><tr><th>figure</th>{head}</tr>{rows}</table>"
            "<p>The summary above: per metric, each participant's own call figure, then statistics over the"
            " participants. One row per participant is in the CSV.</p>"
            f"<h2>Failures</h2><table><tr><th>error</th><th>participants</th></tr>{errors or '<tr><td>none</td></tr>'}"
            "</table><h2>Workers</h2><table><tr><th>worker</th><th>CPU max %</th><th>loop lag max ms</th>"
            f"<th>limited s</th><th>died</th></tr>{workers}</table>\n")


def _cell(value: Any) -> str:
    return f"<td class=\"n\">{_num(value)}</td>"


def _num(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    return f"{value:.1f}" if isinstance(value, float) else str(value)

