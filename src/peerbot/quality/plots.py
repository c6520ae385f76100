"""Time plots of a call's history as inline SVG, with matplotlib (the ``peerbot[report]`` extra).

matplotlib is imported only when plots are drawn, with the Agg backend, so a report needs no
display and peerbot itself does not depend on it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .metrics import METRICS, measured

__all__ = ["PLOTS", "Plot", "plots_available", "svg_plots"]

MISSING_NOTE = "Plots need matplotlib: pip install 'peerbot[report]'. This report has tables only."


@dataclass(frozen=True)
class Plot:
    """One chart: a title and the metrics drawn on it, which share a unit."""

    title: str
    metrics: tuple[str, ...]
    ylabel: str = ""  # the axis label; empty: the metrics' unit
    counts: bool = False  # whole numbers: integer ticks

    @property
    def axis_label(self) -> str:
        return self.ylabel or METRICS[self.metrics[0]].unit

    def has_data(self, history: Sequence[Mapping[str, Any]]) -> bool:
        """Whether any of its series was measured at least once."""
        return any(measured(s.get(name)) is not None for s in history for name in self.metrics)


PLOTS: tuple[Plot, ...] = (
    Plot("Bitrate", ("bitrate_in_kbps", "bitrate_out_kbps")),
    Plot("Packet loss", ("loss_percent", "remote_loss_percent")),
    Plot("Jitter", ("jitter_ms",)),
    Plot("Round-trip time", ("rtt_ms",)),
    Plot("MOS", ("mos",), ylabel="MOS (1–4.5)"),
    Plot("Audio coverage and concealment", ("audio_coverage_percent", "concealed_percent")),
    Plot("Video frame rate", ("frames_per_second",)),
    Plot("Video freezes", ("freeze_count",), ylabel="freezes", counts=True),
    Plot("Latency (mouth to ear)", ("latency_ms",)),
    Plot("Reconnections", ("reconnects",), ylabel="reconnections", counts=True),
)
"""What the HTML report draws, in order; a plot whose series are all null is left out."""


def plots_available() -> bool:
    """Whether matplotlib can be imported."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def svg_plots(history: Sequence[Mapping[str, Any]]) -> list[tuple[Plot, str]]:
    """Each plot with data, as an ``<svg>`` element ready to inline (no XML prolog, no external reference).

    Raises ``ImportError`` without matplotlib: check :func:`plots_available` first.
    """
    import matplotlib
    from matplotlib.figure import Figure  # not pyplot: no GUI backend, no global figure left open

    times = [float(s.get("t") or 0.0) for s in history]
    drawn = []
    for index, plot in enumerate(p for p in PLOTS if p.has_data(history)):
        with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: smaller, searchable
            figure = Figure(figsize=(8, 2.4), dpi=72)
            axes = figure.add_subplot()
            top = 0.0
            for order, name in enumerate(plot.metrics):
                # A gap (NaN) where a second was not measured: a line through it would invent values.
                values = [math.nan if (v := measured(s.get(name))) is None else v for s in history]
                top = max([top, *(v for v in values if not math.isnan(v))])
                # Later lines dashed, with hollow markers: where two coincide, both stay visible.
                axes.plot(times, values, linewidth=1.2 if order == 0 else 1.6, label=METRICS[name].title,
                          linestyle="-" if order == 0 else (0, (4, 3)),
                          marker=("o" if order == 0 else "s") if len(history) < 20 else None,  # a short call: each point
                          markersize=3 if order == 0 else 5, markerfacecolor=None if order == 0 else "none",
                          drawstyle="steps-post" if METRICS[name].kind == "cumulative" else "default",
                          clip_on=False)  # a line at 0 sits on the axis, not half under it
            # Every figure is ≥ 0: the axis starts there, and an all-zero series is a flat line at the
            # bottom of a 0–1 axis, not the middle of a ±0.04 one.
            axes.set_ylim(bottom=0, top=top * 1.1 if top > 0 else 1)
            if plot.counts:
                from matplotlib.ticker import MaxNLocator

                axes.yaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_title(plot.title, fontsize=10, loc="left")
            axes.set_xlabel("s since the call started", fontsize=8)
            if plot.axis_label:
                axes.set_ylabel(plot.axis_label, fontsize=8)
            axes.tick_params(labelsize=8)
            axes.grid(alpha=0.3)
            if len(plot.metrics) > 1:
                axes.legend(fontsize=8, loc="best")
            figure.tight_layout()
            out = io.StringIO()
            figure.savefig(out, format="svg", metadata={"Date": None})
        drawn.append((plot, _inline(out.getvalue(), f"plot{index}-")))
    return drawn


def _inline(svg: str, prefix: str) -> str:
    """The ``<svg>`` element alone, its ids prefixed: the prolog, DOCTYPE and RDF metadata name
    external URLs, and every figure numbers its elements alike while ids must be unique in a page."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    return re.sub(r'(\sid="|url\(#|href="#)', rf"\g<1>{prefix}", svg)
