"""The officers' key commands: ``tadamun keys show|delegate|rotate`` (SPEC §4).

They work on the database and the data directory directly. After ``delegate``, restart the
server so that it signs with the new operational key (a running server refuses to sign
with a key the log no longer names)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from protocol import KeyLogError, KeyState, SigningKey, fingerprint

from .cli_support import EXIT_USAGE, add_node_arguments, node_config, open_sessions, run_command
from .clock import SystemClock
from .config import Config
from .federation.keylogs import KeyLogs
from .federation.recovery import Recovery
from .identity import KEYS_DIR, OPERATIONAL_KEY, read_key_file

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_key_commands"]

Work = Callable[[argparse.Namespace, Recovery, Config], Awaitable[None]]

DELEGATE_HELP: Final = """\
Officers replace the server's operational key: a threshold of them give their key files.
The old key is kept as keys/operational.key.old-<position>; restart the server afterwards.

--seal is the last sequence number, signed with the old key, that the officers vouch for;
peers refuse anything later signed with it. The default is the node's last own envelope,
right when the key is merely retired. When the server was SEIZED, restore the data directory
from a backup onto a new server, and set --seal to the last sequence number the officers
trust: whatever the thief signed after it becomes invalid everywhere."""

ROTATE_HELP: Final = """\
Officers reveal the pre-committed next officer keys (the next-officer-*.key files written by
`init` or by the last rotation); those keys become the officers, and the node commits to
newly generated next keys, written to DATA_DIR/officers-next-<position>/. Only the revealed
keys sign: whoever stole the current officer keys cannot rotate. Move the new files OFFLINE."""


def _run(args: argparse.Namespace, work: Work) -> int:
    async def main() -> None:
        config = node_config(args)
        async with open_sessions(config) as sessions:
            await work(args, Recovery(sessions, KeyLogs(), config), config)

    try:
        return run_command(args, main, unusable="the database or a key file")
    except KeyLogError as exc:
        print(f"tadamun: the key log refuses this: {exc}", file=sys.stderr)
        return 1


def _when(at: int) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _summary(state: KeyState) -> list[str]:
    lines = [
        f"node id:     {state.node_id.hex()}",
        f"fingerprint: {fingerprint(state.node_id)}",
        f"key log:     {state.position + 1} event(s); officers {state.threshold} of "
        f"{len(state.officers)}, {len(state.next)} next key(s) committed",
    ]
    for event in state.events:
        seal = "" if event.seal is None else f", seal {event.seal}"
        lines.append(f"  {event.pos:>3}  {event.type:<15} {_when(event.created)}  "
                     f"operational {event.op.hex()[:16]}{seal}")  # fmt: skip
    return lines


def _key_in_force(config: Config, state: KeyState) -> str:
    path = config.data_dir / KEYS_DIR / OPERATIONAL_KEY
    try:
        public = SigningKey(read_key_file(path).seed).public
    except (OSError, KeyError, ValueError):
        return f"{path} is missing or unreadable"
    if public == state.op:
        return f"{path} holds the operational key in force"
    return f"{path} is NOT the operational key in force: the server cannot sign"


async def _show(_: argparse.Namespace, recovery: Recovery, config: Config) -> None:
    state = await recovery.state()
    print("\n".join(_summary(state)))
    print(_key_in_force(config, state))


async def _delegate(args: argparse.Namespace, recovery: Recovery, config: Config) -> None:
    state = await recovery.delegate(args.officer_key, args.seal, SystemClock().now())
    event = state.events[-1]
    print(f"Delegated: operational key {event.op.hex()[:16]} is in force from position "
          f"{event.pos}; envelopes signed with the old key")  # fmt: skip
    print(f"after seq {event.seal} are refused.")
    print(f"A new node descriptor was signed. Restart the server: tadamun serve --data-dir "
          f"{config.data_dir}")  # fmt: skip
    print("\n".join(_summary(state)))


async def _rotate(args: argparse.Namespace, recovery: Recovery, _: Config) -> None:
    rotated = await recovery.rotate(
        args.next_officer_key, threshold=args.threshold, next_count=args.next_officers,
        seal=args.seal, now=SystemClock().now(),
    )  # fmt: skip
    state = rotated.state
    print(f"Rotated: the {len(state.officers)} revealed key(s) are now the officers "
          f"({state.threshold} of them act together). New next-officer keys are in:")  # fmt: skip
    print(f"  {rotated.next_dir}")
    print("MOVE THEM OFFLINE NOW: one per future officer, apart from the current officer keys,")
    print("then delete the directory from this server. Whoever seizes the server must not")
    print("find them.")
    print("\n".join(_summary(state)))


def _add(commands: Commands, name: str, help_: str, work: Work, **extra: str) -> Any:
    parser = commands.add_parser(name, help=help_, description=extra.get("text", help_),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add_node_arguments(parser)
    parser.set_defaults(handler=lambda args: _run(args, work))
    return parser


def _seal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seal", type=int, help="last trusted seq under the old key "
                        "(default: the node's last own envelope)")  # fmt: skip


def add_key_commands(commands: Commands) -> None:
    keys = commands.add_parser("keys", help="the node's key log", description="key recovery")
    keys.set_defaults(handler=lambda _: EXIT_USAGE)
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="SUB")
    _add(sub, "show", "the key log and the fingerprint", _show)
    delegate = _add(sub, "delegate", "officers sign a new operational key", _delegate,
                    text=DELEGATE_HELP)  # fmt: skip
    delegate.add_argument("--officer-key", type=Path, action="append", required=True,
                          metavar="FILE", help="one officer's key file (repeat)")  # fmt: skip
    _seal(delegate)
    rotate = _add(sub, "rotate", "reveal the next officer keys; commit to new ones", _rotate,
                  text=ROTATE_HELP)  # fmt: skip
    rotate.add_argument("--next-officer-key", type=Path, action="append", required=True,
                        metavar="FILE", help="a next-officer key file; repeat per key")  # fmt: skip
    rotate.add_argument("--threshold", type=int, help="officers who act together afterwards "
                        "(default: the current threshold)")  # fmt: skip
    rotate.add_argument("--next-officers", type=int, help="next keys to generate "
                        "(default: as many as revealed)")  # fmt: skip
    _seal(rotate)
