"""JSON error bodies and request reading for the local servers: ``{"error": {"code", "message"}}``.

A hostile body must end in a 4xx, never a 500 with a traceback: the decoder refuses ``NaN`` and
``Infinity`` (not JSON) and numbers past float's range, nesting deep enough to exhaust the stack, integers past Python's
conversion limit, and a body that does not arrive within the read timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

BODY_TIMEOUT_KEY: web.AppKey[float] = web.AppKey("body_timeout", float)


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    """A JSON error response."""
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure of a handler into a JSON error response."""
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "payload_too_large", f"the body exceeds {request.client_max_size} bytes")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
    except ConnectionError:
        # The client went away mid-request (an upload dropped half-way): nobody reads an answer.
        log.debug("client left during %s %s", request.method, request.path)
        return error_response(400, "connection_lost", "the connection closed before the request was complete")
    except Exception:
        # The path only: a query may hold a token.
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


def bearer(request: web.Request) -> str:
    """The credential of ``Authorization: Bearer …``; 401 when there is none."""
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError(401, "missing_credentials", "send 'Authorization: Bearer <credential>'")
    if not credential.isascii():  # keys and tokens are ASCII; aiohttp hands other bytes over as surrogates
        raise ApiError(401, "invalid_credentials", "the credential is not a key or token")
    return credential.strip()


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise ValueError(f"{text[:20]} is out of range")
    return value


def decode_json(raw: bytes | str) -> Any:
    """Strict JSON (no ``NaN``/``Infinity``); ``ApiError`` 400 for anything else."""
    try:
        return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise ApiError(400, "invalid_json", "the body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # ValueError includes the int digit limit
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:200]}") from None


async def read_json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object (``{}`` for an empty optional body); 400 otherwise, 413 past the
    size limit, 408 when it does not arrive within the app's body timeout."""
    timeout = request.app.get(BODY_TIMEOUT_KEY)
    try:
        raw = await asyncio.wait_for(request.read(), timeout)  # 413 past client_max_size
    except asyncio.TimeoutError:
        raise ApiError(408, "request_timeout", f"the body did not arrive within {timeout:g} s") from None
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    data = decode_json(raw)
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_request", "the body must be a JSON object")
    return data


# --- CORS: the real services answer browsers directly, so the local ones do too ------------


async def allow_any_origin(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` hook: every response, errors included, may be read cross-origin."""
    response.headers["Access-Control-Allow-Origin"] = "*"


def preflight(methods: Sequence[str], headers: str) -> Handler:
    """An ``OPTIONS`` handler allowing ``methods`` and request ``headers`` (no credentials)."""

    async def answer(request: web.Request) -> web.Response:
        return web.Response(status=204, headers={
            "Access-Control-Allow-Methods": ", ".join((*methods, "OPTIONS")),
            "Access-Control-Allow-Headers": headers,
            "Access-Control-Max-Age": "600",
        })

    return answer
