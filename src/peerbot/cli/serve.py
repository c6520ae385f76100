"""``peerbot serve``: run the embedded Orga-compatible server, or with ``--orbit`` the local
Orbit-compatible one, until Ctrl-C or SIGTERM.

It prints ``export NAME=value`` lines (shell-quoted, so ``eval`` takes them) holding everything
``peerbot call`` / ``peerbot orbit`` and the Python API need to reach it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shlex
import signal
import subprocess
import sys
from typing import Any

from .._redact import redact
from ..errors import ConfigurationError
from ..ice_servers import IceServer, InvalidIceServer, ice_server_from_text
from ..local.orbit_server import DEFAULT_PORT as ORBIT_PORT
from ..local.orbit_server import LocalOrbitServer
from ..local.orga_server import DEFAULT_PORT as ORGA_PORT
from ..local.orga_server import DEFAULT_ECHO_DELAY, MAX_TOKEN_TTL
from ..local.orga_server import ASSISTANTS, LocalOrgaServer
from ..local.voice_agent import DEFAULT_ENDPOINTING, DEFAULT_THINK_TIME
from .options import agent_seconds, count, delay, port, seconds

DEMO_USER = "alice"


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run the local Orga-compatible server (an echo assistant or a voice agent"
                                          " answers calls), or with --orbit the Orbit-compatible one")
    p.add_argument("--orbit", action="store_true", help="run the Orbit-compatible server (users, tokens, calls)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=None,
                   help=f"port (default {ORGA_PORT}, {ORBIT_PORT} with --orbit; 0 picks a free one)")
    p.add_argument("--ice-server", action="append", default=[], metavar="JSON|URL",
                   help='ICE server handed to clients, e.g. stun:host:3478 or {"urls": …} (repeatable)')
    p.add_argument("--turn-url", action="append", dest="turn_urls", help="TURN URL for time-limited credentials")
    p.add_argument("--turn-secret", help="coturn static-auth-secret (TURN REST scheme)")
    orga = p.add_argument_group("Orga")
    orga.add_argument("--api-key", action="append", dest="api_keys",
                      help="accepted API key (repeatable; default: $ORGA_API_KEY or a generated one)")
    orga.add_argument("--token-ttl", type=seconds, default=60.0, help="ephemeral token lifetime in seconds")
    orga.add_argument("--echo-delay", type=delay, default=None, metavar="S",
                      help=f"seconds before the echo assistant replays audio (default {DEFAULT_ECHO_DELAY:g})")
    orga.add_argument("--assistant", choices=ASSISTANTS, default="echo",
                      help="who answers calls: 'echo' plays the caller's audio back; 'agent' waits for the end of"
                           " the caller's turn, thinks, then says what it recognised (default echo)")
    orga.add_argument("--endpointing", type=agent_seconds, metavar="S",
                      help="agent: seconds of silence after the caller's speech that end a turn"
                           f" (default {DEFAULT_ENDPOINTING:g})")
    orga.add_argument("--think-time", type=agent_seconds, metavar="S",
                      help=f"agent: seconds from the end of a turn to the start of the reply (default {DEFAULT_THINK_TIME:g})")
    orga.add_argument("--no-barge-in", dest="barge_in", action="store_false",
                      help="agent: play every reply to its end, even when the caller talks over it")
    orga.add_argument("--reflect", action="store_true",
                      help="send each caller's RTP straight back undecoded (like an SFU) instead of the echo"
                           " assistant: a far side that is not the bottleneck of a load test")
    orga.add_argument("--max-calls", type=count, default=32, metavar="N",
                      help="live calls at most, per process (default 32)")
    orga.add_argument("--processes", type=count, default=1, metavar="P",
                      help="serve the port from P processes (SO_REUSEPORT: the kernel spreads the callers), so"
                           " one process's GIL does not cap a load test (default 1)")
    orga.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)  # a --processes child
    orbit = p.add_argument_group("Orbit (with --orbit)")
    orbit.add_argument("--secret-key", action="append", dest="secret_keys", metavar="SK",
                       help="an app's secret key (repeatable; default: $ORBIT_SECRET_KEY or a generated one)")
    orbit.add_argument("--publishable-key", action="append", dest="publishable_keys", metavar="PK",
                       help="the matching publishable key, one per --secret-key"
                            " (default: $ORBIT_CLIENT_ID or a generated one)")
    orbit.add_argument("--ring-timeout", type=seconds, default=30.0, metavar="S",
                       help="an unanswered call is missed after S seconds (default 30)")
    orbit.add_argument("--no-demo", dest="demo", action="store_false",
                       help=f"do not host the demo user {DEMO_USER!r}, who answers every call and plays back what it hears")
    # Each server's own options, so that one given to the other server is refused, not ignored.
    p.set_defaults(run=run, server_options={"Orga": _options_of(orga), "Orbit": _options_of(orbit)})


def _options_of(group: argparse._ArgumentGroup) -> list[tuple[str, str, Any]]:
    """(option as typed, dest, default) of each visible option of an argparse group."""
    return [(action.option_strings[0], action.dest, action.default) for action in group._group_actions
            if action.help != argparse.SUPPRESS]


def _check_server_options(args: argparse.Namespace) -> None:
    """Refuse an option of the server that is not being run."""
    other = "Orga" if args.orbit else "Orbit"
    given = [option for option, dest, default in args.server_options[other] if getattr(args, dest) != default]
    if given:
        one = len(given) == 1
        what = f"is an {other} option" if one else f"are {other} options"
        fix = f"{'it does' if one else 'they do'} nothing with --orbit" if args.orbit else "add --orbit"
        raise ConfigurationError(f"{', '.join(given)} {what}: {fix}")


def _agent_options(args: argparse.Namespace) -> list[str]:
    """The voice agent's options given, as argv; refused where there is no agent to tune."""
    given = [*(["--endpointing", repr(args.endpointing)] if args.endpointing is not None else []),
             *(["--think-time", repr(args.think_time)] if args.think_time is not None else []),
             *([] if args.barge_in else ["--no-barge-in"])]
    if args.assistant == "agent" and (args.orbit or args.reflect):
        raise ConfigurationError(f"--assistant agent does not go with {'--orbit' if args.orbit else '--reflect'}")
    if args.echo_delay is not None and (args.assistant == "agent" or args.reflect or args.orbit):
        other = "--orbit" if args.orbit else "--reflect" if args.reflect else "--assistant agent"
        raise ConfigurationError(f"--echo-delay tunes the echo assistant: it does nothing with {other}")
    if args.assistant != "agent" and given:
        flags = [flag for flag in given if flag.startswith("--")]
        raise ConfigurationError(f"{', '.join(flags)} {'tunes' if len(flags) == 1 else 'tune'} the voice agent:"
                                 " add --assistant agent")
    return given


def run(args: argparse.Namespace) -> int:
    try:
        ice = [ice_server_from_text(text) for text in args.ice_server]
    except InvalidIceServer as exc:
        raise ConfigurationError(f"--ice-server: {exc}") from None
    if bool(args.turn_urls) != bool(args.turn_secret):
        given, missing = ("--turn-url", "--turn-secret") if args.turn_urls else ("--turn-secret", "--turn-url")
        raise ConfigurationError(f"{given} needs {missing} too: TURN REST credentials are made from both")
    if args.token_ttl > MAX_TOKEN_TTL:
        raise ConfigurationError(f"--token-ttl must be at most {MAX_TOKEN_TTL:g} seconds, got {args.token_ttl:g}")
    _agent_options(args)
    _check_server_options(args)
    port = args.port if args.port is not None else ORBIT_PORT if args.orbit else ORGA_PORT
    asyncio.run(_serve_orbit(args, port, ice) if args.orbit else _serve_orga(args, port, ice))
    return 0


_SECRET_ENV = "PEERBOT_SERVE_TOKEN_SECRET"  # how --processes hands its children the token secret (not argv)


async def _serve_orga(args: argparse.Namespace, port: int, ice: list[IceServer]) -> None:
    stop = _stop_on_signal()
    api_keys = args.api_keys or _env("ORGA_API_KEY")
    shared = args.processes > 1 or args.reuse_port
    secret = bytes.fromhex(os.environ[_SECRET_ENV]) if args.reuse_port and os.environ.get(_SECRET_ENV) else (
        secrets.token_bytes(32) if shared else None)
    async with LocalOrgaServer(args.host, port, api_keys=api_keys, ice_servers=ice, turn_urls=args.turn_urls,
                               turn_secret=args.turn_secret, token_ttl=args.token_ttl,
                               echo_delay=DEFAULT_ECHO_DELAY if args.echo_delay is None else args.echo_delay,
                               reflect=args.reflect, assistant=args.assistant,
                               endpointing=DEFAULT_ENDPOINTING if args.endpointing is None else args.endpointing,
                               think_time=DEFAULT_THINK_TIME if args.think_time is None else args.think_time,
                               barge_in=args.barge_in,
                               max_calls=args.max_calls, max_calls_per_token=min(4, args.max_calls),
                               reuse_port=shared, token_secret=secret) as server:
        async with contextlib.AsyncExitStack() as children:
            for _ in range(args.processes - 1):
                children.push_async_callback(_stopped, await _child(args, server.port, server.api_keys, secret))
            more = f" ({args.processes} processes)" if args.processes > 1 else ""
            if server.assistant == "agent":
                more += (f" with the voice agent (endpointing {server.endpointing:g} s, think time"
                         f" {server.think_time:g} s, barge-in {'on' if server.barge_in else 'off'})")
            print(f"Orga-compatible server on {server.base_url}{more}")
            _print_exports({"ORGA_BASE_URL": server.base_url, "ORGA_API_KEY": server.api_key,
                            "ORGA_USER_EMAIL": server.user_email}, configured={"ORGA_API_KEY"} if api_keys else set())
            await stop.wait()


async def _child(args: argparse.Namespace, port: int, api_keys: tuple[str, ...],
                 secret: bytes | None) -> asyncio.subprocess.Process:
    """One more process serving ``port`` with the same keys and token secret (handed over in the environment)."""
    argv = [sys.executable, "-m", "peerbot.cli.main", "serve", "--host", args.host, "--port", str(port),
            "--reuse-port", "--token-ttl", str(args.token_ttl),
            *(["--echo-delay", repr(args.echo_delay)] if args.echo_delay is not None else []),
            "--max-calls", str(args.max_calls), *(["--reflect"] if args.reflect else []),
            "--assistant", args.assistant, *_agent_options(args)]
    for server in args.ice_server:
        argv += ["--ice-server", server]
    for url in args.turn_urls or ():
        argv += ["--turn-url", url]
    env = {**os.environ, _SECRET_ENV: (secret or b"").hex(), "ORGA_API_KEY": api_keys[0]}
    if args.turn_secret:
        argv += ["--turn-secret", args.turn_secret]
    if len(api_keys) > 1:  # one key goes in the environment (out of ps); several as the parent got them
        for key in api_keys:
            argv += ["--api-key", key]
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None  # stdout=PIPE
    await asyncio.wait_for(proc.stdout.readline(), 30)  # it listens once it says so
    return proc


async def _stopped(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.terminate()
    await proc.wait()


async def _serve_orbit(args: argparse.Namespace, port: int, ice: list[IceServer]) -> None:
    from ..local.demo_user import echo_every_call
    from .orbit_target import orbit_target

    stop = _stop_on_signal()
    secret_keys = args.secret_keys or _env("ORBIT_SECRET_KEY")
    options: dict[str, Any] = dict(
        secret_keys=secret_keys, publishable_keys=args.publishable_keys or _env("ORBIT_CLIENT_ID"),
        ring_timeout=args.ring_timeout, ice_servers=ice, turn_urls=args.turn_urls, turn_secret=args.turn_secret,
    )
    async with contextlib.AsyncExitStack() as stack:
        if args.demo:  # the demo user is the app user the server is started for
            demo = await stack.enter_async_context(orbit_target(DEMO_USER, local=True, host=args.host, port=port,
                                                                **options))
            server = demo.server
        else:
            server = await stack.enter_async_context(LocalOrbitServer(args.host, port, **options))
        print(f"Orbit-compatible server on {server.base_url}")
        _print_exports({"ORBIT_BASE_URL": server.base_url, "ORBIT_SECRET_KEY": server.secret_key,
                        "ORBIT_CLIENT_ID": server.publishable_key},
                       configured={"ORBIT_SECRET_KEY"} if secret_keys else set())
        if args.demo:
            task = asyncio.create_task(echo_every_call(demo, DEMO_USER), name="demo-user")
            stack.push_async_callback(_cancelled, task)
            print(f"# demo user {DEMO_USER!r} answers every call and plays back what it hears", flush=True)
        await stop.wait()


def _print_exports(values: dict[str, str], configured: set[str]) -> None:
    # A generated key is useless once the process ends and there is no other way to learn it,
    # so it is printed; a key the operator gave is only hinted at (they have it already).
    exported = " ".join(f"{name}={shlex.quote(value)}" for name, value in values.items() if name not in configured)
    print(f"export {exported}")
    for name in sorted(configured):
        print(f"# {name}: the one you gave ({redact(values[name])})")
    print(end="", flush=True)


def _stop_on_signal() -> asyncio.Event:
    """An event SIGINT or SIGTERM sets; installed before the server starts, so no signal is missed."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not on Windows, nor off the main thread
            pass
    return stop


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _env(name: str) -> list[str] | None:
    return [os.environ[name]] if os.environ.get(name) else None
