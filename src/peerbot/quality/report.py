"""Report files: ``STEM.json`` (meta, summary, history, thresholds) and ``STEM.html`` (the same, readable).

The JSON is the record scripts read; its ``summary`` and ``history`` follow the metrics contract
(:mod:`peerbot.quality.metrics`), so a report from ``peerbot call`` and one from ``peerbot load``
compare key by key.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from .html import render_html
from .thresholds import CheckResult

__all__ = ["SCHEMA", "codecs_of", "json_safe", "report_meta", "write_report"]

SCHEMA = "peerbot.report/1"
"""The ``schema`` field of every JSON report: bumped when a field changes meaning."""


def report_meta(command: str, target: str, *, started_at: float, duration_s: float | None,
                impairment: Any = None, candidate_pair: Any = None, codecs: Any = None,
                **more: Any) -> dict[str, Any]:
    """The ``meta`` of a report: what ran, against what, when (``started_at``: a ``time.time()``),
    for how long, under which impairment, over which candidate pair, with which codecs."""
    start = datetime.fromtimestamp(started_at, timezone.utc).isoformat(timespec="seconds")
    return {"command": command, "target": target, "start_time": start, "duration_s": duration_s,
            "impairment": impairment, "candidate_pair": candidate_pair, "codecs": codecs,
            "peerbot_version": __version__, **more}


def codecs_of(stats: Any) -> dict[str, list[str]] | None:
    """The codecs a session's ``stats()`` report shows in use, per direction (``{"received":
    ["audio/opus", "video/VP8"]}``), for ``report_meta(codecs=…)``; None when it shows none."""
    found: dict[str, list[str]] = {}
    for direction, streams in (("received", getattr(stats, "inbound_rtp", ())),
                               ("sent", getattr(stats, "outbound_rtp", ()))):
        names = sorted({codec for stream in streams if (codec := getattr(stream, "codec", None))})
        if names:
            found[direction] = names
    return found or None


def write_report(path_stem: str | Path, *, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                 meta: Mapping[str, Any], results: Sequence[CheckResult] = ()) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.html`` (a ``.json``/``.html`` suffix on the stem is dropped);
    return their paths. Values that JSON cannot hold (NaN, objects) become null or text."""
    stem = Path(path_stem)
    if stem.suffix in (".json", ".html"):
        stem = stem.with_suffix("")
    record = {"schema": SCHEMA, "meta": {"peerbot_version": __version__, **meta}, "summary": summary,
              "history": list(history), "thresholds": [r.to_dict() for r in results]}
    record = _jsonable(record)
    json_path, html_path = Path(f"{stem}.json"), Path(f"{stem}.html")
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(_dumps(record), encoding="utf-8")
    html_path.write_text(render_html(summary=record["summary"], history=record["history"], meta=record["meta"],
                                     results=results), encoding="utf-8")
    return json_path, html_path


def _dumps(record: dict[str, Any]) -> str:
    """Indented, but one history sample a line: an hour is 3600 lines, not 60000."""
    head = json.dumps({**record, "history": []}, indent=1, allow_nan=False)
    samples = ",\n  ".join(json.dumps(s, separators=(", ", ": "), allow_nan=False) for s in record["history"])
    before, marker, after = head.rpartition('"history": []')
    return f"{before}\"history\": [\n  {samples}\n ]{after}\n" if samples else head + "\n"


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as None, all the way down: strict JSON (``allow_nan=False``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
