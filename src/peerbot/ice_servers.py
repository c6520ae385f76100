"""The one reader of ``iceServers`` entries (W3C ``RTCIceServer`` JSON), wherever they come from.

Orga's ice-config, Orbit's turn-credentials, ``ice_servers=`` arguments, ``peerbot serve
--ice-server`` and the local servers' settings all pass through :func:`parse_ice_server`, so an
entry is accepted or refused the same way everywhere. They raise :class:`~peerbot.errors.InvalidIceServerError`
(a ``ConfigurationError``); a client reading a server's response turns it into that API's server error.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

from .errors import InvalidIceServerError as InvalidIceServer

__all__ = ["SCHEMES", "IceServer", "InvalidIceServer", "ice_server_from_text", "parse_ice_server",
           "parse_ice_servers", "parse_ice_url"]

SCHEMES = ("stun:", "stuns:", "turn:", "turns:")
_MAX_URL_CHARS = 2048
# What aiortc can use of each scheme: it skips a turn: of another transport, a turns: over udp.
_TRANSPORTS = {"turn": ("udp", "tcp"), "turns": ("tcp",)}
# RFC 7064/7065: scheme ":" host [":" port] (turn: and turns: may add "?transport=udp|tcp").
_URI = re.compile(r"(?P<scheme>[A-Za-z]+):(?P<host>\[[^\]]*\]|[^:?\[\]]*)(?::(?P<port>[^?]*))?"
                  r"(?:\?(?P<query>.*))?", re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")


class IceServer(TypedDict):
    """One STUN/TURN server: ``urls`` always a list; TURN entries carry both credentials."""

    urls: list[str]
    username: NotRequired[str]
    credential: NotRequired[str]


def parse_ice_server(entry: Any, where: str = "ICE server") -> IceServer:
    """Check one ``{"urls", "username"?, "credential"?}`` entry (``urls`` a string or a list).

    Refused: a non-object, no URL, a URL :func:`parse_ice_url` refuses, non-string credentials,
    and a TURN URL without both a username and a credential. The URLs come back with their
    scheme in lower case (aiortc only knows it so).
    """
    if not isinstance(entry, Mapping):
        raise InvalidIceServer(f"{where} is not an object")
    urls = entry.get("urls")
    if isinstance(urls, str):
        urls = [urls]
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and u for u in urls):
        raise InvalidIceServer(f"{where}.urls must be a string or a non-empty list of strings")
    urls = [parse_ice_url(url, f"{where}.urls") for url in urls]
    server = IceServer(urls=urls)
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


def _shown(url: str) -> str:
    # A URL is quoted in messages, but never what could be a credential (``turn:user:pw@host``).
    scheme, sep, rest = url.partition(":")
    if "@" in rest:
        rest = "…@" + rest.rsplit("@", 1)[1]
    shown = scheme + sep + rest
    return repr(shown[:60] + ("…" if len(shown) > 60 else ""))


def parse_ice_url(url: str, where: str = "ICE server URL") -> str:
    """Check one STUN/TURN URL fully, as aiortc/aioice will read it; return it with a lower-case scheme.

    ``stun:``/``stuns:`` ``host[:port]``; ``turn:``/``turns:`` ``host[:port][?transport=udp|tcp]``
    (RFC 7064, 7065). The host is a name or an IPv4 address, the port 1 to 65535. Refused too,
    because aiortc cannot use them (it raises or silently skips the server): an IPv6 literal,
    ``turns:`` over udp, anything after the host and port but ``transport``.
    """
    if len(url) > _MAX_URL_CHARS:
        raise InvalidIceServer(f"{where} has a URL longer than {_MAX_URL_CHARS} characters")
    match = _URI.fullmatch(url.strip())
    scheme = match["scheme"].lower() if match else ""
    if not match or f"{scheme}:" not in SCHEMES:
        raise InvalidIceServer(f"{where} has {_shown(url)}: expected a stun:, stuns:, turn: or turns: URI")

    def refuse(why: str) -> InvalidIceServer:
        return InvalidIceServer(f"{where} has {_shown(url)}: {why}")

    host, port, query = match["host"], match["port"], match["query"]
    if "@" in url or "/" in url:
        raise refuse(f"a {scheme}: URI is {scheme}:host[:port], with no user, credential or path"
                     " (give username and credential as their own fields)")
    if not host:
        raise refuse("the host is missing")
    if host.startswith("["):
        raise refuse("IPv6 address literals are not supported by aiortc; use a host name or an IPv4 address")
    if not _HOST.fullmatch(host) or ".." in host:
        raise refuse(f"{host[:40]!r} is not a host name or IPv4 address")
    if all(part.isdigit() for part in host.split(".")):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise refuse(f"{host!r} is not a valid IPv4 address") from None
    if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        raise refuse("the port must be a number from 1 to 65535")
    if query is not None:
        if scheme not in _TRANSPORTS:
            raise refuse(f"a {scheme}: URI takes no '?' part (transport is for turn: and turns:)")
        name, _, transport = query.partition("=")
        if name != "transport" or not transport or "&" in transport:
            raise refuse("the only parameter allowed is ?transport=udp or ?transport=tcp")
        if transport not in _TRANSPORTS[scheme]:
            allowed = " or ".join(f"transport={t}" for t in _TRANSPORTS[scheme])
            raise refuse(f"{scheme}: supports only {allowed} (aiortc skips it otherwise)")
    return scheme + url.strip()[len(scheme):]


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
