"""The ``calls`` request body: validation, and merging ``offer.candidates`` into the offer SDP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..orga.params import SessionParams
from ._session import apply_fields


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
    # aiortc accepts almost any text as a description with no media, so insist on the basics.
    lines = sdp.strip().splitlines()
    if lines[0].strip() != "v=0" or not any(line.startswith("m=") for line in lines):
        raise InvalidCallRequest("invalid_sdp", "'offer.sdp' is not an SDP offer with media sections")
    raw_candidates = offer.get("candidates", body.get("candidates")) or []
    if not isinstance(raw_candidates, list):
        raise InvalidCallRequest("invalid_candidates", "'offer.candidates' must be a list")
    raw_params = body.get("params") or {}
    if not isinstance(raw_params, Mapping):
        raise InvalidCallRequest("invalid_params", "'params' must be an object")
    try:
        params = apply_fields(SessionParams(), raw_params)
    except ConfigurationError as exc:
        raise InvalidCallRequest("invalid_params", str(exc)) from exc
    return CallRequest(sdp, tuple(_candidate(c) for c in raw_candidates), params)


def _candidate_key(text: str) -> tuple[str, ...]:
    # Two lines name the same candidate when address, port, transport and type agree; extension
    # attributes (generation, ufrag, network-id…) differ between the SDP and the list in practice.
    bits = text.split()
    if len(bits) < 8 or bits[6] != "typ" or not (bits[1].isdigit() and bits[3].isdigit() and bits[5].isdigit()):
        raise InvalidCallRequest("invalid_candidates", f"malformed ICE candidate: {text[:80]!r}")
    return (bits[0], bits[1], bits[2].lower(), bits[4].lower(), bits[5], bits[7])


def _candidate_text(candidate: str) -> str:
    text = candidate.strip()
    text = text[2:] if text.startswith("a=") else text
    return text[len("candidate:") :] if text.startswith("candidate:") else text


def merge_candidates(sdp: str, candidates: tuple[IceCandidate, ...] | list[IceCandidate]) -> str:
    """Add to ``sdp`` each candidate it does not already hold, in its media section.

    A candidate is placed by ``sdpMid`` (``a=mid:``) or else ``sdpMLineIndex``; one that names no
    section of this SDP, or is empty (the end-of-candidates marker), is ignored.
    """
    lines = sdp.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    sections = [(start, starts[n + 1] if n + 1 < len(starts) else len(lines)) for n, start in enumerate(starts)]
    mids = [next((lines[i][6:] for i in range(a, b) if lines[i].startswith("a=mid:")), None) for a, b in sections]
    added: dict[int, list[str]] = {}
    for candidate in candidates:
        text = _candidate_text(candidate.candidate)
        if not text:
            continue
        key = _candidate_key(text)
        if candidate.sdp_mid is not None and candidate.sdp_mid in mids:
            section = mids.index(candidate.sdp_mid)
        elif candidate.sdp_mline_index is not None and candidate.sdp_mline_index < len(sections):
            section = candidate.sdp_mline_index
        else:
            continue
        start, end = sections[section]
        present = {
            _candidate_key(_candidate_text(line)) for line in lines[start:end] if line.startswith("a=candidate:")
        }
        present |= {_candidate_key(t) for t in added.get(section, [])}
        if key not in present:
            added.setdefault(section, []).append(text)
    if not added:
        return sdp
    out: list[str] = []
    for n, (start, end) in enumerate(sections):
        if n == 0:
            out.extend(lines[:start])
        body = lines[start:end]
        # Keep a=end-of-candidates last: aiortc stops taking candidates after it.
        at = next((i for i, line in enumerate(body) if line.startswith("a=end-of-candidates")), len(body))
        out.extend(body[:at] + [f"a=candidate:{t}" for t in added.get(n, [])] + body[at:])
    return "\r\n".join(out) + "\r\n"
