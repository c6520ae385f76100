"""Checks of JSON request fields shared by the local servers: numbers and nested objects.

JSON numbers arrive as Python ints of any size (``1e999`` digits overflow ``float()``) and
bools pass ``isinstance(x, int)``; objects may nest deep enough that encoding them again
exhausts the stack. These helpers say no before any of that reaches a handler's arithmetic.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ._json_api import ApiError

MAX_DEPTH = 16


def finite_number(value: Any) -> float | None:
    """``value`` as a finite float when it is a JSON number (not a bool), else ``None``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float's range
        return None
    return number if math.isfinite(number) else None


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How many levels of lists and objects ``value`` nests (a scalar: 0), counting at most ``limit + 1``."""
    level, frontier = 0, [value]
    while level <= limit:
        containers = [item for item in frontier if isinstance(item, (dict, list))]
        if not containers:
            return level
        level += 1
        frontier = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return level


# --- the request fields of the Orbit routes ---------------------------------------------

MAX_TEXT = 256
MAX_METADATA_BYTES = 16 * 1024


def text(body: Mapping[str, Any], name: str, *, required: bool = True) -> Any:
    """A non-empty string of at most ``MAX_TEXT`` characters (``None`` if optional and absent); 400 otherwise."""
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise ApiError(400, "invalid_request", f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def metadata(body: Mapping[str, Any], name: str, max_bytes: int = MAX_METADATA_BYTES) -> dict[str, Any] | None:
    """An optional object, at most ``MAX_DEPTH`` deep and ``max_bytes`` as JSON (413 past that)."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_request", f"{name} must be an object")
    if depth(value) > MAX_DEPTH:
        raise ApiError(400, "invalid_request", f"{name} nests more than {MAX_DEPTH} levels")
    if len(json.dumps(value).encode()) > max_bytes:
        raise ApiError(413, "metadata_too_large", f"{name} exceeds {max_bytes} bytes as JSON")
    return value


def metric(body: Mapping[str, Any], name: str) -> float:
    """A finite number >= 0; 400 otherwise."""
    value = finite_number(body.get(name))
    if value is None or value < 0:
        raise ApiError(400, "invalid_request", f"{name} must be a number >= 0")
    return value


def sequence_number(raw: str | None, name: str = "since") -> int | None:
    """A query's event sequence number (``None`` when absent); 400 unless it is an integer >= 0 that fits 64 bits."""
    if raw is None:
        return None
    # The length check comes first: int() refuses over 4300 digits, and is slow long before.
    if len(raw) > 19 or not (raw.isascii() and raw.isdigit()) or int(raw) >= 2**63:
        raise ApiError(400, "invalid_query", f"{name} must be a sequence number (an integer from 0 to 2**63-1)")
    return int(raw)
