"""``peerbot serve``: run the embedded Orga-compatible server until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os


def add_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="run the local Orga-compatible server (an echo assistant answers calls)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API key (repeatable; default: $ORGA_API_KEY or a generated one)")
    p.add_argument("--ice-server", action="append", default=[], metavar="JSON|URL",
                   help='ICE server handed to clients, e.g. stun:host:3478 or {"urls": …} (repeatable)')
    p.add_argument("--turn-url", action="append", dest="turn_urls", help="TURN URL for time-limited credentials")
    p.add_argument("--turn-secret", help="coturn static-auth-secret (TURN REST scheme)")
    p.add_argument("--token-ttl", type=float, default=60.0, help="ephemeral token lifetime in seconds")
    p.add_argument("--echo-delay", type=float, default=0.2, help="seconds before the echo assistant replays audio")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..local.orga_server import DEFAULT_PORT, serve

    api_keys = args.api_keys or ([os.environ["ORGA_API_KEY"]] if os.environ.get("ORGA_API_KEY") else None)
    ice = [json.loads(s) if s.lstrip().startswith("{") else {"urls": s} for s in args.ice_server]
    serve(args.host, DEFAULT_PORT if args.port is None else args.port, api_keys=api_keys, ice_servers=ice,
          turn_urls=args.turn_urls, turn_secret=args.turn_secret, token_ttl=args.token_ttl,
          echo_delay=args.echo_delay)
    return 0
