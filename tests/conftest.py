"""Shared fixtures: the embedded Orga-compatible server, started in-process per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # media_checks, audio_device

from peerbot.local.orga_server import LocalOrgaServer  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
USER_EMAIL = "tester@peerbot.example"


@pytest.fixture
async def orga_server():
    async with LocalOrgaServer(echo_delay=0.1) as server:
        yield server


@pytest.fixture
def orga_kwargs(orga_server):
    """What ``peerbot.orga.connect`` needs to reach the embedded server."""
    return {"api_key": orga_server.api_key, "base_url": orga_server.base_url, "user_email": USER_EMAIL}
