"""Load tests: many participants against Orga or Orbit, with honest figures.

::

    from peerbot.load import LoadConfig, run

    result = await run(LoadConfig(participants=20, spawn_rate=10, duration=30, workers=2))
    print(result.summary["setup_ms_p95"], result.summary["audio_coverage_percent_p5"], result.errors)

Cheap participants: ``media="encoded"`` (pre-encoded send, RTP counted not decoded), with
``decode_sample_percent=5`` to have 5 % of them decode and check what they hear
(:mod:`peerbot.load.decoded`).

Participants live in worker processes (one per core by default, multiprocessing's spawn context),
each with its own asyncio loop; the far side of a local run is a server in a process of its own.
The figures follow the metrics contract (:mod:`peerbot.quality.metrics`); the load summary's names
are in :mod:`peerbot.load.summary`, its thresholds in :mod:`peerbot.load.thresholds`.
"""

from __future__ import annotations

from .config import LoadConfig
from .media import MEDIA_MODES, MediaMode, PlainMedia
from .runner import LoadResult, LoadRunner, run
from .summary import LoadState, ParticipantRecord, WorkerRecord
from .thresholds import LoadThreshold

__all__ = ["MEDIA_MODES", "LoadConfig", "LoadResult", "LoadRunner", "LoadState", "LoadThreshold", "MediaMode",
           "ParticipantRecord", "PlainMedia", "WorkerRecord", "run"]
