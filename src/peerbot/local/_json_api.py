"""JSON error bodies and request reading for the local servers: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """Raised by a handler to answer with a JSON error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
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
    except Exception:
        # The path only: a query may hold a token.
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


def bearer(request: web.Request) -> str:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        raise ApiError(401, "missing_credentials", "send 'Authorization: Bearer <credential>'")
    return credential.strip()


async def read_json_object(request: web.Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object (``{}`` for an empty optional body); 400 otherwise, 413 past the size limit."""
    raw = await request.read()  # raises HTTPRequestEntityTooLarge past client_max_size
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
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
