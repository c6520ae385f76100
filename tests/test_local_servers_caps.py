"""The local servers' resource caps: each is a constructor argument and is refused with a JSON 4xx."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from peerbot.local.orbit_server import LocalOrbitServer
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orbit import routes
from peerbot.orga.routes import CALLS, CLIENT_SECRETS, DATA_CHANNEL_LABEL


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# --- Orbit ---------------------------------------------------------------------------------


class Backend:
    def __init__(self, server: LocalOrbitServer, http: httpx.AsyncClient) -> None:
        self.server, self.http = server, http

    async def user(self, external_id: str, **extra: Any) -> httpx.Response:
        return await self.http.post(routes.USERS_CREATE.template, headers=bearer(self.server.secret_key),
                                    json={"external_id": external_id, "display_name": external_id, **extra})

    async def user_id(self, external_id: str) -> str:
        return (await self.user(external_id)).json()["id"]

    async def call(self, caller: str, callee: str) -> httpx.Response:
        headers = {**bearer(self.server.secret_key), routes.ACTING_USER_HEADER: caller}
        return await self.http.post(routes.CALLS_INITIATE.template, headers=headers,
                                    json={"callee_id": callee, "type": "voice"})

    async def end(self, call_id: str, user_id: str) -> httpx.Response:
        headers = {**bearer(self.server.secret_key), routes.ACTING_USER_HEADER: user_id}
        return await self.http.post(routes.CALLS_END.url(call_id=call_id), headers=headers)


@contextlib.asynccontextmanager
async def orbit_with(**caps: Any) -> AsyncIterator[Backend]:
    async with LocalOrbitServer(**caps) as server, httpx.AsyncClient(base_url=server.base_url) as http:
        yield Backend(server, http)


async def test_user_metadata_past_the_size_cap_is_413_and_past_the_depth_cap_400() -> None:
    async with orbit_with(max_metadata_bytes=1000) as backend:
        assert (await backend.user("ok", metadata={"note": "x" * 900})).status_code == 201
        assert error(await backend.user("big", metadata={"note": "x" * 1000})) == (413, "metadata_too_large")
        deep: dict[str, Any] = {}
        for _ in range(40):
            deep = {"a": deep}
        assert error(await backend.user("deep", metadata=deep)) == (400, "invalid_request")


async def test_new_users_past_max_users_are_429_while_existing_ones_still_upsert() -> None:
    async with orbit_with(max_users=2) as backend:
        assert [(await backend.user(name)).status_code for name in ("a", "b")] == [201, 201]
        assert error(await backend.user("c")) == (429, "too_many_users")
        assert (await backend.user("a")).status_code == 200


async def test_a_second_live_call_of_a_user_past_the_cap_is_429_until_the_first_ends() -> None:
    async with orbit_with(max_live_calls_per_user=1) as backend:
        alice, bob, carol = [await backend.user_id(n) for n in ("alice", "bob", "carol")]
        first = (await backend.call(alice, bob)).json()
        assert error(await backend.call(alice, carol)) == (429, "too_many_calls")
        assert error(await backend.call(carol, bob)) == (429, "too_many_calls")  # bob is the busy one here
        assert (await backend.end(first["id"], alice)).status_code == 200
        assert (await backend.call(alice, carol)).status_code == 201


async def test_calls_kept_past_the_cap_evict_the_oldest_finished_call_and_429_when_all_are_live() -> None:
    async with orbit_with(max_calls=2) as backend:
        a, b, c, d, e, f = [await backend.user_id(n) for n in "abcdef"]
        ended = (await backend.call(a, b)).json()["id"]
        await backend.end(ended, a)
        live = (await backend.call(c, d)).json()["id"]
        newest = await backend.call(e, f)
        assert newest.status_code == 201
        assert set(backend.server.calls) == {live, newest.json()["id"]}  # the ended call made room
        assert error(await backend.call(a, b)) == (429, "too_many_calls")


async def test_event_websockets_past_the_per_user_cap_are_429() -> None:
    async with orbit_with(max_connections_per_user=1) as backend:
        user_id = await backend.user_id("alice")
        token = (await backend.http.post(routes.USERS_CREATE_TOKEN.url(user_id=user_id),
                                         headers=bearer(backend.server.secret_key), json={})).json()["token"]
        url = backend.server.base_url + routes.EVENTS.template
        params = {"token": token, "client_id": backend.server.publishable_key}
        async with aiohttp.ClientSession() as session, session.ws_connect(url, params=params):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect(url, params=params)
            assert refused.value.status == 429
            assert backend.server.connections(user_id) == 1


async def test_an_offline_user_is_kept_only_the_latest_events_past_the_cap() -> None:
    async with orbit_with(max_kept_events=2) as backend:
        alice, bob = await backend.user_id("alice"), await backend.user_id("bob")
        first = (await backend.call(alice, bob)).json()["id"]  # bob: call:incoming, seq 1
        await backend.end(first, alice)  # call:ended, seq 2
        await backend.call(alice, bob)  # call:incoming, seq 3
        token = (await backend.http.post(routes.USERS_CREATE_TOKEN.url(user_id=bob),
                                         headers=bearer(backend.server.secret_key), json={})).json()["token"]
        params = {"token": token, "client_id": backend.server.publishable_key}
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(backend.server.base_url + routes.EVENTS.template, params=params) as ws:
            got = [await ws.receive_json(timeout=5) for _ in range(2)]
            assert [(e["seq"], e["type"]) for e in got] == [(2, routes.CALL_ENDED), (3, routes.CALL_INCOMING)]


# --- Orga ----------------------------------------------------------------------------------


async def offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel(DATA_CHANNEL_LABEL)
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def orga_token(http: httpx.AsyncClient, server: LocalOrgaServer) -> str:
    response = await http.post(CLIENT_SECRETS.path, params={"email": "a@b.cd"}, headers=bearer(server.api_key))
    return response.json()["ephemeral_token"]


async def test_orga_calls_past_the_per_token_and_total_caps_are_429() -> None:
    async with LocalOrgaServer(max_calls=2, max_calls_per_token=1) as server, \
            httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        pcs = []
        try:
            first, second, third = [await orga_token(http, server) for _ in range(3)]
            results = []
            for token in (first, first, second, third):
                pc, sdp = await offer()
                pcs.append(pc)
                response = await http.post(CALLS.path, headers=bearer(token), json={"offer": {"type": "offer", "sdp": sdp}})
                results.append(response.status_code if response.status_code == 200 else error(response))
            assert results == [200, (429, "too_many_calls_for_token"), 200, (429, "too_many_calls")]
            assert len(server.calls) == 2
        finally:
            for pc in pcs:
                await pc.close()
