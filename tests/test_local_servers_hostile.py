"""Hostile input to both local servers: bad offers, pathological JSON, dropped and idle
connections. Each must get a 4xx JSON error (or a dropped connection) and leave nothing behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from peerbot.engine.peer import Peer
from peerbot.errors import SdpError
from peerbot.local.orbit_server import LocalOrbitServer
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orbit import routes as orbit_routes
from peerbot.orga.routes import CALLS, CLIENT_SECRETS, DATA_CHANNEL_LABEL, ICE_CONFIG

EMAIL = "tester@example.com"
DEEP = b"[" * 100_000 + b"]" * 100_000


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def open_sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except FileNotFoundError:  # the directory listing's own descriptor
            pass
    return count


async def real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel(DATA_CHANNEL_LABEL)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


@pytest.fixture
async def orga() -> AsyncIterator[tuple[LocalOrgaServer, httpx.AsyncClient, str]]:
    async with LocalOrgaServer(read_timeout=1.0) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            response = await http.post(CLIENT_SECRETS.path, params={"email": EMAIL}, headers=bearer(server.api_key))
            yield server, http, response.json()["ephemeral_token"]


@pytest.fixture
async def orbit() -> AsyncIterator[tuple[LocalOrbitServer, httpx.AsyncClient]]:
    async with LocalOrbitServer(read_timeout=1.0) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            yield server, http


# --- offers aiortc cannot use ------------------------------------------------------------


async def test_offer_with_an_empty_mid_gets_400_and_leaves_no_call_task_or_socket(orga: Any) -> None:
    server, http, token = orga
    offer = re.sub(r"a=mid:\S+", "a=mid:", await real_offer(), count=1)
    sockets, tasks = open_sockets(), len(asyncio.all_tasks())
    response = await http.post(CALLS.path, headers=bearer(token), json={"offer": {"type": "offer", "sdp": offer}})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_sdp"
    assert not server.calls
    assert (open_sockets(), len(asyncio.all_tasks())) == (sockets, tasks)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 3


async def test_offers_broken_line_by_line_get_200_or_400_and_stop_still_completes(orga: Any) -> None:
    # Every single-line mutation of a real offer: the way the empty a=mid was found.
    server, http, token = orga
    lines = (await real_offer()).splitlines()
    statuses: dict[int, int] = {}
    for n, line in enumerate(lines):
        for broken in ("", line.split(":", 1)[0] + ":" if ":" in line else line[:2]):
            sdp = "\r\n".join(lines[:n] + ([broken] if broken else []) + lines[n + 1 :]) + "\r\n"
            response = await http.post(CALLS.path, headers=bearer(token), json={"offer": {"type": "offer", "sdp": sdp}})
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code in (200, 400), response.text
            assert "error" in response.json() or "answer" in response.json()
            for call in list(server.calls.values()):
                await call.close()
    assert statuses.get(400, 0) > 10 and set(statuses) <= {200, 400}
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 3 and not server.calls


# --- pathological JSON ---------------------------------------------------------------------


# The Orbit routes that read a JSON body; the other POSTs ignore theirs.
ORBIT_JSON_ROUTES = {
    orbit_routes.USERS_CREATE, orbit_routes.USERS_UPDATE, orbit_routes.USERS_CREATE_TOKEN,
    orbit_routes.CALLS_INITIATE, orbit_routes.CALLS_SUBMIT_OFFER, orbit_routes.CALLS_SUBMIT_ANSWER,
    orbit_routes.CALLS_ADD_ICE_CANDIDATE, orbit_routes.CALLS_SUBMIT_METRICS,
}


def orbit_request(server: LocalOrbitServer, route: orbit_routes.Route, user_id: str) -> tuple[str, dict[str, str]]:
    filled = {"user_id": user_id, "external_id": "x", "call_id": "call_x"}
    headers = {**bearer(server.secret_key), "Content-Type": "application/json"}
    if route.acting_user:
        headers[orbit_routes.ACTING_USER_HEADER] = user_id
    return route.url(**{k: v for k, v in filled.items() if "{" + k + "}" in route.path}), headers


async def test_deeply_nested_json_is_a_400_on_every_json_route_of_both_servers(orga: Any, orbit: Any) -> None:
    orga_server, orga_http, token = orga
    for credential, route in ((orga_server.api_key, CLIENT_SECRETS), (token, CALLS)):
        response = await orga_http.post(route.path, params={"email": EMAIL}, content=DEEP,
                                        headers={**bearer(credential), "Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json", route
    orbit_server, orbit_http = orbit
    user = (await orbit_http.post(orbit_routes.USERS_CREATE.template, headers=bearer(orbit_server.secret_key),
                                  json={"external_id": "x", "display_name": "X"})).json()
    for route in ORBIT_JSON_ROUTES:
        path, headers = orbit_request(orbit_server, route, user["id"])
        response = await orbit_http.request(route.method, path, content=DEEP, headers=headers)
        assert response.status_code == 400, (route.name, response.text)
        assert response.json()["error"]["code"] == "invalid_json"
    for route in orbit_routes.REST_ROUTES:  # those that ignore a body may answer anything but a 5xx
        path, headers = orbit_request(orbit_server, route, user["id"])
        response = await orbit_http.request(route.method, path, content=DEEP, headers=headers)
        assert response.status_code < 500 and (response.status_code < 300 or "error" in response.json())


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1" * 400, "true", '"60"', "1e999"])
async def test_expires_in_that_is_not_a_usable_number_is_a_400(orga: Any, value: str) -> None:
    server, http, _ = orga
    response = await http.post(CLIENT_SECRETS.path, params={"email": EMAIL}, content=f'{{"expires_in": {value}}}',
                               headers={**bearer(server.api_key), "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] in ("invalid_json", "invalid_request")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1" * 400, "1e999", "true"])
async def test_a_temperature_that_is_not_a_usable_number_is_a_400(orga: Any, value: str) -> None:
    _, http, token = orga
    body = f'{{"offer": {{"type": "offer", "sdp": "v=0"}}, "params": {{"temperature": {value}}}}}'
    response = await http.post(CALLS.path, content=body, headers={**bearer(token), "Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] in ("invalid_json", "invalid_params")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1" * 400, "true", "-1"])
async def test_a_metric_that_is_not_a_finite_number_at_least_zero_is_a_400(orbit: Any, value: str) -> None:
    server, http = orbit
    user = (await http.post(orbit_routes.USERS_CREATE.template, headers=bearer(server.secret_key),
                            json={"external_id": "x", "display_name": "X"})).json()
    headers = {**bearer(server.secret_key), orbit_routes.ACTING_USER_HEADER: user["id"],
               "Content-Type": "application/json"}
    body = f'{{"bitrate": {value}, "packet_loss": 0, "jitter": 0, "rtt": 0}}'
    response = await http.post(orbit_routes.CALLS_SUBMIT_METRICS.url(call_id="call_x"), headers=headers, content=body)
    assert response.status_code == 400 and response.json()["error"]["code"] in ("invalid_json", "invalid_request")


async def test_a_5000_digit_since_on_the_event_websocket_is_a_clear_400(orbit: Any) -> None:
    server, http = orbit
    response = await http.get(orbit_routes.EVENTS.template, params={"token": "a.b.c", "since": "9" * 5000})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_query"


# --- dropped, idle and slow connections ------------------------------------------------------


async def test_an_upload_dropped_half_way_logs_no_error(orbit: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, http = orbit
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"POST {orbit_routes.USERS_CREATE.template} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {server.secret_key}\r\nContent-Type: application/json\r\n"
                 "Content-Length: 100000\r\n\r\n0123456789".encode())
    await writer.drain()
    await asyncio.sleep(0.2)
    writer.close()
    await asyncio.sleep(0.3)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert (await http.get("/healthz")).json()["status"] == "ok"


async def test_a_request_line_past_8_kib_is_a_400_without_a_logged_traceback(
    orga: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, http, _ = orga
    caplog.set_level(logging.DEBUG)
    response = await http.post(CLIENT_SECRETS.path, params={"email": "9" * 9000})
    assert response.status_code == 400
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[:2000]
    assert (await http.get("/healthz")).status_code == 200


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    return await asyncio.wait_for(reader.read(), timeout)


async def test_a_connection_that_sends_nothing_is_dropped_after_the_read_timeout(orga: Any) -> None:
    server, _, _ = orga
    reader, writer = await asyncio.open_connection(server.host, server.port)
    started = time.monotonic()
    assert await read_until_closed(reader, 5) == b""  # closed by the server, nothing sent
    assert 0.8 < time.monotonic() - started < 3
    writer.close()


async def test_a_client_trickling_a_header_byte_a_second_is_dropped_after_the_read_timeout(orbit: Any) -> None:
    server, _ = orbit
    reader, writer = await asyncio.open_connection(server.host, server.port)
    started = time.monotonic()

    async def trickle() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\n":
            writer.write(bytes([byte]))
            await asyncio.sleep(0.3)

    trickling = asyncio.create_task(trickle())
    try:
        assert await read_until_closed(reader, 5) == b""
    finally:
        trickling.cancel()
        await asyncio.gather(trickling, return_exceptions=True)
        writer.close()
    assert time.monotonic() - started < 3


async def test_a_body_that_stops_arriving_is_a_408(orbit: Any) -> None:
    server, _ = orbit
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(f"POST {orbit_routes.USERS_CREATE.template} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {server.secret_key}\r\nContent-Type: application/json\r\n"
                 'Content-Length: 1000\r\n\r\n{"external_id": '.encode())
    await writer.drain()
    head = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")


async def test_the_servers_still_answer_keep_alive_requests_within_the_read_timeout(orga: Any) -> None:
    server, http, token = orga
    for _ in range(3):
        response = await http.get(ICE_CONFIG.path, headers=bearer(token))
        assert response.status_code == 200
        await asyncio.sleep(0.4)


async def test_an_offer_aiortc_breaks_on_is_an_sdp_error_and_the_peer_still_closes_twice_freeing_its_sockets() -> None:
    # Without its m=audio line the BUNDLE group names a section that is gone: aiortc would accept
    # the offer and raise AttributeError answering it; the engine refuses it first, in words.
    offer = re.sub(r"m=audio [^\r\n]*\r\n", "", await real_offer(), count=1)
    sockets = open_sockets()
    peer = Peer([])
    with pytest.raises(SdpError, match="a=group:BUNDLE names '0', which is no media section's a=mid"):
        await peer.accept_offer(offer)
    started = time.monotonic()
    await peer.close()  # aiortc's own close() raises half-way here, and hangs if called again
    await peer.close()
    assert time.monotonic() - started < 3 and open_sockets() == sockets


async def test_hostile_data_channel_messages_get_error_events_and_log_no_error(
    orga: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from aiortc import RTCSessionDescription

    server, http, token = orga
    caplog.set_level(logging.WARNING)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    channel = pc.createDataChannel(DATA_CHANNEL_LABEL)
    received: asyncio.Queue[str] = asyncio.Queue()
    channel.on("message", received.put_nowait)
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        response = await http.post(CALLS.path, headers=bearer(token),
                                   json={"offer": {"type": "offer", "sdp": pc.localDescription.sdp}})
        await pc.setRemoteDescription(RTCSessionDescription(**response.json()["answer"]))
        greeting = [json.loads(await asyncio.wait_for(received.get(), 10)) for _ in range(2)]
        assert [m["type"] for m in greeting] == ["session.created", "conversation.created"]
        for message in ("[" * 100_000, '{"type": "session.update", "data": {"temperature": NaN}}',
                        '{"type": [[[["x"]]]]}', '{"type": "session.update", "data": {"temperature": 1e999}}'):
            channel.send(message)
            reply = json.loads(await asyncio.wait_for(received.get(), 5))
            assert reply["type"] == "error", reply
            assert reply["error"]["code"] in ("invalid_json", "unknown_event", "invalid_session_update")
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]
    finally:
        await pc.close()


async def test_trickling_the_next_request_head_on_a_keep_alive_connection_is_dropped_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("peerbot.local._listener.MIN_IDLE_TIMEOUT", 0.0)  # the idle wait is read_timeout then
    async with LocalOrbitServer(read_timeout=1.0) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        with contextlib.suppress(ConnectionError):  # the server aborts the connection mid-trickle
            for byte in b"GET /healthz HTTP/1.1\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.25)
        dropped_after = time.monotonic() - started
        writer.close()
        assert dropped_after < 3  # the whole trickle would take 5.75 s
