"""ICE server configuration: the ``iceServers`` JSON shape to aiortc's objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy, RTCIceTransportPolicy

from ..errors import ConfigurationError

_SCHEMES = ("stun:", "turn:", "turns:")


def ice_server(entry: Mapping[str, Any] | RTCIceServer) -> RTCIceServer:
    """Convert one ``{"urls", "username"?, "credential"?}`` entry (urls a string or a list)."""
    if isinstance(entry, RTCIceServer):
        return entry
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not urls or not all(isinstance(u, str) and u.startswith(_SCHEMES) for u in urls):
        raise ConfigurationError(f"ICE server needs 'urls' of stun:/turn:/turns: URIs, got {urls!r}")
    if any(u.startswith("turn") for u in urls) and not (entry.get("username") and entry.get("credential")):
        raise ConfigurationError("a TURN server needs a username and a credential")
    return RTCIceServer(urls=list(urls), username=entry.get("username"), credential=entry.get("credential"))


def rtc_configuration(
    servers: Iterable[Mapping[str, Any] | RTCIceServer] | None, *, relay_only: bool = False
) -> RTCConfiguration:
    """Build the RTCConfiguration. No servers means an empty list: aiortc would otherwise
    fall back to a public STUN server, which stalls gathering on an offline machine."""
    return RTCConfiguration(
        iceServers=[ice_server(s) for s in servers or []],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
        # One transport for all media: one set of candidates to gather, like browsers do.
        bundlePolicy=RTCBundlePolicy.MAX_BUNDLE,
    )
