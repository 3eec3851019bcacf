"""The operator's peering commands: ``tadamun peer invite|invites|revoke|join|list|block|
unblock|remove``. They call the same services as the admin API, straight on the database
and, for ``join``, straight to the other node: the server need not be running. The audit
log names their actor ``cli``."""

from __future__ import annotations

import argparse
import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import segno

from .cli_support import EXIT_USAGE, add_node_arguments, node_config, open_sessions, run_command
from .clock import SystemClock
from .config import Config
from .errors import NodeError
from .federation.keylogs import KeyLogs
from .federation.peer_admin import PeerAdmin
from .federation.peering import DEFAULT_INVITE_HOURS, MAX_INVITE_HOURS, Peering
from .services.members import Actor
from .services.secrets import SecretMissing, load_secrets
from .services.signer import load_signer

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_peer_commands"]

Work = Callable[[argparse.Namespace, Peering, PeerAdmin], Awaitable[None]]


@asynccontextmanager
async def _services(config: Config) -> AsyncIterator[tuple[Peering, PeerAdmin]]:
    signer, secrets = load_signer(config.data_dir), load_secrets(config.data_dir)
    async with open_sessions(config) as sessions:
        clock = SystemClock()
        yield (
            Peering(sessions, clock, signer, KeyLogs(), secrets, config),
            PeerAdmin(sessions, clock, signer),
        )


def _run(args: argparse.Namespace, work: Work) -> int:
    """Run ``work(args, peering, peer_admin)``; a refusal is printed, not a traceback."""

    async def main() -> None:
        config = node_config(args, {"server.public_url": args.public_url})
        async with _services(config) as (peering, admin):
            await work(args, peering, admin)

    return run_command(args, main, usage_errors=(SecretMissing,))


def _when(at: int | None) -> str:
    return "-" if not at else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def qr_text(data: str) -> str:
    """``data`` as a QR code drawn with block characters, for a terminal."""
    out = io.StringIO()
    segno.make(data, error="m").terminal(out=out, compact=True)
    return out.getvalue()


async def _invite(args: argparse.Namespace, peering: Peering, _: PeerAdmin) -> None:
    made = await peering.create_invite(Actor.cli(), args.expires_hours)
    print(f"Peering invite {made['id']}: one use, expires {_when(made['expires_at'])}.")
    print("Give it to the other node's admin, out of band (it is shown only now):")
    print(f"  {made['invite']}")
    print("This node's fingerprint; they compare it with what their `peer join` prints:")
    print(f"  fingerprint: {made['fingerprint']}")
    if not args.no_qr:
        print(qr_text(made["invite"]), end="")


async def _invites(_: argparse.Namespace, peering: Peering, __: PeerAdmin) -> None:
    print(f"{'invite id':<32}  {'state':<7}  {'expires':<20}  used by")
    for invite in await peering.invites():
        print(f"{invite['id']:<32}  {invite['state']:<7}  {_when(invite['expires_at']):<20}  "
              f"{invite['used_by'] or '-'}")  # fmt: skip


async def _revoke(args: argparse.Namespace, peering: Peering, _: PeerAdmin) -> None:
    try:
        invite_id = bytes.fromhex(args.id)
    except ValueError:
        invite_id = b""
    if len(invite_id) != 16:
        raise NodeError(400, "invalid_invite", "an invite id is 32 hex characters")
    await peering.revoke_invite(Actor.cli(), invite_id)
    print(f"peering invite {args.id} revoked")


async def _join(args: argparse.Namespace, peering: Peering, _: PeerAdmin) -> None:
    peer = await peering.join(Actor.cli(), args.invite)
    print(f"Allied with {peer['name'] or 'a node without a name'} ({peer['endpoint']}).")
    print(f"  node id:     {peer['node']}")
    print(f"  fingerprint: {peer['fingerprint']}")
    print("Compare the fingerprint with the one the inviting admin sees. If they differ, run")
    print(f"`tadamun peer remove {peer['node'][:16]}` now: someone is in between.")


def _describe(peer: dict[str, Any]) -> list[str]:
    delivery = peer["delivery"]
    backoff = _when(delivery["next_attempt_at"]) if delivery["failures"] else "-"
    return [
        f"{peer['node']}  {peer['state']}  {peer['name']}",
        f"  fingerprint: {peer['fingerprint']}",
        f"  endpoint:    {peer['endpoint']}",
        f"  delivery:    {delivery['pending']} pending, {delivery['failures']} failure(s), "
        f"next attempt {backoff}, last delivery {_when(delivery['last_delivery_at'])}",
        f"  last error:  {delivery['last_error'] or '-'}",
        f"  last contact: {_when(peer['last_contact_at'])}",
    ]


async def _list(_: argparse.Namespace, __: Peering, admin: PeerAdmin) -> None:
    listed = await admin.list()
    if not listed:
        print("no peers yet: `tadamun peer invite` makes an invite, `tadamun peer join` uses one")
    for peer in listed:
        print("\n".join(_describe(peer)))


def _change(action: str) -> Work:
    async def work(args: argparse.Namespace, _: Peering, admin: PeerAdmin) -> None:
        peer = await admin.change(Actor.cli(), args.node, action)
        print(f"peer {peer['node']} ({peer['name'] or 'no name'}) is now {peer['state']}")

    return work


def _hours(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_INVITE_HOURS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_INVITE_HOURS}")
    return value


def _add(commands: Commands, name: str, help_: str, work: Work) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    add_node_arguments(parser)
    parser.add_argument("--public-url", help="override server.public_url (the node's address)")
    parser.set_defaults(handler=lambda args: _run(args, work))
    return parser


NODE_HELP: Final = "the peer: its node id in hex, a unique prefix of it, or its fingerprint"


def add_peer_commands(commands: Commands) -> None:
    peer = commands.add_parser("peer", help="federation peers", description="federation peers")
    peer.set_defaults(handler=lambda _: EXIT_USAGE)
    sub = peer.add_subparsers(dest="peer_command", required=True, metavar="SUB")
    invite = _add(sub, "invite", "make a one-use peering invite (string and QR code)", _invite)
    invite.add_argument("--expires-hours", type=_hours, default=DEFAULT_INVITE_HOURS)
    invite.add_argument("--no-qr", action="store_true", help="do not draw the QR code")
    _add(sub, "invites", "list peering invites", _invites)
    _add(sub, "revoke", "revoke a peering invite", _revoke).add_argument("id", help="invite id")
    join = _add(sub, "join", "answer another node's invite and ally with it", _join)
    join.add_argument("invite", help="the tadamun-peer: string")
    _add(sub, "list", "list peers, their state and delivery health", _list)
    for action, help_ in (
        ("block", "block a peer: nothing is accepted from it or sent to it"),
        ("unblock", "unblock a peer: it is allied again"),
        ("remove", "remove a peer: only a new invite brings it back"),
    ):
        _add(sub, action, help_, _change(action)).add_argument("node", help=NODE_HELP)
