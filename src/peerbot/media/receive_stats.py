"""What the receiver would have played and rendered: concealment, late audio, coverage, frame
rate, freezes, measured where decoded frames come out, in W3C webrtc-stats names and units.

aiortc decodes, but keeps no playout clock: a frame that reaches the application late, or never,
is invisible in its stats. The meters here are fed synchronously each time a decoded frame is
published (``StreamHub.publish``), with the wall-clock time (``time.monotonic()``) of that moment,
so a starved event loop, a stalled stream and a reconnection all show. They live on the
session-owned hub, so a new peer's reader after a reconnection feeds the same meters; the
reader calls ``new_source()`` so the new RTP clock is not taken for a jump.

Audio (``AudioPlayoutMeter``), a virtual playout device with a fixed target delay. It sees the
frames peerbot's ``AudioJitterBuffer`` passes on (``engine/audio_jitter_buffer``): each packet at
once, a lost one skipped, so a lost 20 ms packet is a 20 ms gap in RTP time, 20 ms concealed.
(aiortc's own buffer stalled 320 ms on the first loss and then discarded a good packet with each
later one: 5 % loss read 16–26 % concealed.) The target does not adapt: on a loopback or LAN call
arrival jitter is far below it, and lateness that does occur (a starved loop) is what a low-delay
player would conceal; a lasting step is absorbed by the re-anchoring below.

- The first frame is played ``TARGET_DELAY`` (50 ms) after it arrived; every later frame at
  ``its RTP time - the first frame's RTP time`` after that (RTP time is ``pts × time_base``).
- A frame that arrives after its playout time is *late* (``lateFrames``, ``lateSamples``): a real
  jitter buffer played filler in its slot, so its samples are *concealed*, and dropped.
- Playout time with no frame to play is concealed: a gap in RTP timestamps (lost packets, a
  sender that skipped), a late frame's slot, and the time the stream is stalled right now
  (included up to the moment of the snapshot, so an outage shows while it lasts).
  ``concealmentEvents`` counts runs of concealment between played frames.
- After ``RESYNC_LATE_SECONDS`` (200 ms) of late frames in a row (a lasting delay step, a sender
  clock slower than ours) the device re-anchors so the next frame plays ``TARGET_DELAY`` after
  the last late one arrived: the delay grows once instead of every later frame being late. A
  shorter run (a loop blocked now and then) is not absorbed: each one is concealed, as a
  real-time (low-delay) player would.
- A new source (a reconnection: a new, random RTP clock; or a jump of over 2 minutes) is
  re-anchored like the first frame, and the time since the last sample is concealed (one event).
- ``totalSamplesReceived`` is, as in webrtc-stats, every sample the device played out, concealed
  ones included (played in time + concealed); samples are per channel (20 ms of 48 kHz Opus is
  960); ``totalSamplesDuration`` is the same in seconds.
- ``audioCoverage`` = seconds of audio played in time / wall seconds since the first frame
  arrived (0-1); the wall clock stops when the stream ends, so the figure survives the call.
  ``concealedRatio`` (a property) is ``concealedSamples / totalSamplesReceived``.
- ``framesReceived`` and ``sampleRate`` (not webrtc-stats names) are the decoded frames seen
  and their rate.
- ``audioLevel`` is the RMS level (1.0 = 0 dBov) over the last 100 ms of frames received;
  ``totalAudioEnergy`` sums ``level² × duration`` over every frame received (webrtc-stats).
- Not measured: ``silentConcealedSamples`` (filler content is the decoder's business, not
  known here) and ``insertedSamplesForDeceleration`` (no time-stretching is modelled: late audio
  is counted as ``lateSamples`` instead).

Video (``VideoRenderMeter``), each published frame is rendered at its arrival:

- ``framesReceived`` and ``framesDecoded`` count frames out of aiortc's decoder (it drops
  undecodable ones silently); ``framesDropped`` the ones not rendered: published after the
  stream ended, or not newer than the last rendered (a duplicate or reordered timestamp).
- ``framesPerSecond``: frames rendered in the last second.
- A *freeze* (W3C): an inter-frame delay ≥ max(3 × average, average + 150 ms), the average
  being over the last 30 inter-frame delays that were neither freezes nor pauses (at least 5
  are needed before a freeze can be called). ``totalFreezesDuration`` sums those delays.
- A *pause*: no frame for ≥ 5 s; counted as a pause, never as a freeze. Both are counted when
  the frame after them arrives, as in webrtc-stats; a stall going on shows as a falling
  ``framesPerSecond``. Once the stream ends, the figures stay as they were at its end.
- ``totalInterFrameDelay`` / ``totalSquaredInterFrameDelay``: sums over all rendered frames.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable

import av
import numpy as np

TARGET_DELAY = 0.050  # s: a jitter buffer's usual floor (libwebrtc's NetEq starts near it)
RESYNC_LATE_SECONDS = 0.2  # s of late audio in a row that make the device take a longer delay
_MAX_JUMP = 120.0  # s: RTP jumps beyond this (or backwards) are a new clock, not a gap
_GAP_TOLERANCE = 0.0005  # s: rounding of pts; a smaller gap is not concealment
_LEVEL_FRAMES = 5  # frames in audioLevel's window (100 ms of 20 ms frames)
FREEZE_MIN_EXTRA = 0.150  # s
PAUSE_SECONDS = 5.0
_AVERAGE_FRAMES = 30
_MIN_FRAMES_FOR_FREEZE = 5

Clock = Callable[[], float]
_FULL_SCALE = {"i2": 32768.0, "i4": 2147483648.0}  # by numpy dtype kind+size; floats are ±1


@dataclasses.dataclass(frozen=True)
class AudioPlayoutStats:
    """A snapshot of what a virtual playout device made of a received audio stream."""

    totalSamplesReceived: int = 0  # samples played out, concealed ones included (per channel)
    totalSamplesDuration: float = 0.0  # s
    concealedSamples: int = 0
    concealmentEvents: int = 0
    lateFrames: int = 0  # frames that arrived after their playout time (dropped, concealed)
    lateSamples: int = 0
    audioCoverage: float = 0.0  # 0-1: audio played in time / wall time since the first frame
    audioLevel: float = 0.0  # 0-1, RMS over the last 100 ms
    totalAudioEnergy: float = 0.0
    framesReceived: int = 0  # decoded audio frames published
    sampleRate: int = 0  # Hz, of the decoded frames

    @property
    def concealedRatio(self) -> float:
        """Concealed samples / samples played out (0 before any)."""
        return self.concealedSamples / self.totalSamplesReceived if self.totalSamplesReceived else 0.0


@dataclasses.dataclass(frozen=True)
class VideoRenderStats:
    """A snapshot of what a renderer showing every decoded frame at its arrival saw."""

    framesReceived: int = 0
    framesDecoded: int = 0
    framesDropped: int = 0
    framesRendered: int = 0
    framesPerSecond: float = 0.0  # frames rendered in the last second
    frameWidth: int = 0
    frameHeight: int = 0
    freezeCount: int = 0
    totalFreezesDuration: float = 0.0  # s
    pauseCount: int = 0
    totalPausesDuration: float = 0.0  # s
    totalInterFrameDelay: float = 0.0  # s
    totalSquaredInterFrameDelay: float = 0.0  # s²


class AudioPlayoutMeter:
    """Feeds decoded audio frames through a virtual playout clock (see the module docstring)."""

    def __init__(self, clock: Clock = time.monotonic, target_delay: float = TARGET_DELAY) -> None:
        self._clock = clock
        self._target = target_delay
        self._rate = 0
        self._first_arrival: float | None = None
        self._ended_at: float | None = None
        self._offset = 0.0  # playout wall time = RTP seconds + offset
        self._cursor = 0.0  # RTP seconds up to which playout is accounted (played or concealed)
        self._new_source = True
        self._played = 0.0  # s played in time
        self._concealed = 0.0  # s concealed, up to the cursor
        self._concealing = False  # in a concealment run
        self._events = 0
        self._late_run = 0.0
        self._late_frames = 0
        self._late_seconds = 0.0
        self._frames = 0
        self._energy = 0.0
        self._levels: collections.deque[float] = collections.deque(maxlen=_LEVEL_FRAMES)

    def new_source(self) -> None:
        """A new track feeds this stream (a reconnection): its RTP clock starts anew."""
        self._new_source = True

    def end(self) -> None:
        """The stream ended: the wall clock of coverage and concealment stops here."""
        if self._ended_at is None:
            self._ended_at = self._clock()

    def on_frame(self, frame: av.AudioFrame, arrival: float | None = None) -> None:
        """Account one decoded frame, published at ``arrival`` (now by default)."""
        if self._ended_at is not None or not frame.sample_rate:
            return
        now = self._clock() if arrival is None else arrival
        duration = frame.samples / frame.sample_rate
        rtp = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        self._rate = frame.sample_rate
        self._frames += 1
        self._measure_level(frame, duration)
        if rtp is None:  # no timestamp: it follows the last frame
            rtp = self._cursor
        if self._new_source or not self._cursor - _MAX_JUMP <= rtp <= self._cursor + _MAX_JUMP:
            self._restart(rtp, now)
        self._play(rtp, duration, now)

    def _restart(self, rtp: float, now: float) -> None:
        if self._first_arrival is None:
            self._first_arrival = now
        else:  # the device played filler from the last sample until this frame starts
            self._conceal(now + self._target - self._offset - self._cursor)
        self._new_source = False
        self._offset = now + self._target - rtp
        self._cursor = rtp
        self._late_run = 0.0

    def _play(self, rtp: float, duration: float, now: float) -> None:
        end = rtp + duration
        if end <= self._cursor + _GAP_TOLERANCE:
            self._late_frames += 1  # a duplicate, or older than what was played: too late
            self._late_seconds += duration
            return
        if now > rtp + self._offset:  # its playout time has passed: filler was played instead
            self._late_frames += 1
            self._late_seconds += duration
            self._conceal(end - self._cursor)
            self._cursor = end
            self._late_run += duration
            if self._late_run >= RESYNC_LATE_SECONDS - _GAP_TOLERANCE:  # take the longer delay from the next frame on
                self._conceal(now + self._target - self._offset - end)
                self._offset = now + self._target - end
                self._late_run = 0.0
            return
        self._late_run = 0.0
        gap = rtp - self._cursor
        if gap > _GAP_TOLERANCE:
            self._conceal(gap)
        start = max(rtp, self._cursor)  # an overlap plays only its new part
        self._played += end - start
        self._cursor = end
        self._concealing = False

    def _conceal(self, seconds: float) -> None:
        if seconds <= _GAP_TOLERANCE:
            return
        self._concealed += seconds
        if not self._concealing:
            self._events += 1
            self._concealing = True

    def _measure_level(self, frame: av.AudioFrame, duration: float) -> None:
        samples = frame.to_ndarray().ravel()
        full_scale = _FULL_SCALE.get(samples.dtype.kind + str(samples.dtype.itemsize), 1.0)
        values = samples.astype(np.float32)
        # A dot product: a third of the time of mean(square()), paid on every frame.
        mean_square = float(np.dot(values, values)) / (values.size * full_scale**2) if values.size else 0.0
        self._energy += mean_square * duration
        self._levels.append(mean_square)

    def stats(self) -> AudioPlayoutStats:
        """The figures now (cheap: call it once a second or more)."""
        if self._first_arrival is None:
            return AudioPlayoutStats()
        now = self._ended_at if self._ended_at is not None else self._clock()
        concealed, events = self._concealed, self._events
        stalled = now - self._offset - self._cursor  # the device is playing past the last sample
        if stalled > _GAP_TOLERANCE:
            concealed += stalled
            events += 0 if self._concealing else 1
        wall = now - self._first_arrival
        rate = self._rate
        return AudioPlayoutStats(
            totalSamplesReceived=round((self._played + concealed) * rate),
            totalSamplesDuration=round(self._played + concealed, 6),
            concealedSamples=round(concealed * rate),
            concealmentEvents=events,
            lateFrames=self._late_frames,
            lateSamples=round(self._late_seconds * rate),
            audioCoverage=round(min(1.0, self._played / wall), 4) if wall > 0 else 1.0,
            audioLevel=round(float(np.sqrt(np.mean(self._levels))), 6) if self._levels else 0.0,
            totalAudioEnergy=round(self._energy, 9),
            framesReceived=self._frames,
            sampleRate=rate,
        )


class VideoRenderMeter:
    """Renders each decoded video frame at its arrival and counts freezes and pauses (see above)."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._ended_at: float | None = None
        self._decoded = 0
        self._dropped = 0
        self._rendered: collections.deque[float] = collections.deque()  # arrivals in the last second
        self._last_arrival: float | None = None
        self._last_pts: float | None = None
        self._delays: collections.deque[float] = collections.deque(maxlen=_AVERAGE_FRAMES)
        self._width = self._height = 0
        self._count = 0
        self._freezes = self._pauses = 0
        self._freeze_time = self._pause_time = 0.0
        self._delay_sum = self._delay_squares = 0.0

    def new_source(self) -> None:
        """A new track feeds this stream (a reconnection): its timestamps start anew."""
        self._last_pts = None

    def end(self) -> None:
        """The stream ended: later frames are dropped, the frame rate stays as it was here."""
        if self._ended_at is None:
            self._ended_at = self._clock()

    def on_frame(self, frame: av.VideoFrame, arrival: float | None = None) -> None:
        """Account one decoded frame, published at ``arrival`` (now by default)."""
        now = self._clock() if arrival is None else arrival
        self._decoded += 1
        pts = float(frame.pts * frame.time_base) if frame.pts is not None and frame.time_base else None
        if self._ended_at is not None or (pts is not None and self._last_pts is not None and pts <= self._last_pts):
            self._dropped += 1
            return
        self._last_pts = pts if pts is not None else self._last_pts
        self._width, self._height = frame.width, frame.height
        self._render(now)

    def _render(self, now: float) -> None:
        self._count += 1
        self._rendered.append(now)
        if self._last_arrival is not None:
            delay = now - self._last_arrival
            self._delay_sum += delay
            self._delay_squares += delay * delay
            self._classify(delay)
        self._last_arrival = now

    def _classify(self, delay: float) -> None:
        if delay >= PAUSE_SECONDS:
            self._pauses += 1
            self._pause_time += delay
            return
        if len(self._delays) >= _MIN_FRAMES_FOR_FREEZE:
            average = sum(self._delays) / len(self._delays)
            if delay >= max(3 * average, average + FREEZE_MIN_EXTRA):
                self._freezes += 1
                self._freeze_time += delay
                return
        self._delays.append(delay)

    def stats(self) -> VideoRenderStats:
        """The figures now (cheap: call it once a second or more)."""
        now = self._ended_at if self._ended_at is not None else self._clock()
        while self._rendered and self._rendered[0] <= now - 1.0:
            self._rendered.popleft()
        return VideoRenderStats(
            framesReceived=self._decoded,
            framesDecoded=self._decoded,
            framesDropped=self._dropped,
            framesRendered=self._count,
            framesPerSecond=float(len(self._rendered)),
            frameWidth=self._width,
            frameHeight=self._height,
            freezeCount=self._freezes,
            totalFreezesDuration=round(self._freeze_time, 6),
            pauseCount=self._pauses,
            totalPausesDuration=round(self._pause_time, 6),
            totalInterFrameDelay=round(self._delay_sum, 6),
            totalSquaredInterFrameDelay=round(self._delay_squares, 6),
        )
