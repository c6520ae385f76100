"""``--prometheus-port``: the live figures of a load test for Prometheus, on ``/metrics``.

A registry of its own (not the process-wide default), served by prometheus-client's HTTP server
in a thread; port 0 picks a free port (``PrometheusExporter.port``). Names:

- ``peerbot_load_participants{state}``: waiting, connecting, connected, failed, ended;
- ``peerbot_load_setup_seconds``, ``peerbot_load_first_audio_seconds``: histograms;
- ``peerbot_load_failures{error}``: failed participants by typed error;
- ``peerbot_load_<metric>{stat}`` for ``audio_coverage_percent``, ``loss_percent``, ``jitter_ms``,
  ``rtt_ms``, ``mos`` and ``decoded_tone_percent`` (NaN without a decode sample): p5/p50/p95 over
  the connected participants' latest second;
- ``peerbot_load_decoded``: connected participants that decode what they receive;
- ``peerbot_load_worker_cpu_percent{worker}``, ``peerbot_load_worker_loop_lag_seconds{worker}``,
  ``peerbot_load_generator_limited`` (1 while a worker is limited now);
- ``peerbot_load_server_cpu_percent``: the local server process's CPU, when it is ours.
"""

from __future__ import annotations

from typing import Any

from .summary import LoadState, statistics

__all__ = ["PrometheusExporter"]

_STATES = ("waiting", "connecting", "connected", "failed", "ended")
_MEDIA = ("audio_coverage_percent", "loss_percent", "jitter_ms", "rtt_ms", "mos", "decoded_tone_percent")
_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class PrometheusExporter:
    def __init__(self, port: int, host: str = "0.0.0.0") -> None:
        from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        r = self.registry
        self._participants = Gauge("peerbot_load_participants", "participants by state", ["state"], registry=r)
        self._setup = Histogram("peerbot_load_setup_seconds", "connect() until media can flow", buckets=_BUCKETS,
                                registry=r)
        self._first_audio = Histogram("peerbot_load_first_audio_seconds", "connect() until the first audio frame",
                                      buckets=_BUCKETS, registry=r)
        self._failures = Gauge("peerbot_load_failures", "failed participants by typed error", ["error"], registry=r)
        self._media = {name: Gauge(f"peerbot_load_{name}", f"{name} over the connected participants", ["stat"],
                                   registry=r) for name in _MEDIA}
        self._decoded = Gauge("peerbot_load_decoded", "connected participants that decode", registry=r)
        self._cpu = Gauge("peerbot_load_worker_cpu_percent", "a worker's CPU, % of one core", ["worker"], registry=r)
        self._lag = Gauge("peerbot_load_worker_loop_lag_seconds", "a worker's event-loop lag", ["worker"], registry=r)
        self._limited = Gauge("peerbot_load_generator_limited", "1 while a worker is saturated", registry=r)
        self._server_cpu = Gauge("peerbot_load_server_cpu_percent", "the local server's CPU, % of one core",
                                 registry=r)
        self._server: Any
        self._server, self._thread = start_http_server(port, addr=host, registry=r)
        self.port: int = self._server.server_port

    def setup(self, seconds: float) -> None:
        self._setup.observe(seconds)

    def first_audio(self, seconds: float) -> None:
        self._first_audio.observe(seconds)

    def update(self, state: LoadState) -> None:
        counts = state.counts()
        for name in _STATES:
            self._participants.labels(name).set(counts.get(name, 0))
        for error, n in state.errors.items():
            self._failures.labels(error).set(n)
        live = [p for p in state.participants if p.state == "connected"]
        self._decoded.set(sum(p.decodes for p in live))
        for name, gauge in self._media.items():
            stats = statistics([v for v in (p.figure(name) for p in live) if v is not None])
            for stat in ("p5", "p50", "p95"):
                value = stats[stat]
                gauge.labels(stat).set(value if value is not None else float("nan"))
        for w in state.workers:
            if w.cpu_percent is not None:
                self._cpu.labels(str(w.worker)).set(w.cpu_percent)
            if w.lag_ms is not None:
                self._lag.labels(str(w.worker)).set(w.lag_ms / 1000)
        self._limited.set(1 if state.limited_now else 0)
        if state.server.cpu_percent is not None:
            self._server_cpu.set(state.server.cpu_percent)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
