"""``peerbot serve``: run the embedded Orga-compatible server, or with ``--orbit`` the local
Orbit-compatible one, until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run the local Orga-compatible server (an echo assistant answers calls),"
                                          " or with --orbit the Orbit-compatible one")
    p.add_argument("--orbit", action="store_true", help="run the Orbit-compatible server (users, tokens, calls)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="port (default 8765, 8766 with --orbit; 0 picks a free one)")
    p.add_argument("--ice-server", action="append", default=[], metavar="JSON|URL",
                   help='ICE server handed to clients, e.g. stun:host:3478 or {"urls": …} (repeatable)')
    p.add_argument("--turn-url", action="append", dest="turn_urls", help="TURN URL for time-limited credentials")
    p.add_argument("--turn-secret", help="coturn static-auth-secret (TURN REST scheme)")
    orga = p.add_argument_group("Orga")
    orga.add_argument("--api-key", action="append", dest="api_keys",
                      help="accepted API key (repeatable; default: $ORGA_API_KEY or a generated one)")
    orga.add_argument("--token-ttl", type=float, default=60.0, help="ephemeral token lifetime in seconds")
    orga.add_argument("--echo-delay", type=float, default=0.2, help="seconds before the echo assistant replays audio")
    orbit = p.add_argument_group("Orbit (with --orbit)")
    orbit.add_argument("--secret-key", action="append", dest="secret_keys", metavar="SK",
                       help="an app's secret key (repeatable; default: $ORBIT_SECRET_KEY or a generated one)")
    orbit.add_argument("--publishable-key", action="append", dest="publishable_keys", metavar="PK",
                       help="the matching publishable key, one per --secret-key"
                            " (default: $ORBIT_CLIENT_ID or a generated one)")
    orbit.add_argument("--ring-timeout", type=float, default=30.0, metavar="S",
                       help="an unanswered call is missed after S seconds (default 30)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    ice = [json.loads(s) if s.lstrip().startswith("{") else {"urls": s} for s in args.ice_server]
    if args.orbit:
        return _run_orbit(args, ice)
    from ..local.orga_server import DEFAULT_PORT, serve

    api_keys = args.api_keys or ([os.environ["ORGA_API_KEY"]] if os.environ.get("ORGA_API_KEY") else None)
    serve(args.host, DEFAULT_PORT if args.port is None else args.port, api_keys=api_keys, ice_servers=ice,
          turn_urls=args.turn_urls, turn_secret=args.turn_secret, token_ttl=args.token_ttl,
          echo_delay=args.echo_delay)
    return 0


def _run_orbit(args: argparse.Namespace, ice: list[dict]) -> int:
    from ..local.orbit_server import DEFAULT_PORT, serve

    secret_keys = args.secret_keys or _env("ORBIT_SECRET_KEY")
    publishable_keys = args.publishable_keys or _env("ORBIT_CLIENT_ID")
    serve(args.host, DEFAULT_PORT if args.port is None else args.port, secret_keys=secret_keys,
          publishable_keys=publishable_keys, ring_timeout=args.ring_timeout, ice_servers=ice,
          turn_urls=args.turn_urls, turn_secret=args.turn_secret)
    return 0


def _env(name: str) -> list[str] | None:
    return [os.environ[name]] if os.environ.get(name) else None
