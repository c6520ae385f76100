"""The ``calls`` request body: validation, and merging ``offer.candidates`` into the offer SDP.

The offer is read with aiortc's own SDP parser, so what is refused here is what aiortc could not
use; on top of that every media section must carry a distinct, non-empty ``a=mid:`` (aiortc
accepts an empty one and then breaks half-way through negotiating it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiortc.rtcicetransport import RTCIceCandidate
from aiortc.sdp import SessionDescription, candidate_from_sdp

from ..errors import ConfigurationError
from ..orga.params import SessionParams
from ._session import apply_fields

MAX_CANDIDATES = 64


class InvalidCallRequest(ValueError):
    """The body of a ``calls`` request is unusable; ``code`` goes into the 400 response."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IceCandidate:
    """One entry of ``offer.candidates`` as the browser SDK sends it."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None


@dataclass(frozen=True)
class CallRequest:
    """A validated ``calls`` body."""

    sdp: str
    candidates: tuple[IceCandidate, ...]
    params: SessionParams


def _candidate(item: Any) -> IceCandidate:
    if not isinstance(item, Mapping) or not isinstance(item.get("candidate"), str):
        raise InvalidCallRequest("invalid_candidates", "each candidate must be an object with a 'candidate' string")
    mid, index = item.get("sdpMid"), item.get("sdpMLineIndex")
    if mid is not None and not isinstance(mid, str):
        raise InvalidCallRequest("invalid_candidates", "'sdpMid' must be a string")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
        raise InvalidCallRequest("invalid_candidates", "'sdpMLineIndex' must be a non-negative integer")
    return IceCandidate(item["candidate"], mid, index)


def parse_call_request(body: Any) -> CallRequest:
    """Check a decoded ``calls`` body; raise ``InvalidCallRequest`` saying what is wrong."""
    if not isinstance(body, Mapping):
        raise InvalidCallRequest("invalid_request", "the body must be a JSON object")
    offer = body.get("offer")
    if not isinstance(offer, Mapping):
        raise InvalidCallRequest("invalid_request", "'offer' is required and must be an object")
    if offer.get("type") != "offer":
        raise InvalidCallRequest("invalid_request", "'offer.type' must be \"offer\"")
    sdp = offer.get("sdp")
    if not isinstance(sdp, str) or not sdp.strip():
        raise InvalidCallRequest("invalid_request", "'offer.sdp' must be a non-empty string")
    raw_candidates = offer.get("candidates", body.get("candidates")) or []
    if not isinstance(raw_candidates, list) or len(raw_candidates) > MAX_CANDIDATES:
        raise InvalidCallRequest("invalid_candidates", f"'offer.candidates' must be a list of at most {MAX_CANDIDATES}")
    raw_params = body.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise InvalidCallRequest("invalid_params", "'params' must be an object")
    try:
        params = apply_fields(SessionParams(), raw_params)
    except ConfigurationError as exc:
        raise InvalidCallRequest("invalid_params", str(exc)) from exc
    candidates = tuple(_candidate(c) for c in raw_candidates)
    read_offer(sdp)
    return CallRequest(sdp, candidates, params)


def read_offer(sdp: str) -> SessionDescription:
    """The offer as aiortc parses it; ``InvalidCallRequest`` (``invalid_sdp``) when it is not usable."""
    if not sdp.lstrip().startswith("v=0"):
        raise InvalidCallRequest("invalid_sdp", "'offer.sdp' is not an SDP (it must start with 'v=0')")
    try:
        session = SessionDescription.parse(sdp)
    except Exception:  # aiortc's parser raises ValueError, IndexError, StopIteration…
        raise InvalidCallRequest("invalid_sdp", "'offer.sdp' could not be parsed: a line is malformed"
                                 " (an m= line, a number, a=fingerprint, a=candidate, a=rtpmap…)") from None
    if not session.media:
        raise InvalidCallRequest("invalid_sdp", "'offer.sdp' is not an SDP offer with media sections")
    mids = [media.rtp.muxId for media in session.media]
    if not all(mids) or len(set(mids)) != len(mids):
        raise InvalidCallRequest("invalid_sdp", "every media section of 'offer.sdp' needs its own non-empty a=mid")
    return session


def _candidate_text(candidate: str) -> str:
    text = candidate.strip()
    text = text[2:] if text.startswith("a=") else text
    return text[len("candidate:") :] if text.startswith("candidate:") else text


def _parsed_candidate(text: str) -> RTCIceCandidate:
    try:
        return candidate_from_sdp(text)
    except (ValueError, IndexError, AssertionError):  # aiortc asserts on the field count
        raise InvalidCallRequest("invalid_candidates", f"malformed ICE candidate: {text[:80]!r}") from None


def _candidate_key(c: RTCIceCandidate) -> tuple[object, ...]:
    # Two lines name the same candidate when address, port, transport and type agree; extension
    # attributes (generation, ufrag, network-id…) differ between the SDP and the list in practice.
    return (c.foundation, c.component, c.protocol.lower(), c.ip.lower(), c.port, c.type)


def merge_candidates(sdp: str, candidates: tuple[IceCandidate, ...] | list[IceCandidate]) -> str:
    """Add to ``sdp`` each candidate it does not already hold, in its media section.

    A candidate is placed by ``sdpMid`` (``a=mid:``) or else ``sdpMLineIndex``; one that names no
    section of this SDP, or is empty (the end-of-candidates marker), is ignored. The SDP comes
    back as aiortc renders it when something was added, unchanged otherwise.
    """
    session = read_offer(sdp)
    mids = [media.rtp.muxId for media in session.media]
    added = False
    for candidate in candidates:
        text = _candidate_text(candidate.candidate)
        if not text:
            continue
        parsed = _parsed_candidate(text)
        if candidate.sdp_mid is not None and candidate.sdp_mid in mids:
            media = session.media[mids.index(candidate.sdp_mid)]
        elif candidate.sdp_mline_index is not None and candidate.sdp_mline_index < len(mids):
            media = session.media[candidate.sdp_mline_index]
        else:
            continue
        if _candidate_key(parsed) not in {_candidate_key(c) for c in media.ice_candidates}:
            media.ice_candidates.append(parsed)
            added = True
    return str(session) if added else sdp
