"""When received audio reached us: stream sample positions mapped to the monotonic clock.

Each frame adds where its first sample sits in the stream, its RTP-timeline timestamp and its
arrival time. A sample's raw time is its frame's arrival plus its offset into the frame; its
smoothed time is its timestamp plus the median of ``arrival - timestamp`` over the frames within
``smoothing`` seconds of it (one late frame moves nothing; a far side that re-anchors its RTP clock
after a stall is followed, since the median is local).
"""

from __future__ import annotations

import bisect

import numpy as np

__all__ = ["ArrivalTimeline"]


class ArrivalTimeline:
    """The stream's frames with their timestamps and arrival times, at one sample rate."""

    def __init__(self, smoothing: float = 0.5) -> None:
        self.smoothing = smoothing
        self.rate: int | None = None
        self.fed = 0  # samples added so far
        self._starts: list[int] = []  # per frame: its first sample's index in the stream
        self._stamps: list[float] = []  # its RTP-timeline timestamp (s)
        self._arrivals: list[float] = []  # when it reached us (monotonic)
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __bool__(self) -> bool:
        return bool(self._arrivals)

    def add(self, timestamp: float, samples: int, rate: int, arrived_at: float) -> None:
        """One frame of ``samples`` at ``rate`` with its timestamp (s), which reached us at ``arrived_at``."""
        if self.rate is None:
            self.rate = rate
        if self._stamps and timestamp <= self._stamps[-1] + 1e-6:
            # Pieces of one resampled frame share its timestamp: place them one after another.
            timestamp = self._stamps[-1] + (self.fed - self._starts[-1]) / self.rate
        self._starts.append(self.fed)
        self._stamps.append(timestamp)
        self._arrivals.append(arrived_at)
        self._arrays = None
        self.fed += samples

    def arrival_of(self, sample: float) -> float:
        """The raw monotonic time of stream sample ``sample``: its frame's arrival plus the offset."""
        assert self.rate is not None and self._arrivals, "no frame yet"
        i = max(0, bisect.bisect_right(self._starts, sample) - 1)
        return self._arrivals[i] + (sample - self._starts[i]) / self.rate

    def time_of(self, sample: float) -> float:
        """The smoothed monotonic time of stream sample ``sample`` (see the module's note)."""
        assert self.rate is not None and self._arrivals, "no frame yet"
        starts, stamps, offsets = self._indexed()
        i = max(0, int(np.searchsorted(starts, sample, side="right")) - 1)
        stamp = float(stamps[i]) + (sample - float(starts[i])) / self.rate
        # Timestamps only grow (the stream's timeline is monotonic), so a window is a slice.
        first = int(np.searchsorted(stamps, stamps[i] - self.smoothing, side="left"))
        last = int(np.searchsorted(stamps, stamps[i] + self.smoothing, side="right"))
        return stamp + float(np.median(offsets[first:last]))

    def _indexed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._arrays is None:
            stamps = np.array(self._stamps)
            self._arrays = (np.array(self._starts, dtype=np.float64), stamps, np.array(self._arrivals) - stamps)
        return self._arrays
