"""The HTML call-quality report: one self-contained page that opens offline.

Everything is inline: the style, and the plots as SVG elements. No script, no font, no image is
fetched, so the page can be attached to a bug report or archived by CI as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .metrics import METRICS
from .plots import MISSING_NOTE, plots_available, svg_plots
from .thresholds import CheckResult, format_value

__all__ = ["render_html"]

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .8em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.pass { background: #e3f6e3; } .fail { background: #fbe0e0; font-weight: bold; }
.none { color: #999; } .note { color: #a60; }
figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
"""
_META_ORDER = ("command", "target", "start_time", "duration_s", "impairment", "candidate_pair", "codecs",
               "peerbot_version")
_COLUMNS = ("", "_p50", "_p95", "_min", "_max", "_mean")


def render_html(*, summary: Mapping[str, Any], history: Sequence[Mapping[str, Any]], meta: Mapping[str, Any],
                results: Sequence[CheckResult] = ()) -> str:
    """The whole page."""
    title = f"peerbot {meta.get('command', 'call')} – {meta.get('target', '')}".rstrip(" –")
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{escape(title)}</h1>",
             _meta_table(meta)]
    if results:
        parts.append(_thresholds_table(results))
    parts.append(_summary_table(summary))
    parts.append(_plots(history))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _meta_table(meta: Mapping[str, Any]) -> str:
    keys = [k for k in _META_ORDER if k in meta] + [k for k in meta if k not in _META_ORDER]
    rows = "".join(f"<tr><th>{escape(k.replace('_', ' '))}</th><td>{escape(_text(meta[k]))}</td></tr>" for k in keys)
    return f"<h2>Call</h2><table class=\"meta\">{rows}</table>"


def _thresholds_table(results: Sequence[CheckResult]) -> str:
    failed = sum(not r.passed for r in results)
    verdict = f"{failed} of {len(results)} failed" if failed else f"all {len(results)} passed"
    rows = "".join(f"<tr class=\"{'pass' if r.passed else 'fail'}\"><td>{'pass' if r.passed else 'FAIL'}</td>"
                   f"<td>{escape(r.threshold.text or str(r.threshold))}</td>"
                   f"<td class=\"n\">{escape(_measured(r))}</td><td>{escape(r.shortfall)}</td></tr>" for r in results)
    return (f"<h2>Thresholds: {verdict}</h2><table class=\"thresholds\">"
            f"<tr><th></th><th>required</th><th>measured</th><th>missed by</th></tr>{rows}</table>")


def _measured(result: CheckResult) -> str:
    if result.measured is None:
        return "–"
    return format_value(result.measured, result.threshold.unit)


def _summary_table(summary: Mapping[str, Any]) -> str:
    head = "".join(f"<th>{c.lstrip('_') or 'call'}</th>" for c in _COLUMNS)
    rows = []
    for metric in METRICS.values():
        cells = "".join(_cell(summary.get(metric.name + c)) for c in _COLUMNS)
        rows.append(f"<tr><th>{metric.name}</th><td>{escape(metric.unit)}</td>{cells}"
                    f"<td>{escape(metric.title)}</td></tr>")
    return (f"<h2>Summary</h2><table class=\"summary\"><tr><th>metric</th><th>unit</th>{head}<th></th></tr>"
            f"{''.join(rows)}</table>")


def _cell(value: Any) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "<td class=\"n none\" title=\"not measured\">–</td>"
    return f"<td class=\"n\">{escape(format_value(float(value), '').strip())}</td>"


def _plots(history: Sequence[Mapping[str, Any]]) -> str:
    if not plots_available():
        return f"<h2>Over time</h2><p class=\"note\">{escape(MISSING_NOTE)}</p>"
    figures = "".join(f"<figure>{svg}</figure>" for _, svg in svg_plots(history))
    return "<h2>Over time</h2>" + (figures or "<p class=\"none\">No figure was measured.</p>")


def _text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value) or "none"
    return json.dumps(value)
