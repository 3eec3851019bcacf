"""Coalitions this node founds, is invited to, joins and leaves (DESIGN §3, SPEC §15).

Admins decide: the JSON API's coalition routes are for admins, and the operator at the
command line acts as ``cli``; every change is written to the audit log. Each action signs
one ``coalition.*`` envelope addressed ``coalition:<id>``, stores it (its deliveries are
queued with it: node.federation.outbox sends coalition envelopes to the members and
invitees among this node's allies) and applies it here at once
(:mod:`node.services.coalitions_apply`), all in one transaction.

- **found**: a new coalition, with a random salt; this node its first member.
- **invite** a node (by node id in hex; a peer also by a unique prefix or its fingerprint):
  only a member invites; not a member or an invitee already (``already_member``,
  ``already_invited``), not this node (``own_node``), not a blocked peer (``blocked_node``).
  The invite carries this node's view of the coalition (members, open invites), at most
  :data:`~protocol.coalitions.MAX_MEMBERS` members (``coalition_full``).
- **join** by an open invite naming this node that counts: the one the admin names (by id
  in hex, or a unique prefix), else the oldest (``not_invited`` without one). The view lists
  them with who sent each (``invitations``), so joining never follows a newer invite unasked.
- **leave**: a member leaves; an invited node declines (``not_in_coalition`` otherwise).

A coalition's own number here (``id``) is what the API and the CLI name it by; ``coalition``
is its protocol id in hex, the same on every node. ``founder_verified`` says whether the
founder's ``coalition.found`` is held: until it is, the founder, name and purpose are the
inviter's word (anyone who learnt a salt can claim a coalition "founded by" another node).
Calls to a coalition's audience need this node to be a member (:func:`is_member`, used by
node.services.calls).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import NodeError, not_found
from node.services.coalitions_apply import apply_coalition, invitations
from node.services.members import Actor, audit
from node.services.signer import Signer
from node.storage import coalitions as store
from node.storage import peers
from node.storage.errors import NotFound
from node.storage.models import CoalitionMember, CoalitionRow, Peer
from protocol import (
    CoalitionFound,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionLeave,
    CoalitionMessage,
    Standing,
    ValidationError,
    coalition_audience,
    coalition_id,
    coalition_of,
    fingerprint,
)
from protocol.coalitions import MAX_MEMBERS, Member, OpenInvite
from protocol.membership import INVITED, LEFT, MEMBER

__all__ = ["STATES", "CoalitionError", "Coalitions", "Code", "coalition_view", "is_member"]

STATES: Final = (MEMBER, INVITED, LEFT)
_HEX: Final = re.compile(r"[0-9a-f]{1,64}")
_FINGERPRINT: Final = re.compile(r"[0-9]{30}")


class Code(StrEnum):
    INVALID_FIELD = "invalid_field"
    NOT_MEMBER = "not_a_member"
    ALREADY_MEMBER = "already_member"
    ALREADY_INVITED = "already_invited"
    NOT_INVITED = "not_invited"
    NOT_IN_COALITION = "not_in_coalition"
    COALITION_FULL = "coalition_full"
    UNKNOWN_NODE = "unknown_node"
    AMBIGUOUS = "ambiguous_node"
    OWN_NODE = "own_node"
    BLOCKED_NODE = "blocked_node"


_STATUS: Final = {Code.INVALID_FIELD: 400, Code.AMBIGUOUS: 400, Code.OWN_NODE: 400,
                  Code.UNKNOWN_NODE: 404}  # fmt: skip


class CoalitionError(NodeError):
    """A refused coalition request: a stable code, a safe message, an HTTP status (409
    unless :data:`_STATUS` says otherwise)."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(_STATUS.get(code, 409), code.value, message)


async def is_member(session: AsyncSession, audience: str, self_id: bytes) -> bool:
    """Whether this node is a member of the coalition ``audience`` names."""
    coalition = coalition_of(audience)
    if coalition is None:
        return False
    states = await store.states_of(session, [coalition])
    return states.get(coalition, {}).get(self_id) == MEMBER


@dataclass(frozen=True, slots=True)
class Invitation:
    """An open invite naming this node: its id, when it was made, who sent it (None: only
    listed in a snapshot, not held here)."""

    invite: bytes
    created: int
    inviter: bytes | None


def coalition_view(
    row: CoalitionRow,
    standings: list[CoalitionMember],
    self_id: bytes,
    names: Mapping[bytes, str],
    *,
    founder_verified: bool = False,
    invites: list[Invitation] | None = None,
) -> dict[str, Any]:
    """A coalition as the API and the CLI show it; ``standing`` is this node's own state,
    ``invitations`` the open invites naming it, oldest first."""
    own = next((s.state for s in standings if s.node == self_id), None)
    return {
        "id": row.id,
        "coalition": row.coalition_id.hex(),
        "audience": coalition_audience(row.coalition_id),
        "name": dict(row.name),
        "purpose": None if row.purpose is None else dict(row.purpose),
        "founder": row.founder.hex(),
        "founder_verified": founder_verified,
        "standing": own or "none",
        "invitations": [_invitation_view(i, names) for i in invites or ()],
        "members": [_member_view(s, self_id, names) for s in standings],
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def _invitation_view(invite: Invitation, names: Mapping[bytes, str]) -> dict[str, Any]:
    inviter = invite.inviter
    return {
        "invite": invite.invite.hex(),
        "created": invite.created,
        "inviter": None if inviter is None else inviter.hex(),
        "inviter_fingerprint": None if inviter is None else fingerprint(inviter),
        "inviter_name": "" if inviter is None else names.get(inviter, ""),
    }


def _member_view(
    row: CoalitionMember, self_id: bytes, names: Mapping[bytes, str]
) -> dict[str, Any]:
    return {
        "node": row.node.hex(),
        "fingerprint": fingerprint(row.node),
        "name": names.get(row.node, ""),
        "self": row.node == self_id,
        "state": row.state,
        "since": row.since,
        "invited_at": row.invited_at,
    }


@dataclass(frozen=True, slots=True)
class Coalitions:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    signer: Signer

    # Reading

    async def list(self) -> list[dict[str, Any]]:
        """Every coalition this node knows, by its number here."""
        async with self.sessions() as session:
            names = await _names(session)
            return [await self._view(session, row, names)
                    for row in await store.list_coalitions(session)]  # fmt: skip

    async def get(self, number: int) -> dict[str, Any]:
        async with self.sessions() as session:
            row = await _row(session, number, lock=False)
            return await self._view(session, row, await _names(session))

    async def resolve(self, name: str) -> int:
        """The number of the coalition ``name`` names: a number this node has for one, else
        a unique prefix of its id in hex (so "12" is coalition 12 if there is one, else the
        one whose id starts with 12); 404, or 400 ``ambiguous_node`` for a prefix of several."""
        text = name.strip().lower()
        async with self.sessions() as session:
            rows = await store.list_coalitions(session)
        if text.isdigit() and any(r.id == int(text) for r in rows):
            return int(text)
        found = [
            r.id for r in rows if _HEX.fullmatch(text) and r.coalition_id.hex().startswith(text)
        ]
        if len(found) != 1:
            raise not_found("coalition") if not found else _ambiguous(len(found), name)
        return found[0]

    # Acting

    async def found(
        self, actor: Actor, name: Mapping[str, str], purpose: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        """Found a coalition, this node its first member."""
        salt = secrets.token_bytes(32)
        message = _checked(CoalitionFound, coalition=coalition_id(self.signer.node_id, salt),
                           salt=salt, name=name, purpose=purpose)  # fmt: skip
        now = self.clock.now()
        async with self.sessions.begin() as session:
            await self._publish(session, message, now)
            row = await store.get_coalition(session, message.coalition)
            assert row is not None  # noqa: S101 - the found just made it known
            await audit(session, now, actor, "coalition.found", coalition=row.coalition_id.hex())
            return await self._view(session, row, await _names(session))

    async def invite(self, actor: Actor, number: int, node: str) -> dict[str, Any]:
        """Invite the node ``node`` names; this node must be a member."""
        now = self.clock.now()
        async with self.sessions.begin() as session:
            invitee = await self._invitee(session, node)
            row = await _row(session, number)
            standings = await _standings(session, row)
            _require(standings, self.signer.node_id, MEMBER, Code.NOT_MEMBER, "only members invite")
            _check_invitee(standings.get(invitee))
            await self._publish(session, _invite(row, invitee, standings), now)
            await audit(session, now, actor, "coalition.invite",
                        coalition=row.coalition_id.hex(), node=invitee.hex())  # fmt: skip
            return await self._view(session, row, await _names(session))

    async def join(self, actor: Actor, number: int, invite: str | None = None) -> dict[str, Any]:
        """Join by the open invite ``invite`` names (its id in hex, or a unique prefix), or
        by the oldest open invite naming this node."""
        now = self.clock.now()
        async with self.sessions.begin() as session:
            row = await _row(session, number)
            own = (await _standings(session, row)).get(self.signer.node_id)
            if own is not None and own.state == MEMBER:
                raise CoalitionError(Code.ALREADY_MEMBER, "this node is a member already")
            open_ = await invitations(session, row.coalition_id, self.signer.node_id)
            chosen = _chosen([i for i, _, _ in open_], invite)
            await self._publish(session, CoalitionJoin(row.coalition_id, chosen), now)
            await audit(session, now, actor, "coalition.join", coalition=row.coalition_id.hex())
            return await self._view(session, row, await _names(session))

    async def leave(self, actor: Actor, number: int) -> dict[str, Any]:
        """Leave (a member), or decline the open invites (an invited node)."""
        now = self.clock.now()
        async with self.sessions.begin() as session:
            row = await _row(session, number)
            own = (await _standings(session, row)).get(self.signer.node_id)
            if own is None or own.state not in (MEMBER, INVITED):
                raise CoalitionError(Code.NOT_IN_COALITION, "this node is not in the coalition")
            await self._publish(session, CoalitionLeave(row.coalition_id), now)
            await audit(session, now, actor, "coalition.leave", coalition=row.coalition_id.hex(),
                        was=own.state)  # fmt: skip
            return await self._view(session, row, await _names(session))

    # Helpers

    async def _publish(self, session: AsyncSession, message: CoalitionMessage, now: int) -> None:
        """Sign ``message`` to the coalition's audience, store and queue it, apply it here."""
        signed = await self.signer.append(
            session, type=message.TYPE, body=message.to_body(),
            audience=coalition_audience(message.coalition), now=now,
        )  # fmt: skip
        await apply_coalition(session, signed, self_id=self.signer.node_id, now=now)

    async def _invitee(self, session: AsyncSession, name: str) -> bytes:
        """The node ``name`` names: 64 hex digits, or a peer by prefix or fingerprint."""
        text = name.strip().lower()
        rows = list(await session.scalars(select(Peer)))
        if re.fullmatch(r"[0-9a-f]{64}", text):
            node = bytes.fromhex(text)
        else:
            found = [peer.node_id for peer in rows if _names_peer(text, peer.node_id)]
            if len(found) > 1:
                raise _ambiguous(len(found), name)
            if not found:
                raise CoalitionError(Code.UNKNOWN_NODE, "give a node id (64 hex) or a peer")
            node = found[0]
        if node == self.signer.node_id:
            raise CoalitionError(Code.OWN_NODE, "this node is in the coalition already")
        if any(p.node_id == node and p.state == peers.BLOCKED for p in rows):
            raise CoalitionError(Code.BLOCKED_NODE, "that node is blocked here")
        return node

    async def _view(
        self, session: AsyncSession, row: CoalitionRow, names: Mapping[bytes, str]
    ) -> dict[str, Any]:
        standings = await store.list_standings(session, row.coalition_id)
        self_id = self.signer.node_id
        invited = any(s.node == self_id and s.state == INVITED for s in standings)
        invites = await invitations(session, row.coalition_id, self_id) if invited else []
        return coalition_view(
            row, standings, self_id, names,
            founder_verified=await store.has_found(session, row.coalition_id),
            invites=[Invitation(*entry) for entry in invites],
        )  # fmt: skip


def _checked(build: Any, **fields: Any) -> Any:
    try:
        return build(**fields)
    except ValidationError as exc:
        raise CoalitionError(Code.INVALID_FIELD, f"{exc.code}: {exc.detail}") from None


def _ambiguous(count: int, name: str) -> CoalitionError:
    return CoalitionError(Code.AMBIGUOUS, f"{count} match {name!r}; say more")


def _chosen(open_: list[bytes], invite: str | None) -> bytes:
    """The open invite ``invite`` names, or the oldest of ``open_`` (oldest first)."""
    if invite is None:
        if not open_:
            raise CoalitionError(Code.NOT_INVITED, "no open invite names this node")
        return open_[0]
    text = invite.strip().lower()
    found = [i for i in open_ if _HEX.fullmatch(text) and i.hex().startswith(text)]
    if len(found) > 1:
        raise _ambiguous(len(found), invite)
    if not found:
        raise CoalitionError(Code.NOT_INVITED, "no open invite naming this node has that id")
    return found[0]


def _names_peer(text: str, node: bytes) -> bool:
    digits = text.replace(" ", "")
    if _FINGERPRINT.fullmatch(digits) and fingerprint(node).replace(" ", "") == digits:
        return True
    return bool(_HEX.fullmatch(text)) and node.hex().startswith(text)


async def _row(session: AsyncSession, number: int, *, lock: bool = True) -> CoalitionRow:
    """The coalition; ``lock``: its row locked before anything is signed. The inbox, applying
    a coalition envelope, takes the coalition's lock before any signing: taking them in the
    same order here, two transactions never wait on each other in a circle."""
    try:
        return await store.get_coalition_by_number(session, number, lock=lock)
    except NotFound:
        raise not_found("coalition") from None


async def _names(session: AsyncSession) -> dict[bytes, str]:
    """Display names of the nodes that are this node's peers (others have none here)."""
    rows = await session.execute(select(Peer.node_id, Peer.name))
    return dict(rows.all())


async def _standings(session: AsyncSession, row: CoalitionRow) -> dict[bytes, Standing]:
    return {
        s.node: Standing(s.state, s.since, s.invite_id, s.invited_at, s.join_id, s.leave_id)
        for s in await store.list_standings(session, row.coalition_id)
    }


def _require(
    standings: Mapping[bytes, Standing], node: bytes, state: str, code: Code, why: str
) -> None:
    held = standings.get(node)
    if held is None or held.state != state:
        raise CoalitionError(code, why)


def _check_invitee(standing: Standing | None) -> None:
    if standing is not None and standing.state == MEMBER:
        raise CoalitionError(Code.ALREADY_MEMBER, "that node is a member already")
    if standing is not None and standing.state == INVITED:
        raise CoalitionError(Code.ALREADY_INVITED, "that node has an open invite already")


def _invite(
    row: CoalitionRow, invitee: bytes, standings: Mapping[bytes, Standing]
) -> CoalitionInvite:
    """The invite, with this node's view of the coalition as its snapshot (§15.3)."""
    members = [Member(n, s.since) for n, s in standings.items() if s.state == MEMBER and s.since]
    if len(members) >= MAX_MEMBERS:
        raise CoalitionError(Code.COALITION_FULL, f"a coalition has at most {MAX_MEMBERS} members")
    invited = [(s.invited_at or 0, s.invite, n) for n, s in standings.items()
               if s.state == INVITED and s.invite is not None]  # fmt: skip
    open_ = [OpenInvite(invite, node, at) for at, invite, node in sorted(invited)[-MAX_MEMBERS:]]
    return CoalitionInvite(
        coalition=row.coalition_id, invitee=invitee, founder=row.founder, salt=row.salt,
        name=row.name, members=tuple(sorted(members, key=lambda m: m.node)),
        invites=tuple(open_), purpose=row.purpose,
    )  # fmt: skip
