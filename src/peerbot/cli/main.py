"""``peerbot``: the command line. Each subcommand lives in its own module.

Exit status: 0 a normal end, 1 a failure, 2 bad usage or settings (one ``peerbot: error: …``
line), 130/143 interrupted by SIGINT/SIGTERM. Tracebacks only with ``--debug`` or ``PEERBOT_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import NoReturn

from .. import __version__
from ..errors import ConfigurationError, MediaError, PeerbotError
from .text import terminal_safe


class _Parser(argparse.ArgumentParser):
    """Bad usage is one line, like every other error of the command line, and exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"peerbot: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand's parser (their modules imported here, where an early Ctrl-C is caught)."""
    from . import bench, call, converse, devices, load, orbit, serve, talk

    parser = _Parser(prog="peerbot", description="A headless participant in WebRTC calls.")
    parser.add_argument("--version", action="version", version=f"peerbot {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv for debug)")
    parser.add_argument("--debug", action="store_true", default=os.environ.get("PEERBOT_DEBUG") == "1",
                        help="show tracebacks of unexpected errors (also PEERBOT_DEBUG=1)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (call, orbit, serve, devices, bench, load, converse, talk):
        module.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # Ctrl-C while the modules load: no traceback either
        return 130
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:  # before a command's own signal handling is in place
        return 130
    except (ConfigurationError, MediaError) as exc:  # MediaError: a source or sink that cannot be opened
        return _error(exc, 2)
    except PeerbotError as exc:
        return _error(exc, 1)
    except Exception as exc:
        if args.debug:
            raise
        return _error(f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)", 1)


def _error(message: object, status: int) -> int:
    # One line, whatever the message; what a server put in it is shown, never obeyed by the terminal.
    print(f"peerbot: error: {terminal_safe(' '.join(str(message).split()))}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
