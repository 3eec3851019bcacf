"""The operator's coalition commands: ``tadamun coalition found|invite|join|leave|list``
(SPEC §15). They call the same service as the admin API, straight on the database; the
running server delivers what they sign. The audit log names their actor ``cli``.

A coalition is named by its number on this node (``list`` shows it) or a unique prefix of
its id in hex; a node to invite by its id in hex, or a peer by a unique prefix or its
fingerprint.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final

from .cli_support import EXIT_USAGE, add_node_arguments, node_config, open_sessions, run_command
from .clock import SystemClock
from .config import Config
from .errors import NodeError
from .services.coalitions import Coalitions
from .services.members import Actor
from .services.signer import load_signer

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_coalition_commands"]

LANGS: Final = ("ar", "ckb", "en")
Work = Callable[[argparse.Namespace, Coalitions], Awaitable[None]]


@asynccontextmanager
async def _service(config: Config) -> AsyncIterator[Coalitions]:
    async with open_sessions(config) as sessions:
        yield Coalitions(sessions, SystemClock(), load_signer(config.data_dir))


def _run(args: argparse.Namespace, work: Work) -> int:
    async def main() -> None:
        async with _service(node_config(args)) as service:
            await work(args, service)

    return run_command(args, main)


def _texts(args: argparse.Namespace, field: str) -> dict[str, str]:
    return {lang: value for lang in LANGS if (value := getattr(args, f"{field}_{lang}"))}


def _name(texts: dict[str, str]) -> str:
    return next((texts[lang] for lang in ("en", "ar", "ckb") if lang in texts), "") or next(
        iter(texts.values()), ""
    )


def describe(coalition: dict[str, Any]) -> list[str]:
    """A coalition in a few lines: number, name, this node's standing, then each node."""
    lines = [
        f"{coalition['id']}  {_name(coalition['name'])}  ({coalition['standing']})",
        f"  id:       {coalition['coalition']}",
        f"  audience: {coalition['audience']}",
    ]
    for member in coalition["members"]:
        own = " (this node)" if member["self"] else ""
        label = member["name"] or member["fingerprint"]
        lines.append(f"  {member['state']:<8} {member['node'][:16]}  {label}{own}")
    if not coalition["founder_verified"]:
        lines.append("  founder not yet confirmed: its coalition.found is not held here")
    for invite in coalition["invitations"]:
        sender = invite["inviter_name"] or invite["inviter_fingerprint"] or "?"
        lines.append(f"  invitation {invite['invite'][:16]} from {sender}"
                     f" (join --invite {invite['invite'][:16]})")  # fmt: skip
    return lines


async def _found(args: argparse.Namespace, service: Coalitions) -> None:
    name = _texts(args, "name")
    if not name:
        raise NodeError(400, "invalid_field", "give a name: --name-en, --name-ar or --name-ckb")
    made = await service.found(Actor.cli(), name, _texts(args, "purpose") or None)
    print(f"Coalition {made['id']} founded: {made['coalition']}")
    print(f"  calls to it: --audience {made['audience']}")
    print(f"  invite nodes: tadamun coalition invite --data-dir DIR {made['id']} NODE")


async def _invite(args: argparse.Namespace, service: Coalitions) -> None:
    made = await service.invite(Actor.cli(), await service.resolve(args.coalition), args.node)
    print("\n".join(describe(made)))


async def _join(args: argparse.Namespace, service: Coalitions) -> None:
    number = await service.resolve(args.coalition)
    print("\n".join(describe(await service.join(Actor.cli(), number, args.invite))))


async def _leave(args: argparse.Namespace, service: Coalitions) -> None:
    print(
        "\n".join(describe(await service.leave(Actor.cli(), await service.resolve(args.coalition))))
    )


async def _list(_: argparse.Namespace, service: Coalitions) -> None:
    listed = await service.list()
    if not listed:
        print("no coalitions yet: `tadamun coalition found` founds one")
    for coalition in listed:
        print("\n".join(describe(coalition)))


def _add(commands: Commands, name: str, help_: str, work: Work) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    add_node_arguments(parser)
    parser.set_defaults(handler=lambda args: _run(args, work))
    return parser


COALITION_HELP: Final = "the coalition: its number here (see `list`) or a prefix of its id"


def add_coalition_commands(commands: Commands) -> None:
    top = commands.add_parser("coalition", help="coalitions of nodes",
                              description="coalitions of nodes")  # fmt: skip
    top.set_defaults(handler=lambda _: EXIT_USAGE)
    sub = top.add_subparsers(dest="coalition_command", required=True, metavar="SUB")
    found = _add(sub, "found", "found a coalition, this node its first member", _found)
    for lang in LANGS:
        found.add_argument(f"--name-{lang}", help=f"its name in {lang}")
        found.add_argument(f"--purpose-{lang}", help=f"what it is for, in {lang}")
    invite = _add(sub, "invite", "invite a node (only members invite)", _invite)
    invite.add_argument("coalition", help=COALITION_HELP)
    invite.add_argument(
        "node", help="node id in hex; a peer also by a unique prefix or fingerprint"
    )
    join = _add(sub, "join", "join by an open invite naming this node", _join)
    join.add_argument("coalition", help=COALITION_HELP)
    join.add_argument("--invite", help="the invite's id in hex or a unique prefix (`list` shows "
                      "who sent each); default: the oldest")  # fmt: skip
    _add(sub, "leave", "leave, or decline the open invite", _leave).add_argument(
        "coalition", help=COALITION_HELP
    )
    _add(sub, "list", "list coalitions and who is in them", _list)
