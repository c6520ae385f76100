"""The one REST transport under the Orga and Orbit clients: send, read a bounded body, read JSON.

:class:`RestTransport` sends a request with one deadline for the whole exchange, reads at most
``max_body_bytes`` of the answer (streamed: a larger body is never read in full), and hands
every failure to the client's :class:`Failures`, which turns it into that API's typed error.
:func:`read_json` decodes hostile bodies without letting anything but :class:`MalformedResponse`
escape (deep nesting, huge integers, NaN/Infinity, non-UTF-8). Credentials are scrubbed from any
text that came from elsewhere (a server's message, an OS error) before it reaches a message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import httpx

from ._redact import redact
from .errors import ClientClosedError, ConfigurationError, PeerbotError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES", "Failures", "MalformedResponse", "Reply", "RestTransport", "check_credential", "read_json",
    "require_timeout", "shown",
]

logger = logging.getLogger("peerbot.rest")

T = TypeVar("T")
DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: far above any real answer of either API
_SNIPPET_CHARS = 200


class MalformedResponse(ValueError):
    """A body is not what the route promises: not JSON, too large, or a field missing or mistyped.

    The message is the bare problem; ``predicate`` is how a client's error continues "the
    response to <route> …": ``is not JSON (text/html)``, ``is missing the field 'answer'``,
    ``is malformed: <problem>``.
    """

    def __init__(self, problem: str, *, predicate: str | None = None) -> None:
        super().__init__(problem)
        self.predicate = predicate or f"is malformed: {problem}"


def missing(name: str) -> MalformedResponse:
    """The field ``name`` is absent (or empty, or of the wrong type)."""
    return MalformedResponse(f"field {name!r} is missing", predicate=f"is missing the field {name!r}")


def not_json(reason: str) -> MalformedResponse:
    return MalformedResponse(f"not JSON ({reason})", predicate=f"is not JSON ({reason})")


def shown(value: Any) -> str:
    """A value fit for a message: a short string's repr, else only its type (a hostile value's repr
    could be huge or nested past the recursion limit)."""
    if isinstance(value, str):
        return repr(value[:40] + ("…" if len(value) > 40 else ""))
    if value is None or isinstance(value, bool):
        return repr(value)
    return type(value).__name__


def require_timeout(timeout: Any) -> float:
    """A positive, finite number of seconds, else :class:`~peerbot.errors.ConfigurationError`."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout < math.inf:
        raise ConfigurationError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def check_credential(credential: Any, what: str = "the credential (API key or token)") -> str:
    """``credential`` if it can go in an ``Authorization`` header as it is: printable ASCII with no
    line break or control character; else :class:`~peerbot.errors.ConfigurationError` (which never
    shows the value: it is a secret)."""
    if not isinstance(credential, str) or not credential:
        raise ConfigurationError(f"{what} must be a non-empty string, got {type(credential).__name__}")
    if not (credential.isascii() and credential.isprintable()):
        bad = next(c for c in credential if not (c.isascii() and c.isprintable()))
        raise ConfigurationError(f"{what} must be printable ASCII text: it holds {bad!r}"
                                 f" at position {credential.index(bad)} (a stray line break or paste?)")
    return credential


# --- decoding ----------------------------------------------------------------------------


class _NotFinite(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotFinite(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise _NotFinite(text[:20])
    return value


def read_json(body: bytes | str, content_type: str = "no content-type") -> Any:
    """The JSON value in ``body``; anything that is not plain, finite, UTF-8 JSON is a :class:`MalformedResponse`."""
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError:
        raise not_json(f"{content_type}, not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotFinite as exc:
        raise not_json(f"{content_type}, {exc} where a number is expected") from None
    except RecursionError:
        raise not_json(f"{content_type}, nested too deeply") from None
    except json.JSONDecodeError:
        raise not_json(content_type) from None
    except ValueError:  # the int conversion limit: an integer of thousands of digits
        raise not_json(f"{content_type}, a number is too large") from None


# --- the transport -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An HTTP answer read to at most the cap: ``truncated`` says the body went on past it."""

    status: int
    content_type: str
    body: bytes
    truncated: bool = False
    declared: int | None = None  # a Content-Length over the cap (``limit``): the body was not read at all
    limit: int = 0

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body's JSON value (``None`` for an empty body); :class:`MalformedResponse` otherwise."""
        if self.declared is not None:
            raise MalformedResponse("too large", predicate=f"is larger than {self.limit} bytes"
                                                          f" (it declares {self.declared})")
        if self.truncated:
            raise MalformedResponse("too large", predicate=f"is larger than {len(self.body)} bytes")
        if not self.body:
            return None
        return read_json(self.body, self.content_type)

    def snippet(self) -> str:
        """The start of the body as text, for an error message."""
        return self.body[: _SNIPPET_CHARS * 4].decode("utf-8", "replace").strip()[:_SNIPPET_CHARS]


@dataclass(frozen=True)
class Request:
    """One request: ``name`` is how messages call it, ``url`` the full URL they show (no query)."""

    route: Any  # the client's own route object, for its failure mapping
    method: str
    path: str
    name: str
    url: str


class Failures(Protocol):
    """A client's mapping of each failure to its own typed error (the text is already scrubbed)."""

    def timed_out(self, request: Request, seconds: float) -> PeerbotError: ...

    def unreachable(self, request: Request, reason: str) -> PeerbotError: ...

    def connection_failed(self, request: Request, reason: str) -> PeerbotError: ...

    def refused(self, request: Request, reply: Reply, scrub: Callable[[str], str]) -> PeerbotError: ...

    def malformed(self, request: Request, reply: Reply, problem: MalformedResponse) -> PeerbotError: ...


class RestTransport:
    """One httpx client; ``call`` sends a request and returns its parsed JSON, or raises the client's error.

    ``base_url`` may hold ``user:password@``: messages and logs show ``shown_base_url`` only.
    ``secrets`` are scrubbed from foreign text besides each request's own credential.
    """

    def __init__(
        self,
        base_url: str,
        failures: Failures,
        *,
        label: str,
        timeout: float,
        secrets: Iterable[str] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        verify: Any = True,
    ) -> None:
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes <= 0:
            raise ConfigurationError(f"max_body_bytes must be a positive number of bytes, got {max_body_bytes!r}")
        self.shown_base_url = str(httpx.URL(base_url).copy_with(userinfo=b"", query=None)).rstrip("/")
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self._failures = failures
        self._label = label
        self._secrets = tuple(s for s in secrets if s)
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, verify=verify)

    async def aclose(self) -> None:
        await self._http.aclose()

    @property
    def is_closed(self) -> bool:
        return self._http.is_closed

    async def call(
        self,
        route: Any,
        path: str,
        parse: Callable[[Any], T],
        *,
        name: str,
        credential: str,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> T:
        """Send ``route.method`` to ``path``; a non-2xx answer is ``failures.refused``; return ``parse(JSON body)``.

        ``parse`` raises :class:`MalformedResponse` for a body of the wrong shape.
        """
        request = Request(route, route.method, path, name, f"{self.shown_base_url}{path}")
        reply = await self.send(request, credential, headers=headers, params=params, json_body=json_body)
        if not reply.ok:
            raise self._failures.refused(request, reply, lambda text: self.scrub(text, credential))
        try:
            return parse(reply.json())
        except MalformedResponse as exc:
            raise self._failures.malformed(request, reply, exc) from None

    async def send(
        self,
        request: Request,
        credential: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> Reply:
        """Send one request with ``Authorization: Bearer <credential>``; read the answer within the deadline."""
        if self._http.is_closed:
            raise ClientClosedError(f"{self._label} is closed (aclose() was called): make a new one")
        check_credential(credential)  # h11 would refuse it half-way, as a "connection failed"
        # The query (an email, a token) stays out of logs.
        logger.debug("%s: %s %s (Authorization: Bearer %s)", self._label, request.method, request.url,
                     redact(credential))
        outgoing = self._http.build_request(
            request.method, request.path, params=params, json=json_body,
            headers={**(headers or {}), "Authorization": f"Bearer {credential}"},
        )
        try:
            async with asyncio.timeout(self.timeout):
                reply = await self._exchange(outgoing)
        except (TimeoutError, httpx.TimeoutException):
            raise self._failures.timed_out(request, self.timeout) from None
        except httpx.ConnectError as exc:
            # Chained exceptions are dropped (from None): their text is not ours to vet.
            raise self._failures.unreachable(request, self.scrub(str(exc), credential) or type(exc).__name__) from None
        except httpx.TransportError as exc:
            reason = f"{type(exc).__name__} {self.scrub(str(exc), credential)}".rstrip()
            raise self._failures.connection_failed(request, reason) from None
        logger.debug("%s: %s %s -> %d", self._label, request.method, request.url, reply.status)
        return reply

    async def _exchange(self, outgoing: httpx.Request) -> Reply:
        response = await self._http.send(outgoing, stream=True)
        try:
            content_type = response.headers.get("content-type", "no content-type")
            declared = _content_length(response)
            if declared is not None and declared > self.max_body_bytes:  # refused at once, not waited for
                return Reply(response.status_code, content_type, b"", truncated=True, declared=declared,
                             limit=self.max_body_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():  # decoded bytes: a gzip bomb stops at the cap too
                chunks.append(chunk)
                size += len(chunk)
                if size > self.max_body_bytes:
                    body = b"".join(chunks)[: self.max_body_bytes]
                    return Reply(response.status_code, content_type, body, truncated=True)
            return Reply(response.status_code, content_type, b"".join(chunks))
        finally:
            await response.aclose()

    def scrub(self, text: str, credential: str = "") -> str:
        """``text`` with every credential shown redacted."""
        for secret in {*self._secrets, credential} - {""}:
            text = text.replace(secret, redact(secret))
        return text


def _content_length(response: httpx.Response) -> int | None:
    """The declared body length, when it is a plain number (httpx/h11 vet the header's syntax)."""
    value = response.headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) < 30 else None
