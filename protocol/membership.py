"""Who is in a coalition, as one node sees it (SPEC.md §15.3): a pure function of the
``coalition.*`` envelopes the node holds and of its *seed*, what it took on trust.

There is no centre: each node computes membership from signed envelopes. A node that founded
the coalition seeds it with its ``coalition.found`` (itself a member from that envelope on);
any other node with the snapshot of the invite it joined by (or, before joining, of the oldest
invite naming it that no leave of its own declined, so that a newer invite never changes its view
unasked): the members the inviter listed, each from its ``since``, and the invites it
listed as open. Then, in each node's own ``seq`` order:

- the founder's first ``coalition.found`` makes it a member;
- an invite counts if its origin was a member at that point of its own log;
- a join makes its origin a member if it is the origin's first join naming that invite, the
  invite counts and names the origin, and no leave of the origin that comes before the join
  was created at or after the invite (a join after a leave needs a newer invite);
- a leave ends membership.

Events of a seed member at or before its ``since`` are not looked at. Whether an invite counts
depends on whether its inviter's join counted, and so on across nodes, so the computation
starts from the seed's invites alone and grows the set of invites that count until it stops
changing (a node is walked again only when an invite naming it starts to count); every rule
only ever adds, so the result does not depend on the order in which the envelopes arrived.
A node is then ``member``; else ``invited`` if an invite naming it counts, no join of it
names that invite and none of its leaves was created at or after it; else ``left`` if it
left after being a member or named by an invite that counts (a node the coalition never
named is absent, whatever it signed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from .coalitions import CoalitionInvite, CoalitionJoin, CoalitionMessage

if TYPE_CHECKING:
    from .envelope import Envelope

__all__ = [
    "FOUND",
    "INVITE",
    "INVITED",
    "JOIN",
    "LEAVE",
    "LEFT",
    "MEMBER",
    "CoalitionEvent",
    "CoalitionSeed",
    "Standing",
    "membership",
    "open_invites",
    "seed_event",
]

FOUND: Final = "found"
INVITE: Final = "invite"
JOIN: Final = "join"
LEAVE: Final = "leave"
MEMBER: Final = "member"
INVITED: Final = "invited"
LEFT: Final = "left"


@dataclass(frozen=True, slots=True)
class CoalitionEvent:
    """One ``coalition.*`` envelope, as much of it as membership needs. ``subject``: the
    invitee of an invite, the invite a join uses; None otherwise."""

    id: bytes
    origin: bytes
    seq: int
    created: int
    kind: str
    subject: bytes | None = None

    @classmethod
    def of(cls, envelope: Envelope, message: CoalitionMessage) -> CoalitionEvent:
        subject = None
        if isinstance(message, CoalitionInvite):
            subject = message.invitee
        elif isinstance(message, CoalitionJoin):
            subject = message.invite
        kind = message.TYPE.removeprefix("coalition.")
        return cls(envelope.id, envelope.origin, envelope.seq, envelope.created, kind, subject)


@dataclass(frozen=True, slots=True)
class CoalitionSeed:
    """What a node takes on trust: ``members`` (node -> since) and open ``invites`` (invite
    id -> (invitee, created))."""

    members: Mapping[bytes, int]
    invites: Mapping[bytes, tuple[bytes, int]] = field(default_factory=dict)

    @classmethod
    def founded(cls, found: CoalitionEvent) -> CoalitionSeed:
        return cls({found.origin: found.seq})

    @classmethod
    def invited(cls, invite: CoalitionInvite) -> CoalitionSeed:
        return cls(
            {m.node: m.since for m in invite.members},
            {i.invite: (i.invitee, i.created) for i in invite.invites},
        )


@dataclass(frozen=True, slots=True)
class Standing:
    """A node's place in the coalition. ``since``: the ``seq`` from which it is a member;
    ``invite``: the invite it joined by, or (invited) its newest open one, created
    ``invited_at``; ``join``, ``leave``: its envelopes that made it a member or ended that."""

    state: str
    since: int | None = None
    invite: bytes | None = None
    invited_at: int | None = None
    join: bytes | None = None
    leave: bytes | None = None


def seed_event(self_id: bytes, events: Iterable[CoalitionEvent]) -> CoalitionEvent | None:
    """The event whose content seeds ``self_id``'s view: its newest found, or the invite its
    newest join uses, whichever it signed last; else the oldest invite naming it that none of
    its leaves declined (created at or after it), or failing that the newest naming it. The
    oldest, not the newest: an invite arriving later never replaces the view unasked."""
    held = {e.id: e for e in events}
    own = sorted((e for e in held.values() if e.origin == self_id and e.kind in (FOUND, JOIN)),
                 key=lambda e: e.seq)  # fmt: skip
    for event in reversed(own):
        if event.kind == FOUND:
            return event
        invite = held.get(event.subject or b"")
        if invite is not None and invite.kind == INVITE and invite.subject == self_id:
            return invite
    to_us = [e for e in held.values() if e.kind == INVITE and e.subject == self_id]
    left = max((e.created for e in held.values() if e.origin == self_id and e.kind == LEAVE),
               default=None)  # fmt: skip
    open_ = [e for e in to_us if left is None or e.created > left]
    if open_:
        return min(open_, key=lambda e: (e.created, e.id))
    return max(to_us, key=lambda e: (e.created, e.id), default=None)


@dataclass(slots=True)
class _Walk:
    """One node's own log walked in ``seq`` order, given the invites that count."""

    member: bool
    since: int | None
    ever: bool = False  # a member at some point of the walk
    invite: bytes | None = None
    join: bytes | None = None
    leave: bytes | None = None
    made: dict[bytes, tuple[bytes, int]] = field(default_factory=dict)  # invites as a member


def membership(seed: CoalitionSeed, events: Iterable[CoalitionEvent]) -> dict[bytes, Standing]:
    """Every node's standing (nodes the coalition never named are absent)."""
    return _standings(*_compute(seed, events))


def open_invites(
    seed: CoalitionSeed, events: Iterable[CoalitionEvent], node: bytes
) -> list[tuple[bytes, int]]:
    """The invites naming ``node`` that count and are open (no join of it names them, no
    leave of it was created at or after them), as (invite id, created), oldest first."""
    _, counted, logs = _compute(seed, events)
    used = _used(counted, logs)
    return sorted(
        ((invite, created) for invite, (invitee, created) in counted.items()
         if invitee == node and invite not in used and not _declined(logs, invitee, created)),
        key=lambda entry: (entry[1], entry[0]),
    )  # fmt: skip


_Computed = tuple[
    dict[bytes, _Walk], dict[bytes, tuple[bytes, int]], dict[bytes, list[CoalitionEvent]]
]


def _compute(seed: CoalitionSeed, events: Iterable[CoalitionEvent]) -> _Computed:
    """Every node's walk, the invites that count, and each node's log."""
    held = {e.id: e for e in events}
    logs: dict[bytes, list[CoalitionEvent]] = {node: [] for node in seed.members}
    for event in sorted(held.values(), key=lambda e: (e.seq, e.id)):
        logs.setdefault(event.origin, []).append(event)
    counted = dict(seed.invites)
    walks: dict[bytes, _Walk] = {}
    waiting = set(logs)  # a node's walk depends only on the counted invites naming it
    while waiting:  # each node is walked again only when an invite naming it starts to count
        node = waiting.pop()
        walks[node] = walk = _walk(node, logs[node], seed, counted)
        for invite, (invitee, created) in walk.made.items():
            if invite not in counted:
                counted[invite] = (invitee, created)
                if invitee in logs:
                    waiting.add(invitee)
    return walks, counted, logs


def _walk(
    node: bytes,
    log: list[CoalitionEvent],
    seed: CoalitionSeed,
    counted: Mapping[bytes, tuple[bytes, int]],
) -> _Walk:
    since = seed.members.get(node)
    walk = _Walk(member=since is not None, since=since, ever=since is not None)
    first_join: dict[bytes, int] = {}
    first_found: int | None = None
    for event in log:
        if event.kind == JOIN and event.subject is not None:
            first_join.setdefault(event.subject, event.seq)
        elif event.kind == FOUND and first_found is None:
            first_found = event.seq
    leaves = [e for e in log if e.kind == LEAVE]
    for event in log:
        if since is not None and event.seq <= since:
            continue
        if event.kind == FOUND and event.seq == first_found and not walk.member:
            walk.member, walk.since, walk.invite, walk.join = True, event.seq, None, None
            walk.ever = True
        elif event.kind == INVITE and walk.member and event.subject is not None:
            walk.made[event.id] = (event.subject, event.created)
        elif (
            event.kind == JOIN
            and not walk.member
            and _admits(event, node, first_join, counted, leaves)
        ):
            walk.member, walk.since, walk.invite, walk.join = (
                True,
                event.seq,
                event.subject,
                event.id,
            )
            walk.ever = True
        elif event.kind == LEAVE:
            walk.member, walk.leave = False, event.id
    return walk


def _admits(
    join: CoalitionEvent,
    node: bytes,
    first_join: Mapping[bytes, int],
    counted: Mapping[bytes, tuple[bytes, int]],
    leaves: list[CoalitionEvent],
) -> bool:
    invite = join.subject
    if invite is None or first_join.get(invite) != join.seq:
        return False
    entry = counted.get(invite)
    if entry is None or entry[0] != node:
        return False
    return not any(leave.seq < join.seq and leave.created >= entry[1] for leave in leaves)


def _standings(
    walks: Mapping[bytes, _Walk],
    counted: Mapping[bytes, tuple[bytes, int]],
    logs: Mapping[bytes, list[CoalitionEvent]],
) -> dict[bytes, Standing]:
    used = _used(counted, logs)
    named = {invitee for invitee, _ in counted.values()}
    newest: dict[bytes, tuple[int, bytes]] = {}
    for invite, (invitee, created) in counted.items():
        if invite not in used and not _declined(logs, invitee, created):
            newest[invitee] = max(newest.get(invitee, (-1, b"")), (created, invite))
    standings: dict[bytes, Standing] = {}
    for node in {*walks, *newest}:
        walk = walks.get(node)
        if walk is not None and walk.member:
            standings[node] = Standing(MEMBER, walk.since, walk.invite, None, walk.join)
        elif node in newest:
            created, invite = newest[node]
            leave = walk.leave if walk is not None else None
            standings[node] = Standing(INVITED, None, invite, created, leave=leave)
        elif walk is not None and walk.leave is not None and (walk.ever or node in named):
            standings[node] = Standing(LEFT, leave=walk.leave)
    return standings


def _used(
    counted: Mapping[bytes, tuple[bytes, int]], logs: Mapping[bytes, list[CoalitionEvent]]
) -> set[bytes]:
    """Invites a join of their own invitee names: used, whether or not the join counted."""
    return {
        e.subject
        for log in logs.values()
        for e in log
        if e.kind == JOIN and e.subject is not None
        and counted.get(e.subject, (b"", 0))[0] == e.origin
    }  # fmt: skip


def _declined(logs: Mapping[bytes, list[CoalitionEvent]], invitee: bytes, created: int) -> bool:
    return any(e.kind == LEAVE and e.created >= created for e in logs.get(invitee, ()))
