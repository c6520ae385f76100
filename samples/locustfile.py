"""A Locust load test of Orga realtime sessions: each user joins with a tone, holds the call, hangs up.

    peerbot serve          # the embedded server (or a real Orga); paste its `export ORGA_…` line in each shell
    locust -f locustfile.py --master --headless -u 50 -r 5 --run-time 2m --host "$ORGA_BASE_URL"
    locust -f locustfile.py --worker --master-host MASTER   # one per core, on as many machines as needed

Locust's tables then show, per row: ``WebRTC connect`` (set-up ms, failures by typed error),
``WebRTC first audio``, ``WebRTC call`` (whole call ms) and the ``media`` figures of every
completed call (``audio_coverage_percent``, ``loss_percent``, ``jitter_ms``, ``rtt_ms``, ``mos``:
the Average/Min/Max columns are the figure over the calls, in its own unit).
"""

import os

from locust import constant, task

from peerbot.locust import PeerbotUser

CALL_SECONDS = float(os.environ.get("CALL_SECONDS", "10"))


class Caller(PeerbotUser):
    source = "tone"  # or "samples/hello.wav:loop", "silence"…
    connect_options = {"voice": "alloy"}  # more peerbot.orga.connect() arguments, e.g. "impair": "loss=2%"
    wait_time = constant(1)

    @task
    def hold_a_call(self) -> None:
        self.call(seconds=CALL_SECONDS)
