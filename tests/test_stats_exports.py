"""The lazily exported names are discoverable."""

from __future__ import annotations

import peerbot


def test_dir_of_peerbot_lists_the_lazily_exported_names():
    names = dir(peerbot)
    for name in peerbot.__all__:
        assert name in names
    assert {"StatsReport", "StatsSummary", "InboundRtpStats", "orga", "media", "__version__"} <= set(names)
