"""The operator's member commands: ``tadamun invite create`` and ``tadamun member
list|approve|suspend|reinstate|role``. They call the same services as the JSON API, and the
audit log names their actor ``cli``."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from .cli_support import EXIT_USAGE, add_node_arguments, node_config, open_sessions, run_command
from .clock import SystemClock
from .config import Config
from .services.admin import Administration
from .services.invites import DEFAULT_EXPIRY_HOURS, MAX_EXPIRY_HOURS, MAX_USES, Invites
from .services.members import ROLES, STATUSES, Actor

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_member_commands"]

PAGE: Final = 100


@asynccontextmanager
async def _services(config: Config) -> AsyncIterator[tuple[Administration, Invites]]:
    async with open_sessions(config) as sessions:
        clock = SystemClock()
        yield Administration(sessions, clock), Invites(sessions, clock, config.server.base_url)


def _run(args: argparse.Namespace, work: Callable[..., Awaitable[None]]) -> int:
    """Run ``work(args, administration, invites)``; a refusal is printed, not a traceback."""

    async def main() -> None:
        async with _services(node_config(args)) as (administration, invites):
            await work(args, administration, invites)

    return run_command(args, main)


async def _invite_create(args: argparse.Namespace, _: Administration, invites: Invites) -> None:
    made = await invites.create(Actor.cli(), args.role, args.uses, args.expires_hours)
    expires = datetime.fromtimestamp(made["expires_at"], UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"Invite {made['id']}: role {made['role']}, {made['uses_left']} use(s), "
        f"expires {expires}. The link, shown only now:"
    )
    print(f"  {made['link']}")


async def _member_list(args: argparse.Namespace, admin: Administration, _: Any) -> None:
    after: int | None = None
    print(f"{'id':>6}  {'role':<9}  {'status':<9}  pseudonym")
    while True:
        page = await admin.members(after, PAGE, status=args.status, role=args.role)
        for m in page.items:
            print(f"{m['id']:>6}  {m['role']:<9}  {m['status']:<9}  {m['pseudonym']}")
        if page.after is None:
            return
        after = page.after


def _transition(action: str) -> Callable[..., Awaitable[None]]:
    async def work(args: argparse.Namespace, admin: Administration, _: Any) -> None:
        member = await admin.transition(Actor.cli(), args.id, action)
        print(f"member {member['id']} ({member['pseudonym']}) is now {member['status']}")

    return work


async def _member_role(args: argparse.Namespace, admin: Administration, _: Any) -> None:
    member = await admin.set_role(Actor.cli(), args.id, args.role)
    print(f"member {member['id']} ({member['pseudonym']}) is now {member['role']}")


def _bounded(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value

    return parse


def _add(commands: Commands, name: str, help_: str, work: Callable[..., Awaitable[None]]) -> Any:
    parser = commands.add_parser(name, help=help_, description=help_)
    add_node_arguments(parser)
    parser.set_defaults(handler=lambda args: _run(args, work))
    return parser


def add_member_commands(commands: Commands) -> None:
    invite = commands.add_parser("invite", help="invite links", description="invite links")
    invite.set_defaults(handler=lambda _: EXIT_USAGE)
    invite_commands = invite.add_subparsers(dest="invite_command", required=True, metavar="SUB")
    create = _add(invite_commands, "create", "make an invite link", _invite_create)
    create.add_argument("--role", choices=ROLES, default="member")
    create.add_argument("--uses", type=_bounded(1, MAX_USES), default=1)
    create.add_argument("--expires-hours", type=_bounded(1, MAX_EXPIRY_HOURS),
                        default=DEFAULT_EXPIRY_HOURS)  # fmt: skip

    member = commands.add_parser("member", help="members", description="members")
    member.set_defaults(handler=lambda _: EXIT_USAGE)
    member_commands = member.add_subparsers(dest="member_command", required=True, metavar="SUB")
    listing = _add(member_commands, "list", "list members", _member_list)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--role", choices=ROLES)
    for action, help_ in (
        ("approve", "approve a pending member"),
        ("suspend", "suspend a member"),
        ("reinstate", "reinstate a suspended member"),
    ):
        _add(member_commands, action, help_, _transition(action)).add_argument("id", type=int)
    role = _add(member_commands, "role", "set a member's role", _member_role)
    role.add_argument("id", type=int)
    role.add_argument("role", choices=ROLES)
