"""The live status line, fitted to the terminal: low-priority figures go first when it is narrow."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

_SEPARATOR = " │ "


def status_line(session: Any, audio_seconds: float, started: float, width: int) -> Text:
    """State, time, bitrates, loss, jitter, RTT and audio received, in at most ``width - 1`` columns."""
    s = session.stats().summary
    # (priority, text): the lowest priority is dropped first; the state and clock always stay.
    fields = [
        (9, f"{session.state} {time.monotonic() - started:.1f} s"),
        (3, f"in/out {_show(s.bitrate_in_kbps)}/{_show(s.bitrate_out_kbps)} kbps"),
        (6, f"loss {_show(s.loss_percent, 1)}%"),
        (2, f"jitter {_show(s.jitter_ms, 1)} ms"),
        (5, f"RTT {_show(s.rtt_ms)} ms"),
        (4, f"MOS {_show(s.mos, 1)}"),
        (7, f"audio in {audio_seconds:.1f} s"),
    ]
    while len(fields) > 1 and len(_SEPARATOR.join(text for _, text in fields)) >= width:
        fields.remove(min(fields, key=lambda f: f[0]))
    return Text(_SEPARATOR.join(text for _, text in fields)[: max(1, width - 1)], no_wrap=True)


def _show(value: float | None, digits: int = 0) -> str:
    """A figure, or a dash when it is not measured (yet)."""
    return "–" if value is None else f"{value:.{digits}f}"
