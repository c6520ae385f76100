"""A call's history: one flat sample per second, in bounded memory, evenly spaced."""

from __future__ import annotations

from collections.abc import Iterator

from .stats import StatsReport

Sample = dict[str, float | None]

DEFAULT_CAPACITY = 3600


class StatsHistory:
    """Samples (``StatsReport.to_metrics()``: ``t`` and the metrics contract's names), oldest first.

    Every sample is kept until there are ``capacity`` (an hour at one a second). Past that, every
    other sample of the whole history is dropped and from then on only every other one is kept:
    the samples stay evenly spaced over the call, 1 s apart, then 2 s, 4 s, 8 s… (the spacing
    doubles each time the call outgrows ``capacity`` samples, so a 2–4 h call keeps one every 4 s),
    and means and percentiles over them weigh every part of the call alike. The first sample and
    the newest (the call's last moment, the final report once it ended) are always there; the
    newest may be closer to the one before it than the spacing. Never more than ``capacity``.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(3, capacity)
        self._samples: list[tuple[int, Sample]] = []  # (ordinal of the sample among all added, sample)
        self._added = 0
        self._stride = 1  # keep the samples whose ordinal is a multiple of this
        self._tail = False  # the newest sample is off the stride: kept only until the next one

    def add(self, report: StatsReport) -> None:
        """Keep one moment of the call."""
        if self._tail:
            self._samples.pop()
        ordinal, self._added = self._added, self._added + 1
        self._samples.append((ordinal, report.to_metrics()))
        self._tail = ordinal % self._stride != 0
        while len(self._samples) > self.capacity:
            self._thin()

    def _thin(self) -> None:
        newest = self._samples[-1]
        self._stride *= 2
        self._samples = [(n, s) for n, s in self._samples if n % self._stride == 0]
        self._tail = newest[0] % self._stride != 0
        if self._tail:
            self._samples.append(newest)

    @property
    def spacing(self) -> int:
        """Samples added per sample kept (seconds apart, at one a second)."""
        return self._stride

    @property
    def last_t(self) -> float | None:
        """``t`` of the newest sample, None when empty."""
        return self._samples[-1][1]["t"] if self._samples else None

    def samples(self) -> list[Sample]:
        """A copy of the samples, oldest first."""
        return [dict(s) for _, s in self._samples]

    def __len__(self) -> int:
        return len(self._samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples())
