"""``peerbot orbit call`` through a real outage: the far side (in the test, over the test's Orbit
server) loses its network; the command rebuilds the call, or with ``--no-reconnect`` ends it as a
failure, and its summaries say so. The reason shown is the session's, which outlives its peers."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from peerbot import orbit
from peerbot.cli.main import build_parser
from peerbot.engine.impairment import Blackout
from peerbot.media import Tone

from orbit_bed import orbit_bed

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}
FAST = {"liveness_timeout": 1.0, "reconnect_backoff": 0.2}


@pytest.fixture
async def bed():
    async with orbit_bed(ring_timeout=10) as bed:
        yield bed


async def call_bob_through_an_outage(bed, *options: str) -> tuple[int, dict, str, orbit.OrbitCall]:
    """Run ``peerbot orbit call bob --json`` while bob answers, then loses his network for as long
    as his old connection lives; bob hangs up 2 s after a reconnection. The exit status, the JSON
    summary, the human output and bob's call."""
    bob = await bed.participant("bob")
    env = {**ENV, "ORBIT_BASE_URL": bed.server.base_url, "ORBIT_SECRET_KEY": bed.server.secret_key,
           "ORBIT_CLIENT_ID": bed.server.publishable_key}
    proc = await asyncio.create_subprocess_exec(*PEERBOT, "orbit", "call", "bob", "--json", *options, env=env,
                                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        async with orbit.answer(Tone(660), ring_timeout=30, **FAST, **bob.kwargs) as callee:
            await asyncio.sleep(1.5)
            with Blackout(callee.peer):
                while not (callee.reconnects or callee.state in ("closed", "failed")):
                    await asyncio.sleep(0.1)
            if callee.reconnects:
                await asyncio.sleep(2.0)  # media over the new connection, then a normal hang-up
        out, err = await asyncio.wait_for(proc.communicate(), 40)
    finally:
        if proc.returncode is None:
            proc.kill()
    return proc.returncode or 0, json.loads(out), err.decode(), callee


async def test_orbit_call_rebuilds_the_call_after_an_outage_and_counts_it_in_both_summaries(bed):
    code, summary, human, callee = await call_bob_through_an_outage(bed)
    print(f"\n{human}")
    assert code == 0 and summary["exit_status"] == 0, human
    assert summary["end_reason"] == "the other party hung up (hangup)"
    assert summary["reconnects"] == 1 and summary["outage_seconds"] > 1
    assert f"reconnects: 1, {summary['outage_seconds']:.1f} s without media" in human
    assert callee.reconnects == 1
    assert summary["bytes_sent"] > 0 and summary["bytes_received"] > 0  # of the new connection


async def test_orbit_call_with_no_reconnect_ends_at_the_outage_as_a_failure_with_the_reason(bed):
    code, summary, human, callee = await call_bob_through_an_outage(bed, "--no-reconnect")
    print(f"\n{human}")
    assert code == 1 and summary["exit_status"] == 1, human
    assert "the far side went silent" in summary["end_reason"]
    assert "reconnect attempt" not in summary["end_reason"]  # none was made
    assert summary["reconnects"] == 0 and summary["outage_seconds"] == 0
    assert "reconnects: none" in human and f"Call ended after {summary['duration_s']:.1f} s: the far side" in human
    assert callee.reconnects == 0 and callee.ended_by_remote is not None  # alice hung up: bob was told


@pytest.mark.parametrize("command", [["call"], ["orbit", "call", "bob"], ["orbit", "answer"]])
def test_every_calling_command_reconnects_unless_no_reconnect_is_given(command):
    parser = build_parser()
    assert parser.parse_args(command).reconnect is True
    assert parser.parse_args([*command, "--no-reconnect"]).reconnect is False
