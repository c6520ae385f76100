"""A call's history: one flat sample per second, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

from .stats import StatsReport

Sample = dict[str, float | None]

DEFAULT_CAPACITY = 3600


class StatsHistory:
    """Samples (``StatsReport.to_metrics()``: ``t`` and the metrics contract's names), oldest first.

    Every sample is kept until there are ``capacity`` (an hour at one a second); past that the
    older half is thinned to every other sample, so the newest half stays one a second and older
    stretches get 2, 4, 8… s apart: memory stays below ``capacity`` samples for a call of any length.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(2, capacity)
        self._samples: list[Sample] = []

    def add(self, report: StatsReport) -> None:
        """Keep one moment of the call."""
        self._samples.append(report.to_metrics())
        if len(self._samples) > self.capacity:
            half = len(self._samples) // 2
            self._samples[:half] = self._samples[:half:2]

    @property
    def last_t(self) -> float | None:
        """``t`` of the newest sample, None when empty."""
        return self._samples[-1]["t"] if self._samples else None

    def samples(self) -> list[Sample]:
        """A copy of the samples, oldest first."""
        return [dict(s) for s in self._samples]

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples())
