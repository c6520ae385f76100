"""TURN details aiortc leaves to us: trusting a private CA for ``turns:``, and saying why no
relay candidate was gathered.

aioice opens a ``turns:`` connection with Python's default SSL context: the system's trust
store, which OpenSSL lets the ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` environment variables
replace. ``tls_context`` builds a context that trusts one given CA bundle instead, with
certificate and host-name checks kept.

aioice also drops the exception of a failed TURN allocation, so gathering only shows that no
relay candidate came. ``relay_failure`` repeats the allocation once with aioice's own TURN client
to hear the server's answer (its STUN error code) and puts it into words.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from typing import Any

from aioice import stun, turn

from ..errors import ConfigurationError


def tls_context(ca_file: str | os.PathLike[str]) -> ssl.SSLContext:
    """A client context that verifies a ``turns:`` server against ``ca_file`` (PEM) only."""
    try:
        return ssl.create_default_context(cafile=os.fspath(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"turn_tls_ca {os.fspath(ca_file)!r} is not a readable PEM CA bundle: {exc}") from exc


def describe_server(connection: Any) -> str:
    """``TURN server host:port over udp|tcp|tls`` for an aioice ``Connection``."""
    host, port = connection.turn_server
    transport = "tls" if connection.turn_ssl else connection.turn_transport
    return f"TURN server {f'[{host}]' if ':' in host else host}:{port} over {transport}"


async def relay_failure(connection: Any, *, timeout: float, waited: float) -> str | None:
    """Why the aioice ``connection`` gathered no relay candidate; None without a TURN server.

    ``waited`` is how long gathering took: if it used the whole ``timeout``, the server never
    answered and asking again would only double the wait.
    """
    if connection.turn_server is None:
        return None
    where = describe_server(connection)
    if waited >= timeout * 0.9:
        return f"{where} did not answer within {timeout:g} s"
    try:
        relay, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(
                asyncio.DatagramProtocol,
                server_addr=connection.turn_server,
                username=connection.turn_username,
                password=connection.turn_password,
                ssl=connection.turn_ssl,
                transport=connection.turn_transport,
            ),
            timeout,
        )
    except stun.TransactionFailed as exc:
        return _refusal(where, exc.response, connection.turn_username)
    except (stun.TransactionTimeout, asyncio.TimeoutError):
        return f"{where} did not answer within {timeout:g} s"
    except ssl.SSLCertVerificationError as exc:
        return (f"{where} presented a TLS certificate that could not be verified ({exc.verify_message}):"
                " trust its CA (turn_tls_ca, or SSL_CERT_FILE)")
    except ssl.SSLError as exc:
        return f"the TLS handshake with {where} failed ({exc.reason or exc})"
    except ConnectionRefusedError:
        return f"{where} refused the connection (nothing listens there)"
    except OSError as exc:
        return f"{where} could not be reached ({exc.strerror or exc})"
    except Exception as exc:  # e.g. ConnectionError for a malformed Allocate response
        return f"{where} did not grant an allocation ({type(exc).__name__}: {exc})"
    relay.close()  # deletes the allocation
    return f"{where} failed during gathering but granted an allocation when asked again (a transient failure)"


def _refusal(where: str, response: stun.Message, username: str | None) -> str:
    code, reason = response.attributes.get("ERROR-CODE", (0, "no error code"))
    if code == 401:
        return f"{where} refused the credentials ({code} {reason}){_rest_expiry_hint(username)}"
    return f"{where} refused the allocation ({code} {reason})"


def _rest_expiry_hint(username: str | None) -> str:
    # TURN REST usernames start with their expiry time, "<unix time>:<user>": a past one is
    # the likeliest reason for a 401, and the only one the client can tell apart.
    expiry, sep, _ = (username or "").partition(":")
    if sep and expiry.isdigit():
        late = time.time() - int(expiry)
        if late > 0:
            return f": the TURN REST username expired {late:.0f} s ago"
    return ""
