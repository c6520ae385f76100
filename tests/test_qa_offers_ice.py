"""QA findings on issue 7: ICE server URLs parsed fully, malformed offers refused in words with
nothing logged at ERROR, settings checked before any request, ``peerbot serve`` usage errors, and
the local Orga server's token lifetime and oversized request lines."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcicetransport import parse_stun_turn_uri
from hypothesis import given, settings
from hypothesis import strategies as st

import peerbot
from peerbot.engine import _aiortc
from peerbot.engine.peer import Peer
from peerbot.errors import ConfigurationError, InvalidIceServerError, OrgaAIServerError, SdpError
from peerbot.ice_servers import parse_ice_server, parse_ice_url
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orga.routes import CALLS, CLIENT_SECRETS, DATA_CHANNEL_LABEL, ICE_CONFIG

PEERBOT = [sys.executable, "-m", "peerbot.cli.main"]
BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "ORBIT_"))}
EMAIL = "tester@example.com"
PYTHON_NAMES = re.compile(r"AssertionError|KeyError|ValueError|AttributeError|IndexError|TypeError|NoneType")


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


# --- 1. ICE server URLs ---------------------------------------------------------------------

BAD_URLS = {
    "stun:": "the host is missing",
    "stun:host:notaport": "the port must be a number from 1 to 65535",
    "stun:127.0.0.1:99999": "the port must be a number from 1 to 65535",
    "stun:127.0.0.1:0": "the port must be a number from 1 to 65535",
    "stun:host:": "the port must be a number from 1 to 65535",
    "stun:[::1]:3478": "IPv6 address literals are not supported by aiortc",
    "stun:host?transport=udp": "a stun: URI takes no '?' part",
    "turn:host?transport=sctp": "turn: supports only transport=udp or transport=tcp",
    "turns:host?transport=udp": "turns: supports only transport=tcp",
    "turn:host?foo=bar": "the only parameter allowed is ?transport=udp or ?transport=tcp",
    "stun:a b": "is not a host name or IPv4 address",
    "stun:999.1.1.1": "is not a valid IPv4 address",
    "http://stun.example": "expected a stun:, stuns:, turn: or turns: URI",
}


@pytest.mark.parametrize("url, message", BAD_URLS.items())
def test_an_unusable_ice_url_is_an_invalid_ice_server_error_naming_it(url: str, message: str) -> None:
    with pytest.raises(InvalidIceServerError, match=re.escape(message)) as raised:
        parse_ice_server({"urls": url, "username": "u", "credential": "c"})
    assert repr(url[:60]) in str(raised.value) or "…" in str(raised.value)


def test_a_credential_written_into_a_turn_url_is_never_quoted() -> None:
    with pytest.raises(InvalidIceServerError) as raised:
        parse_ice_server({"urls": "turn:alice:s3cr3t-pw@turn.example:3478", "username": "u", "credential": "c"})
    assert "s3cr3t" not in str(raised.value) and "alice" not in str(raised.value)
    assert "turn:…@turn.example:3478" in str(raised.value)


@pytest.mark.parametrize("url, parsed", [
    ("stun:127.0.0.1", {"scheme": "stun", "host": "127.0.0.1", "port": 3478}),
    ("STUN:stun.example.org:19302", {"scheme": "stun", "host": "stun.example.org", "port": 19302}),
    ("turn:turn.example:3478?transport=tcp", {"scheme": "turn", "host": "turn.example", "port": 3478,
                                              "transport": "tcp"}),
    ("turns:turn.example", {"scheme": "turns", "host": "turn.example", "port": 5349, "transport": "tcp"}),
])
def test_a_good_ice_url_is_accepted_and_reads_the_same_in_aiortc(url: str, parsed: dict[str, Any]) -> None:
    assert parse_stun_turn_uri(parse_ice_url(url)) == parsed


URL_CHARS = st.sampled_from(list("stunr:?=[]@/.-_ 0123456789abcdpSTUNTRxy%") + ["transport", "udp", "tcp", "::1",
                                                                                "65535", "65536", "99999"])


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(["stun:", "stuns:", "turn:", "turns:", "STUN:", "Turn:", ""]), st.lists(URL_CHARS, max_size=12))
def test_every_ice_url_peerbot_accepts_aiortc_parses_with_a_port_in_range(scheme: str, parts: list[str]) -> None:
    url = scheme + "".join(parts)
    try:
        accepted = parse_ice_url(url)
    except InvalidIceServerError:
        return
    parsed = parse_stun_turn_uri(accepted)  # must not raise
    assert 1 <= parsed["port"] <= 65535 and parsed["host"]
    if parsed["scheme"] == "turn":
        assert parsed["transport"] in ("udp", "tcp")
    if parsed["scheme"] == "turns":
        assert parsed["transport"] == "tcp"


@pytest.fixture
def dead_service() -> Iterator[tuple[socket.socket, str]]:
    """A listening socket standing in for a service: its accept queue tells whether anyone connected."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        yield listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


def connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            conn, _ = listener.accept()
        except BlockingIOError:
            return count
        conn.close()
        count += 1


def run_cli(*argv: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PEERBOT, *argv], capture_output=True, text=True, timeout=timeout, env=env or BASE_ENV)


@pytest.mark.parametrize("url", ["stun:", "stun:host:notaport", "stun:127.0.0.1:99999"])
def test_cli_call_with_a_malformed_ice_url_exits_2_before_any_request(dead_service: Any, url: str) -> None:
    listener, base = dead_service
    env = {**BASE_ENV, "ORGA_BASE_URL": base, "ORGA_API_KEY": "orga_test_key", "ORGA_USER_EMAIL": EMAIL}
    result = run_cli("call", "--ice-server", url, "--duration", "1", env=env)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("peerbot: error: --ice-server:") and "unexpected" not in lines[0]
    assert connections(listener) == 0


async def test_connect_with_a_malformed_ice_url_raises_a_configuration_error_before_any_request(
    dead_service: Any,
) -> None:
    listener, base = dead_service
    with pytest.raises(InvalidIceServerError, match="the host is missing"):
        peerbot.orga.connect(api_key="k", user_email=EMAIL, base_url=base, ice_servers=[{"urls": "stun:"}])
    assert connections(listener) == 0


@pytest.fixture
async def hostile_ice_config() -> AsyncIterator[str]:
    """An Orga stand-in that issues tokens and answers ice-config with ``{"urls": "stun:"}``."""
    async def secrets(request: web.Request) -> web.Response:
        return web.json_response({"ephemeral_token": "ek_hostile", "expires_in": 60})

    async def ice(request: web.Request) -> web.Response:
        return web.json_response({"iceServers": [{"urls": "stun:"}]})

    app = web.Application()
    app.router.add_post(CLIENT_SECRETS.path, secrets)
    app.router.add_get(ICE_CONFIG.path, ice)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_malformed_ice_url_in_an_ice_config_answer_is_an_orga_server_error(hostile_ice_config: str) -> None:
    with pytest.raises(OrgaAIServerError, match="the host is missing") as raised:
        async with peerbot.orga.connect(api_key="k", user_email=EMAIL, base_url=hostile_ice_config,
                                        reconnect=False):
            pass
    assert not isinstance(raised.value, ValueError)


def test_local_orga_server_refuses_an_out_of_range_ice_port_when_configured() -> None:
    with pytest.raises(ConfigurationError, match="port must be a number from 1 to 65535"):
        LocalOrgaServer(ice_servers=[{"urls": "stun:127.0.0.1:99999"}])


@pytest.mark.parametrize("argv, message", [
    (["--ice-server", "stun:"], "--ice-server: ICE server.urls has 'stun:': the host is missing"),
    (["--port", "99999"], "argument --port: expected a port from 0 to 65535"),
    (["--port", "-1"], "argument --port: expected a port from 0 to 65535"),
    (["--turn-url", "turn:127.0.0.1:3478"], "--turn-url needs --turn-secret too"),
    (["--turn-secret", "s3cret"], "--turn-secret needs --turn-url too"),
    (["--token-ttl", "nan"], "argument --token-ttl"),
    (["--echo-delay", "-1"], "argument --echo-delay: expected a number of seconds >= 0"),
    # An option of the other server is refused, not ignored.
    (["--orbit", "--api-key", "k"], "--api-key is an Orga option: it does nothing with --orbit"),
    (["--orbit", "--token-ttl", "5", "--max-calls", "3"], "--token-ttl, --max-calls are Orga options: they do nothing"),
    (["--ring-timeout", "5"], "--ring-timeout is an Orbit option: add --orbit"),
    (["--no-demo", "--secret-key", "sk_x"], "--secret-key, --no-demo are Orbit options: add --orbit"),
])
def test_serve_with_a_bad_setting_exits_2_with_one_line_naming_the_flag(argv: list[str], message: str) -> None:
    result = run_cli("serve", "--port", "0", *argv) if "--port" not in argv else run_cli("serve", *argv)
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "unexpected" not in lines[0], lines
    assert "s3cret" not in result.stderr and not result.stdout


# --- 2. malformed offers ------------------------------------------------------------------


async def real_offer() -> str:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    pc.createDataChannel(DATA_CHANNEL_LABEL)
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


MUTATIONS = {
    "a BUNDLE group naming an unknown mid": (lambda s: re.sub(r"a=group:BUNDLE [^\r\n]*", "a=group:BUNDLE 0 1 7", s),
                                             "a=group:BUNDLE names '7', which is no media section's a=mid"),
    "no a=fingerprint": (lambda s: re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", s),
                         "has no a=fingerprint of a known algorithm"),
    "a fingerprint of an unknown algorithm": (lambda s: re.sub(r"a=fingerprint:\S+", "a=fingerprint:md5", s),
                                              "has no a=fingerprint of a known algorithm"),
    "a fingerprint that is not hex": (lambda s: re.sub(r"a=fingerprint:sha-256 \S+", "a=fingerprint:sha-256 ZZ:YY", s),
                                      "malformed a=fingerprint:sha-256"),
    "a port past 65535": (lambda s: re.sub(r"m=audio \d+", "m=audio 99999", s, count=1),
                          "has port 99999: a port is 0 to 65535"),
    "a mid with a space": (lambda s: s.replace("a=mid:0\r\n", "a=mid:0 x\r\n", 1),
                           "a mid is one token, with no spaces"),
    "a candidate port past 65535": (lambda s: re.sub(r"(a=candidate:\S+ \S+ \S+ \S+ \S+) \d+", r"\1 99999", s, count=1),
                                    "port 99999: a port is 1 to 65535"),
    "a candidate address that is not an IP": (lambda s: re.sub(r"(a=candidate:\S+ \S+ \S+ \S+) \S+", r"\1 bogus", s,
                                                               count=1),
                                              "the address is neither an IP address nor an mDNS .local name"),
    "a candidate of an unknown type": (lambda s: re.sub(r"typ host", "typ martian", s, count=1),
                                       "its type 'martian' is not one of host, srflx, prflx, relay"),
    "no a=ice-pwd": (lambda s: re.sub(r"a=ice-pwd:[^\r\n]*\r\n", "", s), "has no a=ice-ufrag or no a=ice-pwd"),
    "an m= line that is not a number": (lambda s: re.sub(r"m=audio \d+", "m=audio x", s, count=1),
                                        "a line is malformed"),
}


@pytest.fixture
async def orga() -> AsyncIterator[tuple[LocalOrgaServer, httpx.AsyncClient, str]]:
    async with LocalOrgaServer(read_timeout=2.0) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15) as http:
            response = await http.post(CLIENT_SECRETS.path, params={"email": EMAIL}, headers=bearer(server.api_key))
            yield server, http, response.json()["ephemeral_token"]


@pytest.mark.parametrize("name", MUTATIONS)
async def test_a_malformed_offer_gets_a_400_in_words_and_no_error_is_logged(
    orga: Any, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    server, http, token = orga
    mutate, message = MUTATIONS[name]
    offer = mutate(await real_offer())
    caplog.set_level(logging.DEBUG, logger="asyncio")
    response = await http.post(CALLS.path, headers=bearer(token), json={"offer": {"type": "offer", "sdp": offer}})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_sdp" and message in error["message"], error
    assert not PYTHON_NAMES.search(error["message"]), error
    await asyncio.sleep(0.5)  # aiortc's background tasks, had they been started, would have failed by now
    assert not server.calls
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]


@pytest.mark.parametrize("name", MUTATIONS)
async def test_the_engine_refuses_each_malformed_offer_for_every_answerer(
    caplog: pytest.LogCaptureFixture, name: str
) -> None:
    # The Orbit side answers through the same Peer.accept_offer (orbit/call.py): one check for all.
    mutate, message = MUTATIONS[name]
    peer = Peer([], gather_timeout=1)
    try:
        with pytest.raises(SdpError, match=re.escape(message)) as raised:
            await peer.accept_offer(mutate(await real_offer()))
        assert not PYTHON_NAMES.search(str(raised.value))
    finally:
        await peer.close()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]


async def test_a_bad_answer_from_a_server_is_refused_by_the_offerer_in_words() -> None:
    peer = Peer([], gather_timeout=1)
    peer.add_transceiver("audio", None, "recvonly")
    try:
        answer = re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", await peer.create_offer())
        with pytest.raises(SdpError, match="the answer SDP could not be applied: .* no a=fingerprint"):
            await peer.accept_answer(answer)
    finally:
        await peer.close()


async def test_aiortc_connect_task_failing_is_retrieved_reported_and_never_logged_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Straight to aiortc, past the engine's checks: its connect task fails an assertion at DTLS start.
    caplog.set_level(logging.DEBUG, logger="asyncio")
    offer = re.sub(r"a=fingerprint:[^\r\n]*\r\n", "", await real_offer())
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    failures: list[BaseException] = []
    _aiortc.guard_connect(pc, failures.append)
    try:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        for _ in range(50):
            if failures:
                break
            await asyncio.sleep(0.1)
    finally:
        await _aiortc.close_peer_connection(pc)
    assert failures and isinstance(failures[0], AssertionError)
    import gc
    gc.collect()  # "never retrieved" is logged when the task is collected
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]


# --- 3. settings before requests -------------------------------------------------------------


@pytest.mark.parametrize("options, message", [
    ({"codecs": ["nope"]}, "unknown codec 'nope': choose from opus, G722, PCMU, PCMA, VP8, H264"),
    ({"codecs": []}, "codecs is empty: give at least one (choose from opus"),
    ({"codecs": "opus"}, "codecs must be a list of codec names"),
    ({"instructions": 5}, "instructions must be a string, got int"),
    ({"temperature": "0.5"}, "temperature must be a number within [0, 1]"),
    ({"return_transcription": "yes"}, "return_transcription must be True or False"),
])
async def test_bad_session_settings_are_a_configuration_error_at_connect_before_any_request(
    dead_service: Any, options: dict[str, Any], message: str
) -> None:
    listener, base = dead_service
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        peerbot.orga.connect(api_key="k", user_email=EMAIL, base_url=base, **options)
    assert connections(listener) == 0


async def test_codec_names_are_matched_whatever_their_case(dead_service: Any) -> None:
    _, base = dead_service
    session = peerbot.orga.connect(api_key="k", user_email=EMAIL, base_url=base, codecs=["OPUS", "vp8"])
    assert session._peer_options.codecs == ("opus", "vp8")


# --- 5. the local Orga server ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1e-320", "0.5", "0", "-3"])
async def test_an_expires_in_under_a_second_is_a_400_not_a_dead_token(orga: Any, value: str) -> None:
    server, http, _ = orga
    response = await http.post(CLIENT_SECRETS.path, params={"email": EMAIL}, content=f'{{"expires_in": {value}}}',
                               headers={**bearer(server.api_key), "Content-Type": "application/json"})
    assert response.status_code == 400
    assert "'expires_in' must be a number of seconds, at least 1" in response.json()["error"]["message"]


async def test_a_request_line_past_8_kib_gets_a_json_400(orga: Any, caplog: pytest.LogCaptureFixture) -> None:
    server, http, _ = orga
    response = await http.post(CLIENT_SECRETS.path, params={"email": "9" * 9000})
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/json")
    assert response.json()["error"]["code"] == "request_too_large"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text[:2000]
    assert (await http.get("/healthz")).json()["status"] == "ok"


async def test_malformed_offers_to_the_orbit_demo_user_end_its_call_and_log_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from peerbot.cli.orbit_target import orbit_target
    from peerbot.local.demo_user import echo_every_call

    caplog.set_level(logging.DEBUG, logger="asyncio")
    async with orbit_target("alice", local=True, port=0) as demo:
        answering = asyncio.create_task(echo_every_call(demo, "alice", retry_after=0.1))
        try:
            bob = await demo.as_user("bob")
            book = demo.server._calls  # the server's own record of each call's status
            for name in ("a BUNDLE group naming an unknown mid", "no a=fingerprint", "a candidate port past 65535"):
                mutate, _ = MUTATIONS[name]
                call = await demo.backend.calls.initiate(demo.user.id, "voice", acting_user=bob.user.id)
                for _ in range(100):  # the demo user accepts, then waits for the offer
                    if book.calls[call.id].status == "accepted":
                        break
                    await asyncio.sleep(0.05)
                assert book.calls[call.id].status == "accepted", name
                await demo.backend.calls.submit_offer(call.id, mutate(await real_offer()), acting_user=bob.user.id)
                for _ in range(100):  # the answerer refuses the offer and ends the call
                    if book.calls[call.id].status == "ended":
                        break
                    await asyncio.sleep(0.05)
                assert book.calls[call.id].status == "ended", name
        finally:
            answering.cancel()
            await asyncio.gather(answering, return_exceptions=True)
    import gc
    gc.collect()
    await asyncio.sleep(0)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:3000]
