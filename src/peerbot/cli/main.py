"""``peerbot``: the command line. Each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import logging
import sys

from ..errors import PeerbotError
from . import bench, call, devices, orbit, serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerbot", description="A headless participant in WebRTC calls.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (call, orbit, serve, devices, bench):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except PeerbotError as exc:
        print(f"peerbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
