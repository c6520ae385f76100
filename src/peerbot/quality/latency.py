"""Audio mouth-to-ear latency through an echoing far side: chirp markers sent, found again.

``LatencyProbe`` is an audio source (an ``AudioSource``: the application may still ``capture()``
its own audio, the markers are mixed over it) that adds a 50 ms chirp every ``interval`` seconds
and notes when each left. ``measure()`` reads the received audio, finds the chirps by normalised
cross-correlation (a matched filter: robust to Opus coding, resampling and level changes) and
pairs each with the marker it echoes, giving one round trip per marker.

Clocks. *Mouth*: the monotonic time the paced track hands the frame holding the marker's first
sample to the sender, plus the sample's offset in the frame. *Ear*: the received stream's RTP
timeline (``AudioFrame.timestamp``, sample-accurate and untouched by our event loop's hiccups)
mapped onto the monotonic clock by the median of ``arrival - timestamp`` over the frames within
half a second of the marker. One late delivery (a busy event loop, one delayed packet) does not
move the median; a lasting delay does, as a playout buffer would follow it. The window is
local, so a far side that re-anchors its RTP clock after a stall is followed too.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import dataclasses
import math
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from typing import Any

import av

import numpy as np

from ..errors import ConfigurationError
from ..media.app_source import AudioSource
from ..media.frames import AudioFrame
from .arrivals import ArrivalTimeline

__all__ = ["LatencyProbe", "LatencyResult", "MarkerDetector", "SentMarker", "chirp"]

MARKER_SECONDS = 0.050
# Four chirps, told apart by band and sweep direction: marker k is chirp k % 4, so a marker is
# identified by its chirp and send time as long as the round trip stays under 4 intervals.
CHIRPS_HZ = ((500.0, 1700.0), (1700.0, 500.0), (2000.0, 3200.0), (3200.0, 2000.0))
# Normalised correlation a detection needs. A chirp alone scores > 0.9 after Opus; speech
# without a chirp scores < 0.25; a chirp over speech as loud as itself, about 0.7.
THRESHOLD = 0.4
_SMOOTHING_SECONDS = 0.5
_HOP_SECONDS = 0.5  # received audio is searched in chunks of this much


def chirp(code: int, sample_rate: int) -> np.ndarray:
    """Marker ``code`` (0–3) as float samples in [-1, 1]: a Hann-tapered linear chirp."""
    start, end = CHIRPS_HZ[code]
    n = int(MARKER_SECONDS * sample_rate)
    t = np.arange(n) / sample_rate
    phase = 2 * np.pi * (start * t + (end - start) * t * t / (2 * MARKER_SECONDS))
    return np.sin(phase) * np.hanning(n)


@dataclasses.dataclass(frozen=True)
class SentMarker:
    """A marker as it left: its sequence number, chirp and monotonic send time."""

    index: int
    code: int
    sent_at: float


@dataclasses.dataclass(frozen=True)
class LatencyResult:
    """Round trips of the markers sent during a measurement, in send order of the found ones.

    ``markers_sent`` counts markers that had their full ``max_round_trip`` to come back within
    the measurement; ``markers_found`` those heard again. Percentiles are linear-interpolated;
    ``None`` when no marker came back.
    """

    round_trips_ms: tuple[float, ...]
    markers_sent: int
    markers_found: int
    heard_at: tuple[float, ...] = ()  # monotonic ear time of each round trip, when known

    def per_second(self, history: Sequence[Mapping[str, Any]], origin: float) -> list[dict[str, Any]]:
        """``history`` (samples with ``t``: seconds since monotonic ``origin``) with ``latency_ms``
        filled: per sample, the mean of the round trips heard since the sample before it (None for none)."""
        out, previous = [], -math.inf
        for sample in history:
            t = float(sample.get("t") or 0.0)
            trips = [trip for trip, heard in zip(self.round_trips_ms, self.heard_at) if previous < heard - origin <= t]
            out.append({**sample, "latency_ms": round(math.fsum(trips) / len(trips), 1) if trips else None})
            previous = t
        return out

    @property
    def markers_lost(self) -> int:
        return self.markers_sent - self.markers_found

    def percentile_ms(self, q: float) -> float | None:
        """The ``q``-th percentile (0–100) of the round trips, or None without any."""
        return float(np.percentile(self.round_trips_ms, q)) if self.round_trips_ms else None

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms(50)

    @property
    def p95_ms(self) -> float | None:
        return self.percentile_ms(95)

    @property
    def max_ms(self) -> float | None:
        return max(self.round_trips_ms) if self.round_trips_ms else None

    def to_metrics(self) -> dict[str, float | None]:
        """Flat figures in the metrics vocabulary: ``latency_ms`` is the median round trip."""
        return {"latency_ms": self.p50_ms, "latency_p95_ms": self.p95_ms,
                "latency_markers_lost": float(self.markers_lost)}


class LatencyProbe(AudioSource):
    """An audio source that mixes a chirp marker into what it sends every ``interval`` seconds.

    Send it (``source=probe``) to a far side that echoes, then ``await probe.measure(frames,
    duration)`` on the received audio. Captured audio (``capture()``, or another track's through
    ``mix()``) is sent as usual, with the markers added at ``amplitude`` (of full scale) on top.

    For a call of open-ended length: run ``listen(frames)`` as a task for the call, cancel it when
    the call ends, then ``result(since, until)``.
    """

    def __init__(self, interval: float = 1.0, *, amplitude: float = 0.5, sample_rate: int = 48000,
                 channels: int = 1, queue_seconds: float = 1.0) -> None:
        if not 0.1 <= interval <= 60:
            raise ConfigurationError(f"interval must be 0.1–60 s, got {interval!r}")
        if not 0 < amplitude <= 1:
            raise ConfigurationError(f"amplitude must be in (0, 1], got {amplitude!r}")
        super().__init__(sample_rate=sample_rate, channels=channels, queue_seconds=queue_seconds)
        self.interval = interval
        self.amplitude = amplitude
        self.sent: collections.deque[SentMarker] = collections.deque(maxlen=100_000)
        self._chirps = [chirp(code, sample_rate) * amplitude * 32767 for code in range(len(CHIRPS_HZ))]
        self._emitted = 0  # samples handed to the sender so far
        self._markers = 0
        self._next_marker = int(interval * sample_rate / 2)
        # (chirp, samples of it sent so far; negative: it starts that far into the next frame)
        self._playing: list[tuple[np.ndarray, int]] = []
        self._detector = MarkerDetector()  # what listen() heard

    def _next_samples(self, n: int) -> np.ndarray:
        now = time.monotonic()
        out = super()._next_samples(n).astype(np.int32)
        while self._next_marker < self._emitted + n:
            offset = self._next_marker - self._emitted
            code = self._markers % len(self._chirps)
            self.sent.append(SentMarker(self._markers, code, now + offset / self.sample_rate))
            self._markers += 1
            self._playing.append((self._chirps[code], -offset))
            self._next_marker += int(self.interval * self.sample_rate)
        still: list[tuple[np.ndarray, int]] = []
        for wave, done in self._playing:
            begin = max(0, -done)
            piece = wave[max(0, done):max(0, done) + n - begin]
            out[:, begin:begin + len(piece)] += piece.astype(np.int32)
            if done + n < len(wave):
                still.append((wave, done + n))
        self._playing = still
        self._emitted += n
        return np.clip(out, -32768, 32767).astype(np.int16)

    async def measure(self, frames: AsyncIterable[AudioFrame], duration: float, *,
                      max_round_trip: float | None = None) -> LatencyResult:
        """Read ``frames`` (the received audio) for ``duration`` seconds; round trips of the
        markers sent in that time, counting those sent in its last ``max_round_trip`` seconds
        (default: 1 s, or 4 intervals if less) only if they came back. ``frames`` is left open."""
        max_round_trip = self._round_trip_bound(max_round_trip)
        started = time.monotonic()
        detector = MarkerDetector()
        try:
            async with asyncio.timeout(duration):
                async for frame in frames:
                    detector.feed(frame, time.monotonic())
        except TimeoutError:
            pass
        return self._result(detector, started, started + duration, max_round_trip)

    async def listen(self, frames: AsyncIterable[AudioFrame]) -> None:
        """Search ``frames`` (the received audio) for the markers until the stream ends or the task
        is cancelled; :meth:`result` then gives the round trips."""
        async for frame in frames:
            self._detector.feed(frame, time.monotonic())

    def result(self, since: float, until: float, *, max_round_trip: float | None = None) -> LatencyResult:
        """Round trips of the markers :meth:`listen` heard among those sent between monotonic ``since``
        and ``until`` (the markers of the last ``max_round_trip`` counted only if they came back)."""
        return self._result(self._detector, since, until, self._round_trip_bound(max_round_trip))

    async def mix(self, track: Any) -> None:
        """Send another audio track's audio (``--source tone``, a file, the microphone) under the
        markers: its frames are captured as they come, until it ends or the task is cancelled."""
        from aiortc.mediastreams import MediaStreamError

        layout = "mono" if self.channels == 1 else "stereo"
        resampler = av.AudioResampler(format="s16", layout=layout, rate=self.sample_rate)
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:  # the track ended: the markers go on over silence
                return
            for piece in resampler.resample(frame):
                pcm = piece.to_ndarray().reshape(-1, self.channels).T
                await self.capture(pcm, self.sample_rate, self.channels)

    def _round_trip_bound(self, max_round_trip: float | None) -> float:
        if max_round_trip is None:
            max_round_trip = min(1.0, len(CHIRPS_HZ) * self.interval)
        if not 0 < max_round_trip <= len(CHIRPS_HZ) * self.interval:
            raise ConfigurationError(f"max_round_trip must be in (0, {len(CHIRPS_HZ) * self.interval:g}] s"
                                     f" (4 marker intervals), got {max_round_trip!r}")
        return max_round_trip

    def _result(self, detector: MarkerDetector, started: float, ended: float, max_round_trip: float) -> LatencyResult:
        sent = list(self.sent)
        heard = detector.finish()
        found = _pair(sent, heard, max_round_trip)
        due = [m for m in sent if started <= m.sent_at <= ended - max_round_trip]
        late = [m for m in sent if ended - max_round_trip < m.sent_at <= ended and m.index in found]
        counted = sorted(due + late, key=lambda m: m.index)
        trips = tuple(round(found[m.index] * 1000, 1) for m in counted if m.index in found)
        heard_at = tuple(m.sent_at + found[m.index] for m in counted if m.index in found)
        return LatencyResult(trips, markers_sent=len(counted), markers_found=len(trips), heard_at=heard_at)


def _pair(sent: list[SentMarker], heard: list[tuple[int, float, float]],
          max_round_trip: float) -> dict[int, float]:
    """Marker index → round trip in seconds, pairing each detection ``(code, ear time, score)``
    with the latest marker of its chirp sent within ``max_round_trip`` before it (the best
    scoring detection when two claim one marker)."""
    by_code: dict[int, list[SentMarker]] = collections.defaultdict(list)
    for marker in sent:  # in send order
        by_code[marker.code].append(marker)
    times = {code: [m.sent_at for m in markers] for code, markers in by_code.items()}
    best: dict[int, tuple[float, float]] = {}
    for code, heard_at, score in heard:
        latest = bisect.bisect_left(times.get(code, []), heard_at) - 1
        if latest < 0:
            continue
        marker = by_code[code][latest]
        trip = heard_at - marker.sent_at
        if trip <= max_round_trip and (marker.index not in best or score > best[marker.index][1]):
            best[marker.index] = (trip, score)
    return {index: trip for index, (trip, _) in best.items()}


class MarkerDetector:
    """Finds the chirps in received audio, searched chunk by chunk (bounded memory), and
    places each on the monotonic clock (see the module's note on clocks)."""

    def __init__(self) -> None:
        self._rate: int | None = None
        self._templates: list[np.ndarray] = []
        self._pcm = np.zeros(0)
        self._base = 0  # stream sample index of self._pcm[0]
        self._timeline = ArrivalTimeline(_SMOOTHING_SECONDS)
        self._hits: dict[int, tuple[int, float]] = {}  # code -> (stream sample index, score) of its last hit
        self._found: list[tuple[int, int, float]] = []  # (code, stream sample index, score)

    def feed(self, frame: AudioFrame, arrived_at: float) -> None:
        """Take one received frame that reached us at monotonic ``arrived_at``."""
        if self._rate is None:
            self._rate = frame.sample_rate
            self._templates = [t / np.linalg.norm(t) for t in (chirp(c, frame.sample_rate) for c in range(len(CHIRPS_HZ)))]
        self._timeline.add(frame.timestamp, frame.samples, frame.sample_rate, arrived_at)
        self._pcm = np.concatenate([self._pcm, frame.data.astype(np.float64).mean(axis=0)])
        if len(self._pcm) >= len(self._templates[0]) + _HOP_SECONDS * self._rate:
            self._search()

    def finish(self) -> list[tuple[int, float, float]]:
        """Every detection so far as ``(code, ear time on the monotonic clock, score)``."""
        if self._rate is None:
            return []
        self._search()
        return [(code, self._timeline.time_of(at), score) for code, at, score in self._found]

    def _search(self) -> None:
        assert self._rate is not None
        size = len(self._templates[0])
        x = self._pcm
        if len(x) < size:
            return
        positions = len(x) - size + 1
        # Energy of each window, for the normalisation; near-silent windows never match.
        power = np.concatenate([[0.0], np.cumsum(x * x)])
        energy = np.sqrt(np.maximum(power[size:] - power[:-size], 0.0))
        quiet = energy < 30.0 * np.sqrt(size)  # below an RMS of 30 (of 32767)
        fft_size = 1 << int(np.ceil(np.log2(len(x) + size)))
        spectrum = np.fft.rfft(x, fft_size)
        for code, template in enumerate(self._templates):
            correlation = np.fft.irfft(spectrum * np.conj(np.fft.rfft(template, fft_size)), fft_size)[:positions]
            score = np.where(quiet, 0.0, correlation / np.maximum(energy, 1e-9))
            for position in np.flatnonzero(score > THRESHOLD):
                self._note(code, self._base + int(position), float(score[position]), size)
        # Keep the tail whose windows are not complete yet; the next search starts there.
        self._pcm = x[positions:]
        self._base += positions

    def _note(self, code: int, at: int, score: float, size: int) -> None:
        # One detection per chirp: the best scoring position within a marker's length.
        last = self._hits.get(code)
        if last is not None and at - last[0] < size:
            if score <= last[1]:
                return
            self._found.remove((code, last[0], last[1]))
        self._hits[code] = (at, score)
        self._found.append((code, at, score))
