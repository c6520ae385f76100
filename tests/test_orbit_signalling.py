"""Orbit signalling: the REST clients and the event WebSocket against the local Orbit server, over real HTTP/WS.

No WebRTC here: offers, answers and candidates are opaque strings that the server relays.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import socket
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiohttp import web

from peerbot.errors import ConfigurationError, OrbitAuthenticationError, OrbitError, OrbitServerError
from peerbot.local.orbit_server import LocalOrbitServer
from peerbot.orbit import OrbitEvent, OrbitEvents, OrbitServer, OrbitUser, Token, User, routes
from peerbot.orbit.routes import (
    CALL_ACCEPTED,
    CALL_ANSWER,
    CALL_ENDED,
    CALL_ICE_CANDIDATE,
    CALL_INCOMING,
    CALL_OFFER,
    CALL_REJECTED,
)

OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=offer\r\nt=0 0\r\n"
ANSWER = "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=answer\r\nt=0 0\r\n"
CANDIDATE = "candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host"


# --- fixtures and helpers --------------------------------------------------------------


@dataclass
class Party:
    """One participant: its user, its REST client (own token) and its event stream."""

    user: User
    token: Token
    api: OrbitUser
    events: OrbitEvents


@pytest.fixture
async def server() -> AsyncIterator[LocalOrbitServer]:
    async with LocalOrbitServer(ring_timeout=10.0) as srv:
        yield srv


@pytest.fixture
async def orbit(server: LocalOrbitServer) -> AsyncIterator[OrbitServer]:
    async with OrbitServer(server.secret_key, server.base_url) as client:
        yield client


@pytest.fixture
async def stack(server: LocalOrbitServer) -> AsyncIterator[AsyncExitStack]:
    """Clients entered here close before the server stops."""
    async with AsyncExitStack() as exit_stack:
        yield exit_stack


@pytest.fixture
async def http(server: LocalOrbitServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


async def join(
    server: LocalOrbitServer,
    orbit: OrbitServer,
    stack: AsyncExitStack,
    name: str,
    *,
    ttl: int = 600,
    on_token_expired: Callable[[], Awaitable[str]] | None = None,
    connect: bool = True,
) -> Party:
    user = await orbit.users.create(f"ext-{name}", name.title())
    token = await orbit.users.create_token(user.id, ttl=ttl)
    api = await stack.enter_async_context(OrbitUser(server.base_url, token.token, server.publishable_key))
    events = api.events(on_token_expired, backoff=0.05)
    if connect:
        await stack.enter_async_context(events)
    else:
        stack.push_async_callback(events.aclose)
    return Party(user, token, api, events)


async def take(events: OrbitEvents, count: int, timeout: float = 5.0) -> list[OrbitEvent]:
    """The next ``count`` events, in order."""
    async with asyncio.timeout(timeout):
        return [await anext(events) for _ in range(count)]


def secret_headers(server: LocalOrbitServer, acting_user: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {server.secret_key}"}
    if acting_user:
        headers[routes.ACTING_USER_HEADER] = acting_user
    return headers


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def raises(awaitable: Awaitable[Any]) -> OrbitError:
    with pytest.raises(OrbitError) as info:
        await awaitable
    return info.value


# --- the route table ---------------------------------------------------------------------


async def test_every_route_in_the_shared_table_is_served_and_refuses_a_missing_credential(
    server: LocalOrbitServer, http: httpx.AsyncClient
) -> None:
    for route in routes.REST_ROUTES:
        placeholders = {name: "x" for name in ("user_id", "external_id", "call_id") if "{" + name + "}" in route.path}
        response = await http.request(route.method, route.url(**placeholders))
        assert response.status_code == 401, route.name
        assert response.json()["error"]["code"] == "missing_credentials", route.name
    response = await http.get(routes.EVENTS.template)
    assert response.status_code == 401 and response.json()["error"]["code"] == "missing_credentials"
    names = [route.name for route in routes.ROUTES]
    assert len(names) == len(set(names)) == 21  # the protocol's twenty methods plus the WebSocket


# --- users -----------------------------------------------------------------------------


async def test_users_create_upserts_on_external_id_and_get_update_list_agree(orbit: OrbitServer) -> None:
    first = await orbit.users.create("db-42", "Alice", {"plan": "free"})
    again = await orbit.users.create("db-42", "Alice Liddell")
    other = await orbit.users.create("db/43 with space", "Bob")

    assert again.id == first.id and again.display_name == "Alice Liddell" and again.metadata == {"plan": "free"}
    assert await orbit.users.get(first.id) == again
    assert (await orbit.users.get_by_external_id("db/43 with space")).id == other.id
    updated = await orbit.users.update(first.id, metadata={"plan": "pro"})
    assert updated.metadata == {"plan": "pro"} and updated.display_name == "Alice Liddell"
    assert {u.id for u in await orbit.users.list()} == {first.id, other.id}


async def test_deactivated_user_is_listed_inactive_refused_tokens_and_calls_and_its_websocket_closed(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")

    deactivated = await orbit.users.deactivate(bob.user.id)

    assert deactivated.is_active is False
    assert [u.id for u in await orbit.users.list(active_only=True)] == [alice.user.id]
    assert [u.id for u in await orbit.users.list(active_only=False)] == [bob.user.id]
    assert (await raises(orbit.users.create_token(bob.user.id))).status == 403
    assert (await raises(alice.api.calls.initiate(bob.user.id, "voice"))).code == "user_inactive"
    assert (await raises(bob.api.calls.get_turn_credentials())).status == 401  # its token is dead too
    closed = await raises(take(bob.events, 1))  # the server closed its WebSocket with 4003
    assert closed.status == 403 and closed.code == "forbidden"


async def test_create_token_checks_ttl_from_1_to_86400_before_any_request(orbit: OrbitServer) -> None:
    nowhere = OrbitServer("sk_test_unused", f"http://127.0.0.1:{free_port()}")
    for ttl in (0, -5, 86401, 1.5, True, "60"):
        with pytest.raises(ConfigurationError):
            await nowhere.users.create_token("usr_any", ttl=ttl)  # type: ignore[arg-type]
    await nowhere.aclose()

    user = await orbit.users.create("ttl-user", "T")
    shortest = await orbit.users.create_token(user.id, ttl=1)
    longest = await orbit.users.create_token(user.id, ttl=86400)
    assert (longest.expires_at - shortest.expires_at).total_seconds() == pytest.approx(86399, abs=2)


async def test_server_refuses_a_ttl_out_of_range_with_400(
    server: LocalOrbitServer, orbit: OrbitServer, http: httpx.AsyncClient
) -> None:
    user = await orbit.users.create("ttl-raw", "T")
    path = routes.USERS_CREATE_TOKEN.url(user_id=user.id)
    for ttl in (0, 86401, "60"):
        response = await http.post(path, json={"ttl": ttl}, headers=secret_headers(server))
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_ttl"


# --- the call flow over WebSocket events ------------------------------------------------


async def test_call_flow_relays_signalling_only_to_the_other_party_and_a_third_user_gets_nothing(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    carol = await join(server, orbit, stack, "carol")

    call = await alice.api.calls.initiate(bob.user.id, "video")
    incoming = await bob.events.wait_for(CALL_INCOMING)
    assert incoming.call_id == call.id and incoming.data["caller_id"] == alice.user.id

    assert (await bob.api.calls.accept(call.id)).status == "accepted"
    await alice.api.calls.submit_offer(call.id, OFFER)
    await alice.api.calls.add_ice_candidate(call.id, CANDIDATE, "0", 0)
    await bob.api.calls.submit_answer(call.id, ANSWER)
    await bob.api.calls.add_ice_candidate(call.id, {"candidate": CANDIDATE, "sdpMid": "1", "sdpMLineIndex": 1})
    ended = await bob.api.calls.end(call.id)

    to_alice = await take(alice.events, 3)
    to_bob = await take(bob.events, 2)
    assert [e.type for e in to_alice] == [CALL_ACCEPTED, CALL_ANSWER, CALL_ICE_CANDIDATE]
    assert to_alice[1].data["sdp"] == ANSWER and to_alice[2].data["sdpMLineIndex"] == 1
    assert [e.type for e in to_bob] == [CALL_OFFER, CALL_ICE_CANDIDATE]
    assert to_bob[0].data["sdp"] == OFFER and to_bob[1].data["candidate"] == CANDIDATE
    assert all(e.call_id == call.id for e in to_alice + to_bob)
    assert ended.status == "ended" and ended.ended_at is not None
    hangup = await alice.events.wait_for(CALL_ENDED)
    assert hangup.data["reason"] == "hangup" and hangup.data["ended_by"] == bob.user.id

    # Carol's first event is the one meant for her: nothing of Alice and Bob's call came before it.
    marker = await alice.api.calls.initiate(carol.user.id, "voice")
    [first] = await take(carol.events, 1)
    assert first.type == CALL_INCOMING and first.call_id == marker.id


async def test_backend_drives_a_call_for_its_users_through_x_app_user_id(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack, http: httpx.AsyncClient
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")

    call = await orbit.calls.initiate(bob.user.id, "voice", alice.user.id)
    assert call.caller_id == alice.user.id and (await bob.events.wait_for(CALL_INCOMING)).call_id == call.id
    await orbit.calls.accept(call.id, bob.user.id)
    await orbit.calls.submit_offer(call.id, OFFER, alice.user.id)
    await orbit.calls.add_ice_candidate(call.id, CANDIDATE, sdp_mid="0", acting_user=alice.user.id)

    assert [e.type for e in await take(bob.events, 2)] == [CALL_OFFER, CALL_ICE_CANDIDATE]
    assert (await alice.events.wait_for(CALL_ACCEPTED)).call_id == call.id
    response = await http.post(routes.CALLS_END.url(call_id=call.id), headers=secret_headers(server))
    assert response.status_code == 400 and response.json()["error"]["code"] == "missing_acting_user"


async def test_rejecting_a_ringing_call_tells_the_caller(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "voice")

    rejected = await bob.api.calls.reject(call.id)

    assert rejected.status == "rejected" and rejected.ended_at is not None
    event = await alice.events.wait_for(CALL_REJECTED)
    assert event.call_id == call.id and event.data["status"] == "rejected"


async def test_unanswered_call_is_missed_after_ring_timeout_and_both_parties_get_call_ended(
    orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    server = await stack.enter_async_context(LocalOrbitServer(ring_timeout=0.3))
    backend = await stack.enter_async_context(OrbitServer(server.secret_key, server.base_url))
    alice = await join(server, backend, stack, "alice")
    bob = await join(server, backend, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "video")

    to_alice = await alice.events.wait_for(CALL_ENDED)
    to_bob = await bob.events.wait_for(CALL_ENDED)

    assert to_alice.data["reason"] == to_bob.data["reason"] == "missed"
    assert server.calls[call.id].status == "missed"
    late = await raises(bob.api.calls.accept(call.id))
    assert (late.status, late.code) == (409, "invalid_call_state")


async def test_caller_ending_a_ringing_call_cancels_it_and_stops_the_ring_timer(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "voice")

    await alice.api.calls.end(call.id)

    cancelled = await bob.events.wait_for(CALL_ENDED)
    assert cancelled.data["reason"] == "cancelled" and server.calls[call.id].status == "ended"
    assert call.id not in server.ringing


async def test_wrong_state_transitions_raise_409_invalid_call_state(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "voice")

    ringing_record = await raises(alice.api.calls.toggle_record(call.id))
    await bob.api.calls.accept(call.id)
    accept_twice = await raises(bob.api.calls.accept(call.id))
    reject_accepted = await raises(bob.api.calls.reject(call.id))
    await alice.api.calls.end(call.id)
    end_twice = await raises(bob.api.calls.end(call.id))
    offer_after_end = await raises(alice.api.calls.submit_offer(call.id, OFFER))

    for error in (ringing_record, accept_twice, reject_accepted, end_twice, offer_after_end):
        assert (error.status, error.code) == (409, "invalid_call_state"), error.message
        assert type(error) is OrbitServerError


async def test_only_the_callee_answers_and_a_non_party_is_refused_with_403(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    carol = await join(server, orbit, stack, "carol")
    call = await alice.api.calls.initiate(bob.user.id, "voice")

    caller_accepts = await raises(alice.api.calls.accept(call.id))
    outsider_ends = await raises(carol.api.calls.end(call.id))
    outsider_offers = await raises(carol.api.calls.submit_offer(call.id, OFFER))
    outsider_reads = await raises(orbit.calls.get_metrics(call.id, carol.user.id))

    assert (caller_accepts.status, caller_accepts.code) == (403, "not_the_callee")
    for error in (outsider_ends, outsider_offers, outsider_reads):
        assert (error.status, error.code) == (403, "not_a_participant")
    assert all(isinstance(e, OrbitAuthenticationError) for e in (caller_accepts, outsider_ends, outsider_offers))
    assert server.calls[call.id].status == "ringing"


async def test_wait_for_takes_an_event_that_arrived_before_it_was_called_and_leaves_the_rest_in_order(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    first = await alice.api.calls.initiate(bob.user.id, "voice")
    second = await alice.api.calls.initiate(bob.user.id, "video")
    await asyncio.sleep(0.1)  # both events are in Bob's inbox before anyone asks

    picked = await bob.events.wait_for(CALL_INCOMING, lambda e: e.data["type"] == "video")
    [remaining] = await take(bob.events, 1)

    assert picked.call_id == second.id and remaining.call_id == first.id
    with pytest.raises(TimeoutError):
        await bob.events.wait_for(CALL_INCOMING, timeout=0.1)


# --- errors ----------------------------------------------------------------------------


async def test_unknown_ids_raise_404(server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack) -> None:
    alice = await join(server, orbit, stack, "alice")

    errors = [
        await raises(orbit.users.get("usr_nope")),
        await raises(orbit.users.get_by_external_id("nobody")),
        await raises(orbit.users.create_token("usr_nope")),
        await raises(alice.api.calls.accept("call_nope")),
        await raises(alice.api.calls.initiate("usr_nope", "voice")),
        await raises(orbit.calls.get_turn_credentials("usr_nope")),  # unknown acting user
    ]

    assert [e.status for e in errors] == [404] * 6
    assert {e.code for e in errors} == {"user_not_found", "call_not_found"}
    assert all(type(e) is OrbitServerError for e in errors)


async def test_bad_secret_key_is_refused_with_401_and_a_user_token_on_users_routes_with_403(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack, http: httpx.AsyncClient
) -> None:
    alice = await join(server, orbit, stack, "alice")
    async with OrbitServer("sk_test_wrong", server.base_url) as wrong:
        bad_key = await raises(wrong.users.list())
        bad_key_on_calls = await raises(wrong.calls.get_webrtc_token(alice.user.id))
    token_on_users = await http.get(routes.USERS_LIST.url(), headers={"Authorization": f"Bearer {alice.token.token}"})

    assert (bad_key.status, bad_key.code) == (401, "invalid_secret_key")
    assert bad_key_on_calls.status == 401
    assert isinstance(bad_key, OrbitAuthenticationError) and isinstance(bad_key_on_calls, OrbitAuthenticationError)
    assert token_on_users.status_code == 403 and token_on_users.json()["error"]["code"] == "secret_key_required"


async def test_user_token_needs_its_own_apps_publishable_key_over_rest_and_websocket(
    orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    server = await stack.enter_async_context(
        LocalOrbitServer(
            secret_keys=["sk_test_app1", "sk_test_app2"], publishable_keys=["pk_test_app1", "pk_test_app2"]
        )
    )
    backend = await stack.enter_async_context(OrbitServer("sk_test_app1", server.base_url))
    user = await backend.users.create("u1", "U")
    token = (await backend.users.create_token(user.id)).token

    other_app = await stack.enter_async_context(OrbitUser(server.base_url, token, "pk_test_app2"))
    own_app = await stack.enter_async_context(OrbitUser(server.base_url, token, "pk_test_app1"))
    mismatch = await raises(other_app.calls.get_turn_credentials())
    assert (await own_app.calls.get_turn_credentials()).ice_servers == []
    refused_ws = await raises(OrbitEvents(server.base_url, token, "pk_test_app2").connect())
    forged_ws = await raises(OrbitEvents(server.base_url, token[:-3] + "abc", "pk_test_app1").connect())

    assert (mismatch.status, mismatch.code) == (403, "client_id_mismatch")
    assert refused_ws.status == 403 and forged_ws.status == 401


async def test_malformed_bodies_are_refused_with_400(
    server: LocalOrbitServer, orbit: OrbitServer, http: httpx.AsyncClient
) -> None:
    alice = await orbit.users.create("a", "Alice")
    bob = await orbit.users.create("b", "Bob")
    call = await orbit.calls.initiate(bob.id, "voice", alice.id)
    backend, as_alice = secret_headers(server), secret_headers(server, alice.id)
    users, on_call = routes.USERS_CREATE.url(), {"call_id": call.id}
    bad = [
        (users, b"{not json", backend),
        (users, b"[1, 2]", backend),
        (users, b'{"external_id": "x"}', backend),
        (users, b'{"external_id": "x", "display_name": "X", "metadata": 3}', backend),
        (routes.CALLS_INITIATE.url(), b'{"callee_id": "%s", "type": "hologram"}' % bob.id.encode(), as_alice),
        (routes.CALLS_SUBMIT_OFFER.url(**on_call), b'{"sdp": ""}', as_alice),
        (routes.CALLS_ADD_ICE_CANDIDATE.url(**on_call), b'{"candidate": "c", "sdpMLineIndex": "0"}', as_alice),
        (routes.CALLS_SUBMIT_METRICS.url(**on_call), b'{"bitrate": -1, "packet_loss": 0, "jitter": 0, "rtt": 0}',
         as_alice),
    ]
    for path, body, headers in bad:
        response = await http.post(path, content=body, headers={**headers, "Content-Type": "application/json"})
        assert response.status_code == 400, (path, body)
        assert response.json()["error"]["code"] in ("invalid_json", "invalid_request"), (path, body)


async def test_oversized_body_is_refused_with_413(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "video")

    error = await raises(alice.api.calls.submit_offer(call.id, "a=x\r\n" * 60_000))

    assert (error.status, error.code) == (413, "payload_too_large")


async def test_transport_failures_become_status_0_errors_with_clear_codes() -> None:
    async def handler(request: web.Request) -> web.Response:
        kind = request.match_info["user_id"]
        if kind == "slow":
            await asyncio.sleep(5)
        if kind == "gateway":
            return web.Response(status=502, text="<html>bad gateway</html>", content_type="text/html")
        if kind == "shape":
            return web.json_response({"id": "usr_1"})  # no external_id, no created_at
        return web.Response(text="<html>hello</html>", content_type="text/html")

    app = web.Application()
    app.router.add_get(routes.USERS_GET.template, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v1"  # the SDK's form of base URL works too
    try:
        async with OrbitServer("sk_test_x", url, timeout=0.3) as orbit, OrbitServer(
            "sk_test_x", f"http://127.0.0.1:{free_port()}"
        ) as nowhere:
            slow = await raises(orbit.users.get("slow"))
            html = await raises(orbit.users.get("html"))
            shape = await raises(orbit.users.get("shape"))
            gateway = await raises(orbit.users.get("gateway"))
            unreachable = await raises(nowhere.users.get("any"))
    finally:
        await runner.cleanup()

    assert (slow.status, slow.code) == (0, "timeout")
    assert (html.status, html.code) == (0, "bad_response")
    assert (shape.status, shape.code) == (0, "bad_response") and "external_id" in shape.message
    assert (gateway.status, gateway.code) == (502, "http_error")
    assert (unreachable.status, unreachable.code) == (0, "unreachable")


def test_settings_come_from_arguments_then_environment_and_the_base_url_is_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ORBIT_BASE_URL", raising=False)
    monkeypatch.delenv("ORBIT_SECRET_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="ORBIT_BASE_URL"):
        OrbitServer("sk_test_x")
    with pytest.raises(ConfigurationError, match="ORBIT_SECRET_KEY"):
        OrbitServer(base_url="http://127.0.0.1:1")

    monkeypatch.setenv("ORBIT_BASE_URL", "https://orbit.example/api/v1/")
    monkeypatch.setenv("ORBIT_SECRET_KEY", "sk_test_env")
    assert OrbitServer().base_url == "https://orbit.example"
    assert OrbitServer(base_url="http://127.0.0.1:9").base_url == "http://127.0.0.1:9"
    with pytest.raises(ConfigurationError):
        OrbitServer(base_url="ftp://orbit.example")


# --- quality, recordings, credentials --------------------------------------------------


async def test_metrics_and_recordings_are_kept_per_call_and_the_end_stops_a_recording(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "video")
    await bob.api.calls.accept(call.id)

    await alice.api.calls.submit_metrics(call.id, 512_000, 0.01, 0.004, 0.05)
    await orbit.calls.submit_metrics(call.id, 256_000, 0.0, 0.002, 0.04, bob.user.id)
    first = await alice.api.calls.toggle_record(call.id)
    stopped = await bob.api.calls.toggle_record(call.id)
    second = await alice.api.calls.toggle_record(call.id)
    await bob.api.calls.end(call.id)

    samples = await bob.api.calls.get_metrics(call.id)
    assert [(s.user_id, s.bitrate) for s in samples] == [(alice.user.id, 512_000), (bob.user.id, 256_000)]
    assert first.active and stopped.id == first.id and not stopped.active and second.active
    recordings = await alice.api.calls.list_recordings(call.id)
    assert [r.id for r in recordings] == [first.id, second.id] and not any(r.active for r in recordings)


async def test_turn_credentials_are_the_ice_servers_plus_turn_rest_credentials_and_webrtc_token_works(
    stack: AsyncExitStack,
) -> None:
    stun = {"urls": "stun:stun.example:3478"}
    server = await stack.enter_async_context(
        LocalOrbitServer(ice_servers=[stun], turn_urls="turn:127.0.0.1:3478", turn_secret="coturn-secret")
    )
    orbit = await stack.enter_async_context(OrbitServer(server.secret_key, server.base_url))
    user = await orbit.users.create("t", "T")

    creds = await orbit.calls.get_turn_credentials(user.id)
    webrtc_token = await orbit.calls.get_webrtc_token(user.id)
    async with OrbitUser(server.base_url, webrtc_token.token, server.publishable_key) as participant:
        again = await participant.calls.get_turn_credentials()

    assert creds.ttl == 86400 and creds.ice_servers[0] == {"urls": ["stun:stun.example:3478"]}
    turn = creds.ice_servers[1]
    expected = base64.b64encode(hmac.new(b"coturn-secret", turn["username"].encode(), hashlib.sha1).digest()).decode()
    assert turn["urls"] == ["turn:127.0.0.1:3478"] and turn["username"].endswith(f":{user.id}")
    assert turn["credential"] == expected
    assert len(again.ice_servers) == 2


async def test_turn_credentials_default_to_no_ice_servers(orbit: OrbitServer) -> None:
    user = await orbit.users.create("t", "T")
    creds = await orbit.calls.get_turn_credentials(user.id)
    assert creds.ice_servers == [] and creds.ttl > 0


# --- the WebSocket: buffering, reconnection, token expiry -------------------------------


async def test_events_for_an_offline_user_wait_for_its_first_connection(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob", connect=False)
    call = await alice.api.calls.initiate(bob.user.id, "voice")

    await bob.events.connect()

    assert (await bob.events.wait_for(CALL_INCOMING)).call_id == call.id


async def test_events_older_than_the_buffer_time_are_not_delivered_late(stack: AsyncExitStack) -> None:
    server = await stack.enter_async_context(LocalOrbitServer(event_buffer_ttl=0.2))
    orbit = await stack.enter_async_context(OrbitServer(server.secret_key, server.base_url))
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob", connect=False)
    stale = await alice.api.calls.initiate(bob.user.id, "voice")
    await asyncio.sleep(0.3)

    await bob.events.connect()
    fresh = await alice.api.calls.initiate(bob.user.id, "video")

    [first] = await take(bob.events, 1)
    assert first.call_id == fresh.id != stale.id


async def test_a_dropped_connection_reconnects_and_replays_what_was_sent_meanwhile_without_duplicates(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "video")
    await bob.events.wait_for(CALL_INCOMING)
    await bob.api.calls.accept(call.id)

    assert await server.drop_connections(bob.user.id) == 1
    await alice.api.calls.submit_offer(call.id, OFFER)  # while Bob is cut off
    offer = await bob.events.wait_for(CALL_OFFER)
    await alice.api.calls.add_ice_candidate(call.id, CANDIDATE, "0", 0)

    [after] = await take(bob.events, 1)
    assert offer.data["sdp"] == OFFER and after.type == CALL_ICE_CANDIDATE
    assert bob.events.reconnects == 1 and server.connections(bob.user.id) == 1
    assert after.seq == offer.seq + 1


async def test_token_expiry_closes_the_websocket_with_4001_and_an_event_sent_in_the_gap_still_arrives(
    server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    alice = await join(server, orbit, stack, "alice")
    call_ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    seen_in_gap: list[int] = []

    async def fresh_token() -> str:
        # Called once the server has closed Bob's socket with 4001: Alice's offer lands in the gap.
        seen_in_gap.append(server.connections(bob.user.id))
        await alice.api.calls.submit_offer(await call_ready, OFFER)
        return (await orbit.users.create_token(bob.user.id, ttl=600)).token

    bob = await join(server, orbit, stack, "bob", ttl=1, on_token_expired=fresh_token)
    call = await alice.api.calls.initiate(bob.user.id, "video")
    call_ready.set_result(call.id)

    offer = await bob.events.wait_for(CALL_OFFER, timeout=10)

    assert offer.data["sdp"] == OFFER and seen_in_gap == [0]
    assert bob.events.token_refreshes == 1 and server.connections(bob.user.id) == 1
    assert (await bob.events.wait_for(CALL_INCOMING)).call_id == call.id
    await bob.api.calls.submit_answer(call.id, ANSWER)  # the REST client took the fresh token too
    assert (await alice.events.wait_for(CALL_ANSWER)).data["sdp"] == ANSWER


async def test_an_already_expired_token_is_refreshed_on_connect_or_ends_the_stream_with_401(
    server: LocalOrbitServer, orbit: OrbitServer
) -> None:
    user = await orbit.users.create("late", "Late")
    expired = (await orbit.users.create_token(user.id, ttl=1)).token
    await asyncio.sleep(1.05)

    async def fresh_token() -> str:
        return (await orbit.users.create_token(user.id, ttl=600)).token

    async with OrbitEvents(server.base_url, expired, server.publishable_key, fresh_token) as refreshed:
        async with OrbitEvents(server.base_url, expired, server.publishable_key) as stranded:
            error = await raises(take(stranded, 1))
        deadline = asyncio.get_running_loop().time() + 5
        while server.connections(user.id) == 0 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        assert refreshed.token_refreshes == 1 and server.connections(user.id) == 1
    assert (error.status, error.code) == (401, "token_expired") and isinstance(error, OrbitAuthenticationError)


# --- secrets ---------------------------------------------------------------------------


async def test_secret_key_and_tokens_never_appear_in_reprs_errors_or_logs(
    caplog: pytest.LogCaptureFixture, server: LocalOrbitServer, orbit: OrbitServer, stack: AsyncExitStack
) -> None:
    caplog.set_level(logging.DEBUG)
    alice = await join(server, orbit, stack, "alice")
    bob = await join(server, orbit, stack, "bob")
    call = await alice.api.calls.initiate(bob.user.id, "video")
    await bob.events.wait_for(CALL_INCOMING)
    creds = await alice.api.calls.get_turn_credentials()
    secrets_ = [server.secret_key, alice.token.token, bob.token.token]

    nowhere = f"http://127.0.0.1:{free_port()}"
    backend_nowhere = await stack.enter_async_context(OrbitServer(server.secret_key, nowhere))
    bob_nowhere = await stack.enter_async_context(OrbitUser(nowhere, bob.token.token, "pk_test_x"))
    errors = [
        await raises(alice.api.calls.accept(call.id)),  # 403 from the server
        await raises(OrbitEvents(server.base_url, alice.token.token, "pk_test_wrong").connect()),  # handshake 403
        await raises(OrbitEvents(nowhere, alice.token.token, "pk_test_x").connect()),
        await raises(backend_nowhere.users.list()),
        await raises(bob_nowhere.calls.end(call.id)),
    ]
    shown = [repr(x) for x in (orbit, alice.api, bob.events, alice.token, creds, server)]
    shown += ["".join(traceback.format_exception(e)) for e in errors]
    shown.append(caplog.text)

    assert any("sk_test_" in text for text in shown)  # the redacted form is there
    for text in shown:
        for secret in secrets_:
            assert secret not in text
