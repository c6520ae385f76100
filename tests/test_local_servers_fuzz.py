"""Random requests at every route of both local servers (from the shared route tables): every
answer is a 2xx or a 4xx JSON error, never a 5xx, and the server still serves a good request."""

from __future__ import annotations

import asyncio
import json
import logging
import string
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peerbot.local.orbit_server import LocalOrbitServer
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orbit import routes as orbit_routes
from peerbot.orga import routes as orga_routes

FIELDS = ["external_id", "display_name", "metadata", "ttl", "callee_id", "type", "sdp", "candidate", "sdpMid",
          "sdpMLineIndex", "bitrate", "packet_loss", "jitter", "rtt", "expires_in", "offer", "params", "candidates",
          "temperature", "voice", "modalities", "history", "instructions"]
QUERY = ["email", "active_only", "token", "client_id", "since"]
HEADER_TEXT = st.text(alphabet=string.printable.strip() + " ", max_size=40).map(str.strip)  # as h11 sends them
SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=10**300, max_value=10**301)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
bodies = (
    json_values.map(lambda v: json.dumps(v).encode())
    | st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=5).map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=64)
    | st.sampled_from([b"", b"NaN", b'{"expires_in": NaN}', b'{"ttl": Infinity}', b"[" * 5000, b"9" * 5000,
                       b'{"offer": {"type": "offer", "sdp": "v=0\\r\\nm=audio 9 RTP 0\\r\\na=mid:\\r\\n"}}'])
)


def route_table() -> list[tuple[str, str, Callable[..., str]]]:
    """(server, method, fill(**params) -> path) for every route of both route tables."""
    table: list[tuple[str, str, Callable[..., str]]] = [
        ("orga", r.method, (lambda path: lambda **_: path)(r.path)) for r in orga_routes.ROUTES
    ]
    for r in orbit_routes.ROUTES:
        names = [part.split("}")[0] for part in r.path.split("{")[1:]]
        table.append(("orbit", r.method, (lambda route, names: lambda **p: route.url(**{n: p[n] for n in names}))(r, names)))
    table += [(server, "OPTIONS", fill) for server, _, fill in table]
    table += [("orga", "GET", lambda **_: "/healthz"), ("orbit", "GET", lambda **_: "/healthz")]
    return table


ROUTES = route_table()


class Bed:
    """Both servers on one event loop, with the credentials a fuzzed request may pick from."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.orga = LocalOrgaServer()
        self.orbit = LocalOrbitServer()
        self.credentials: dict[str, list[str]] = {}
        self.ids: list[str] = []

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def start(self) -> None:
        await self.orga.start()
        await self.orbit.start()
        self.http = httpx.AsyncClient(timeout=10)
        token = (await self.http.post(self.orga.base_url + orga_routes.CLIENT_SECRETS.path,
                                      params={"email": "a@b.cd"},
                                      headers={"Authorization": f"Bearer {self.orga.api_key}"})).json()
        orbit_key = {"Authorization": f"Bearer {self.orbit.secret_key}"}
        user = (await self.http.post(self.orbit.base_url + orbit_routes.USERS_CREATE.template, headers=orbit_key,
                                     json={"external_id": "fuzz", "display_name": "Fuzz"})).json()
        user_token = (await self.http.post(self.orbit.base_url + orbit_routes.USERS_CREATE_TOKEN.url(user_id=user["id"]),
                                           headers=orbit_key, json={})).json()
        self.credentials = {"orga": [self.orga.api_key, token["ephemeral_token"]],
                            "orbit": [self.orbit.secret_key, user_token["token"]]}
        self.ids = [user["id"], "fuzz"]

    async def stop(self) -> None:
        await self.http.aclose()
        await self.orga.stop()
        await self.orbit.stop()


def test_random_requests_at_every_route_get_a_2xx_or_a_4xx_json_error_and_the_servers_keep_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    bed = Bed()
    bed.run(bed.start())
    statuses: dict[int, int] = {}
    try:
        @SETTINGS
        @given(
            route=st.sampled_from(ROUTES),
            credential=st.none() | st.integers(0, 1) | HEADER_TEXT,
            acting=st.none() | st.integers(0, 1) | HEADER_TEXT,
            client_id=st.none() | st.just(True) | HEADER_TEXT,
            path_value=st.integers(0, 1) | st.text(max_size=20),
            query=st.dictionaries(st.sampled_from(QUERY), st.text(max_size=30), max_size=3)
            | st.just({"since": "9" * 5000}),  # one long value: the request line stays under aiohttp's 8 KiB
            body=bodies,
        )
        def probe(route: tuple[str, str, Callable[..., str]], credential: Any, acting: Any, client_id: Any,
                  path_value: Any, query: dict[str, str], body: bytes) -> None:
            server_name, method, fill = route
            server = bed.orga if server_name == "orga" else bed.orbit
            value = bed.ids[path_value] if isinstance(path_value, int) else path_value
            path = fill(user_id=value, external_id=value, call_id=value)
            headers = {"Content-Type": "application/json"}
            if credential is not None:
                chosen = bed.credentials[server_name][credential] if isinstance(credential, int) else credential
                headers["Authorization"] = f"Bearer {chosen}".strip()
            if acting is not None:
                headers[orbit_routes.ACTING_USER_HEADER] = bed.ids[acting] if isinstance(acting, int) else acting
            if client_id is not None:
                headers[orbit_routes.CLIENT_ID_HEADER] = bed.orbit.publishable_key if client_id is True else client_id
            response = bed.run(bed.http.request(method, server.base_url + path, params=query, headers=headers,
                                                content=body))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, (method, path, response.status_code, response.text[:300])
            if response.status_code >= 400:
                assert isinstance(response.json()["error"]["code"], str), response.text[:300]

        probe()
        assert any(400 <= s < 500 for s in statuses) and any(s < 300 for s in statuses), statuses
        healthy = [bed.run(bed.http.get(s.base_url + "/healthz")).json()["status"] for s in (bed.orga, bed.orbit)]
        assert healthy == ["ok", "ok"]
        good = bed.run(bed.http.post(bed.orbit.base_url + orbit_routes.USERS_CREATE.template,
                                     headers={"Authorization": f"Bearer {bed.orbit.secret_key}"},
                                     json={"external_id": "after", "display_name": "After"}))
        assert good.status_code == 201
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]
    finally:
        bed.run(bed.stop())
        bed.loop.close()
