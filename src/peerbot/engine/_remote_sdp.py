"""What the engine needs of a far side's description, checked before aiortc is given it.

aiortc applies some descriptions it cannot use and breaks later, out of sight: no DTLS
fingerprint fails an assertion when DTLS starts, a BUNDLE group naming an unknown section
or a candidate port past 65535 raise in its background tasks. Each is refused here as an
``SdpError`` saying what is wrong, in words (never a Python exception's name).
"""

from __future__ import annotations

import ipaddress
import re

from aioice.mdns import is_mdns_hostname
from aiortc.rtcdtlstransport import X509_DIGEST_ALGORITHMS
from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import MediaDescription, SessionDescription

from ..errors import SdpError

# RFC 5888 token (``a=mid``), RFC 8839 ice-char (``a=ice-ufrag`` 4-256, ``a=ice-pwd`` 22-256).
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`{|}~-]{1,64}")
_ICE_UFRAG = re.compile(r"[A-Za-z0-9+/]{4,256}")
_ICE_PWD = re.compile(r"[A-Za-z0-9+/]{22,256}")
_DIGEST_BYTES = {"sha-256": 32, "sha-384": 48, "sha-512": 64}
_CANDIDATE_TYPES = ("host", "srflx", "prflx", "relay")
_MAX_SHOWN = 40


def _shown(value: object) -> str:
    text = str(value)
    return repr(text[:_MAX_SHOWN] + ("…" if len(text) > _MAX_SHOWN else ""))


def check_remote_description(sdp: str, kind: str) -> SessionDescription:
    """``sdp`` parsed, once it holds everything the engine needs; ``SdpError`` otherwise."""
    if not isinstance(sdp, str) or not sdp.startswith("v=0"):
        raise SdpError(f"the {kind} is not an SDP (it must start with 'v=0')")
    try:
        return _checked(sdp)
    except _Unusable as exc:
        raise SdpError(f"the {kind} SDP could not be applied: {exc}") from None


class _Unusable(ValueError):
    """What is wrong with a description, in words."""


def _checked(sdp: str) -> SessionDescription:
    try:
        session = SessionDescription.parse(sdp)
    except Exception:  # aiortc's parser raises ValueError, IndexError, AssertionError…
        raise _Unusable("a line is malformed (an m= line, a number, a=fingerprint, a=candidate, a=rtpmap…)") from None
    if not session.media:
        raise _Unusable("it has no media sections")
    mids = [media.rtp.muxId for media in session.media]
    for index, media in enumerate(session.media):
        _check_media(media, index)
    if len(set(mids)) != len(mids):
        raise _Unusable("two media sections have the same a=mid")
    for group in session.group:
        if group.semantic.upper() != "BUNDLE":
            continue
        unknown = [str(item) for item in group.items if str(item) not in mids]
        if unknown or not group.items:
            what = f"names {_shown(' '.join(unknown))}, which is no media section's a=mid" if unknown else "is empty"
            raise _Unusable(f"its a=group:BUNDLE {what}")
    return session


def _check_media(media: MediaDescription, index: int) -> None:
    where = f"media section {index} (m={media.kind})"
    mid = media.rtp.muxId
    if not mid:
        raise _Unusable(f"{where} has no a=mid (or an empty one)")
    if not _TOKEN.fullmatch(mid):
        raise _Unusable(f"{where} has a=mid {_shown(mid)}: a mid is one token, with no spaces")
    if not 0 <= media.port <= 65535:
        raise _Unusable(f"{where} has port {media.port}: a port is 0 to 65535")
    ufrag, pwd = (media.ice.usernameFragment, media.ice.password) if media.ice is not None else (None, None)
    if not ufrag or not pwd:
        raise _Unusable(f"{where} has no a=ice-ufrag or no a=ice-pwd")
    if not _ICE_UFRAG.fullmatch(ufrag) or not _ICE_PWD.fullmatch(pwd):
        # Not quoted: the password is a secret, and the fragment sits next to it.
        raise _Unusable(f"{where} has a malformed a=ice-ufrag (4-256 characters) or a=ice-pwd (22-256),"
                       " of letters, digits, '+' and '/'")
    _check_fingerprints(media, where)
    for candidate in media.ice_candidates:
        _check_candidate(candidate, where)


def _check_fingerprints(media: MediaDescription, where: str) -> None:
    fingerprints = media.dtls.fingerprints if media.dtls is not None else []
    known = [f for f in fingerprints if f.algorithm.lower() in X509_DIGEST_ALGORITHMS]
    if not known:
        algorithms = ", ".join(X509_DIGEST_ALGORITHMS)
        raise _Unusable(f"{where} has no a=fingerprint of a known algorithm ({algorithms}): DTLS cannot be checked")
    for fingerprint in known:
        size = _DIGEST_BYTES[fingerprint.algorithm.lower()]
        octets = fingerprint.value.split(":")
        if len(octets) != size or not all(len(o) == 2 and all(c in "0123456789abcdefABCDEF" for c in o)
                                          for o in octets):
            raise _Unusable(f"{where} has a malformed a=fingerprint:{fingerprint.algorithm}: expected {size}"
                           " hexadecimal octets separated by ':'")


def _check_candidate(candidate: RTCIceCandidate, where: str) -> None:
    protocol, port = candidate.protocol.lower(), candidate.port
    line = f"{where} has a=candidate for {_shown(candidate.ip)} port {port}"
    if protocol not in ("udp", "tcp"):
        raise _Unusable(f"{line}: its transport {_shown(protocol)} is not udp or tcp")
    if candidate.type not in _CANDIDATE_TYPES:
        raise _Unusable(f"{line}: its type {_shown(candidate.type)} is not one of {', '.join(_CANDIDATE_TYPES)}")
    # tcp active candidates carry port 9 or 0 (RFC 6544); a udp one must be reachable.
    if not (0 if protocol == "tcp" else 1) <= port <= 65535:
        raise _Unusable(f"{line}: a port is 1 to 65535")
    if not 1 <= candidate.component <= 256 or not 0 <= candidate.priority < 2**32:
        raise _Unusable(f"{line}: its component (1-256) or priority (0 to 2^32-1) is out of range")
    if not is_mdns_hostname(candidate.ip):
        try:
            ipaddress.ip_address(candidate.ip)
        except ValueError:
            raise _Unusable(f"{line}: the address is neither an IP address nor an mDNS .local name") from None
