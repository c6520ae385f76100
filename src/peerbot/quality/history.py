"""A call's history sampled from ``session.stats()`` once per interval, for sessions that keep none.

Until sessions record their own history, a command runs :func:`record_history` beside the call
and hands the list to :func:`~peerbot.quality.write_report` when the call ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from ..errors import PeerbotError
from .metrics import Sample, sample_from_call_stats

__all__ = ["record_history"]


async def record_history(session: Any, history: list[Sample], *, interval: float = 1.0,
                         audio_seconds: Callable[[], float] | None = None) -> None:
    """Append one sample to ``history`` every ``interval`` s until cancelled or the session ends.

    ``audio_seconds`` returns the seconds of audio the application has received so far (for the
    audio coverage); ``t`` counts from this call. Sampling on a fixed schedule, not after each
    sleep, keeps one sample per second over an hour even when the loop is busy.
    """
    started = time.monotonic()
    ticks = 0
    previous = None
    with contextlib.suppress(PeerbotError):  # the session ended: the history so far is the call's
        while True:
            ticks += 1
            await asyncio.sleep(max(0.0, started + ticks * interval - time.monotonic()))
            stats = session.stats()
            history.append(sample_from_call_stats(time.monotonic() - started, stats, previous=previous,
                                                  audio_seconds_received=audio_seconds() if audio_seconds else None))
            previous = stats
