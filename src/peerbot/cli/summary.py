"""The end-of-call summary that ``--json`` prints as one object, shared by ``call`` and ``orbit``."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .text import shown

if TYPE_CHECKING:  # the engine (aiortc) loads only when a call is made
    from rich.console import Console

    from ..engine.stats import StatsReport
    from .signals import HangUpSignal

JSON_HELP = """\
--json prints one JSON object on stdout when the command ends (the human output goes to stderr):
  command              "call", "orbit call" or "orbit answer"
  exit_status          the process exit status: 0 normal end, 1 failure, 130/143 SIGINT/SIGTERM
  end_reason           why the call ended, as the human summary says it
  call_id              the Orga conversation id or the Orbit call id (null if none was made)
  duration_s           seconds from connected to hung up (null if it never connected)
  packets_sent, packets_received, packets_lost   RTP packets since the start, over every connection
  bytes_sent, bytes_received                      transport bytes (all datagrams) since the start
  reconnects, outage_seconds                      connections rebuilt after an outage, seconds without media
  audio_seconds_received, audio_frames_received, video_frames_received
  loss_percent, remote_loss_percent               RTP loss since the start, received and reported by the far side
  audio_coverage_percent, concealed_percent       received audio played in time / wall time, and concealed
  jitter_ms, rtt_ms, mos                          the last figures
  latency_ms, latency_p95_ms, latency_markers_lost  with --latency-probe: median and 95th percentile round
                                                  trip of its markers (ms), markers that never came back
  (a figure that was never measured is null; README "Call quality figures" defines each)
  recording            the --record path, or null
  recording_error      why the recording failed (the call then exits 1), or null
  thresholds           each --assert: threshold, key, op, value, unit, measured, passed, message ([] without)
  report               the --report files written, {"json": path, "html": path}, or null"""


@dataclass
class CallSummary:
    """How one call went, as scripts read it."""

    command: str
    exit_status: int
    end_reason: str
    call_id: str | None = None
    duration_s: float | None = None
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_sent: int | None = None  # null when the call never connected
    bytes_received: int | None = None
    audio_seconds_received: float = 0.0
    audio_frames_received: int = 0
    video_frames_received: int = 0
    loss_percent: float | None = None
    remote_loss_percent: float | None = None
    audio_coverage_percent: float | None = None
    concealed_percent: float | None = None
    jitter_ms: float | None = None
    rtt_ms: float | None = None
    mos: float | None = None
    reconnects: int = 0
    outage_seconds: float = 0.0
    latency_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_markers_lost: int | None = None
    recording: str | None = None
    recording_error: str | None = None
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    report: dict[str, str] | None = None

    def add_stats(self, stats: StatsReport) -> None:
        """Fold in a session's ``stats()`` report (its summary)."""
        for name in ("packets_sent", "packets_received", "packets_lost", "bytes_sent", "bytes_received",
                     "loss_percent", "remote_loss_percent", "audio_coverage_percent", "concealed_percent",
                     "jitter_ms", "rtt_ms", "mos", "reconnects", "outage_seconds"):
            setattr(self, name, getattr(stats.summary, name))

    def quality(self) -> str:
        """The human summary's line of call-quality figures (``–``: not measured)."""

        def show(value: float | None, unit: str, digits: int) -> str:
            return "–" if value is None else f"{value:.{digits}f}{unit}"

        line = (f"quality:  loss {show(self.loss_percent, ' %', 1)}, jitter {show(self.jitter_ms, ' ms', 1)},"
                f" RTT {show(self.rtt_ms, ' ms', 0)}, MOS {show(self.mos, '', 1)},"
                f" coverage {show(self.audio_coverage_percent, ' %', 0)}")
        if self.latency_markers_lost is not None:
            line += (f", latency {show(self.latency_ms, ' ms', 0)} (p95 {show(self.latency_p95_ms, ' ms', 0)},"
                     f" {self.latency_markers_lost} markers lost)")
        return line

    def reconnections(self) -> str:
        """The human summary's line about rebuilt connections."""
        if not self.reconnects:
            return "reconnects: none"
        return f"reconnects: {self.reconnects}, {self.outage_seconds:.1f} s without media"

    def add_received(self, got: Any) -> None:
        """Fold in what the command counted (``live.Received``)."""
        self.audio_seconds_received = round(got.audio_seconds, 3)
        self.audio_frames_received = got.audio_frames
        self.video_frames_received = got.video_frames

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    def finish(self, as_json: bool) -> int:
        """Print the JSON object when asked for (the human lines went to stderr then); the exit status."""
        if as_json:
            print(self.to_json(), flush=True)
        return self.exit_status


def cancelled(summary: CallSummary, console: Console, hang_up: HangUpSignal, as_json: bool) -> int:
    """A signal came before the call connected: nothing was hung up, the set-up was cancelled."""
    summary.exit_status, summary.end_reason = hang_up.exit_status, f"cancelled before it connected ({hang_up.reason})"
    console.print(f"Call {summary.end_reason}")
    return summary.finish(as_json)


def report_recording(summary: CallSummary, recorder: Any, console: Console) -> None:
    """Say where the call was recorded, or that recording failed: then the call is a failure (exit 1)."""
    if summary.recording is None:
        return
    error = getattr(recorder, "error", None) if recorder is not None else "the recorder never started"
    if error is None:
        console.print(f"  recorded to {shown(summary.recording)}")
        return
    summary.recording_error = error
    if summary.exit_status == 0:
        summary.exit_status = 1
    console.print(f"  [red]recording failed:[/red] {shown(error)}")
