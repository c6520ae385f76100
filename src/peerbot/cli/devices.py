"""``peerbot devices``: list audio input and output devices."""

from __future__ import annotations

import argparse


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("devices", help="list audio devices (microphones and speakers)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..media.devices import format_devices

    print(format_devices())
    return 0
