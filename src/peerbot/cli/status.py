"""The live status line, fitted to the terminal: low-priority figures go first when it is narrow."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text

_SEPARATOR = " │ "


def status_line(session: Any, audio_seconds: float, started: float, width: int) -> Text:
    """State, time, bitrates, loss, jitter, RTT and audio received, in at most ``width - 1`` columns."""
    stats = session.stats()
    rtt = f"{stats.rtt_ms:.0f} ms" if stats.rtt_ms is not None else "–"
    # (priority, text): the lowest priority is dropped first; the state and clock always stay.
    fields = [
        (9, f"{session.state} {time.monotonic() - started:.1f} s"),
        (3, f"in/out {stats.bitrate_in_kbps:.0f}/{stats.bitrate_out_kbps:.0f} kbps"),
        (6, f"loss {stats.loss_percent:.1f}%"),
        (2, f"jitter {stats.jitter_ms:.1f} ms"),
        (5, f"RTT {rtt}"),
        (7, f"audio in {audio_seconds:.1f} s"),
    ]
    while len(fields) > 1 and len(_SEPARATOR.join(text for _, text in fields)) >= width:
        fields.remove(min(fields, key=lambda f: f[0]))
    return Text(_SEPARATOR.join(text for _, text in fields)[: max(1, width - 1)], no_wrap=True)
