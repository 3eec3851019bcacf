"""The ``tadamun`` command line. Each subcommand is one small function."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from .clock import SystemClock
from .selfcheck import run_selfcheck

__all__ = ["main"]


def _version() -> str:
    try:
        return version("tadamun")
    except PackageNotFoundError:
        return "unknown"


def _selfcheck(_: argparse.Namespace) -> int:
    return 0 if run_selfcheck(SystemClock().now(), print) else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tadamun",
        description="Tadamun: a federated organising server for independent organisations.",
    )
    parser.add_argument("--version", action="version", version=f"tadamun {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("selfcheck", help="prove the protocol core works on this machine")
    check.set_defaults(handler=_selfcheck)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
