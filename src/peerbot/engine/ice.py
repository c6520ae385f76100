"""ICE server configuration: ``iceServers`` entries (read by ``peerbot.ice_servers``) to aiortc's objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from ..errors import ConfigurationError
from ..ice_servers import IceServer, parse_ice_server

IceServerEntry = Mapping[str, Any] | RTCIceServer


def check_ice_servers(servers: Iterable[IceServerEntry] | None, where: str = "ice_servers") -> list[IceServer]:
    """Each entry checked by the one ICE-server reader; ``InvalidIceServerError`` (a
    ``ConfigurationError``) says which and why."""
    if servers is None:
        return []
    if isinstance(servers, (str, bytes, Mapping)):
        raise ConfigurationError(f"{where} must be a list of ICE servers, got {type(servers).__name__}")
    checked = []
    for index, entry in enumerate(servers):
        if isinstance(entry, RTCIceServer):
            entry = {"urls": entry.urls, "username": entry.username, "credential": entry.credential}
        checked.append(parse_ice_server(entry, f"{where}[{index}]"))  # InvalidIceServerError is a ConfigurationError
    return checked


def rtc_configuration(servers: Iterable[IceServerEntry] | None, *, relay_only: bool = False) -> RTCConfiguration:
    """Build the RTCConfiguration. No servers means an empty list: aiortc would otherwise
    fall back to a public STUN server, which stalls gathering on an offline machine."""
    return RTCConfiguration(
        iceServers=[RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
                    for s in check_ice_servers(servers)],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
        # One transport for all media: one set of candidates to gather, like browsers do.
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
