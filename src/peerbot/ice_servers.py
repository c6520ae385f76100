"""The one reader of ``iceServers`` entries (W3C ``RTCIceServer`` JSON), wherever they come from.

Orga's ice-config, Orbit's turn-credentials, ``ice_servers=`` arguments, ``peerbot serve
--ice-server`` and the local servers' settings all pass through :func:`parse_ice_server`, so an
entry is accepted or refused the same way everywhere. They raise :class:`~peerbot.errors.InvalidIceServerError`
(a ``ConfigurationError``); a client reading a server's response turns it into that API's server error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from .errors import InvalidIceServerError as InvalidIceServer

__all__ = ["SCHEMES", "IceServer", "InvalidIceServer", "ice_server_from_text", "parse_ice_server", "parse_ice_servers"]

SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
_MAX_URL_CHARS = 2048


class IceServer(TypedDict):
    """One STUN/TURN server: ``urls`` always a list; TURN entries carry both credentials."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


def parse_ice_server(entry: Any, where: str = "ICE server") -> IceServer:
    """Check one ``{"urls", "username"?, "credential"?}`` entry (``urls`` a string or a list).

    Refused: a non-object, no URL, a URL that is not ``stun:``/``stuns:``/``turn:``/``turns:``,
    non-string credentials, and a TURN URL without both a username and a credential.
    """
    if not isinstance(entry, Mapping):
        raise InvalidIceServer(f"{where} is not an object")
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise InvalidIceServer(f"{where}.urls must be a string or a non-empty list of strings")
    for url in urls:
        if len(url) > _MAX_URL_CHARS or not url.lower().startswith(SCHEMES):
            shown = url[:60] + ("…" if len(url) > 60 else "")
            raise InvalidIceServer(f"{where}.urls has {shown!r}: expected a stun:, stuns:, turn: or turns: URI")
    server = IceServer(urls=list(urls))
    for key in ("username", "credential"):
        value = entry.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise InvalidIceServer(f"{where}.{key} must be a string")
        server[key] = value
    if any(u.lower().startswith("turn") for u in urls) and not (server.get("username") and server.get("credential")):
        raise InvalidIceServer(f"{where} is a TURN server: it needs a username and a credential")
    return server


def parse_ice_servers(value: Any, where: str = "iceServers") -> list[IceServer]:
    """Check a list of entries; ``where`` names it in messages (``iceServers[2].urls …``)."""
    if not isinstance(value, list):
        raise InvalidIceServer(f"{where} must be a list")
    return [parse_ice_server(entry, f"{where}[{index}]") for index, entry in enumerate(value)]


def ice_server_from_text(text: str) -> IceServer:
    """A command-line ICE server: a JSON object, or a bare ``stun:``/``turn:`` URL."""
    if text.lstrip().startswith("{"):
        try:
            entry = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # Only the position: the text may hold a TURN credential.
            where = f" at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
            raise InvalidIceServer(f"ICE server is not valid JSON{where}") from None
        return parse_ice_server(entry)
    return parse_ice_server({"urls": text.strip()})
