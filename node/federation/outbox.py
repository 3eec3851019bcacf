"""Who gets an envelope: the outbox rows written beside it (SPEC §5.4, §5.5; DESIGN §4).

:func:`enqueue` runs in the transaction that stored the envelope (the signer's, or the
inbox's when it relays), so the envelope and its deliveries commit together or not at all.
Recipients, by audience:

* ``public`` and ``allies`` of this node: every allied peer.
* ``node:<id>`` of this node: that peer, if it is introduced or allied.
* ``public`` relayed (another origin's): every allied peer.
* ``allies`` relayed: the allied peers known to be allied with the origin
  (:func:`allied_with_origin`).
* ``node:<id>`` relayed: nobody, ever.
* ``coalition:<id>``, this node's or relayed: the allied peers that are members of the
  coalition as this node computes it (SPEC §15.4); for ``coalition.*`` envelopes also those
  invited, and an invite's invitee. Nothing while this node is not in the coalition itself
  (its own ``coalition.*`` envelopes, a leave above all, still go out).

Never the origin, never this node, never a node already on the relay path, never the peers in
``skip`` (the one that sent it), never a blocked or removed peer; nothing once the envelope
has expired, and nothing relayed once the path holds 16 nodes. The path grows at send time
(:func:`relay_wire`): the stored bytes stay as they were received.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.coalition_policy import MANAGEMENT
from node.storage import coalitions, envelopes
from node.storage import outbox as store
from node.storage.models import Alliance, EnvelopeRow, Peer
from node.storage.peers import ALLIED, INTRODUCED
from protocol import COALITION_PREFIX, CoalitionInvite, SignedEnvelope, coalition_of
from protocol.envelope import MAX_RELAY_PATH
from protocol.membership import INVITED, MEMBER

__all__ = ["allied_with_origin", "enqueue", "enqueue_many", "recipients", "relay_wire"]

PUBLIC: Final = "public"
ALLIES: Final = "allies"
NODE_PREFIX: Final = "node:"


@dataclass(frozen=True, slots=True)
class _Peers:
    """What routing needs to know, read once per call."""

    self_id: bytes
    allied: frozenset[bytes]
    reachable: frozenset[bytes]  # introduced or allied: may receive node:<id> envelopes


async def enqueue(
    session: AsyncSession, row: EnvelopeRow, *, now: int, skip: Collection[bytes] = ()
) -> int:
    """Write the outbox rows for the stored envelope ``row``; how many were written."""
    return await enqueue_many(session, [row], now=now, skip=skip)


async def enqueue_many(
    session: AsyncSession,
    rows: Sequence[EnvelopeRow],
    *,
    now: int,
    skip: Collection[bytes] = (),
) -> int:
    """:func:`enqueue` for several envelopes, reading the peers once (the inbox's batches)."""
    known = await _read_peers(session)
    written = 0
    woken: set[bytes] = set()
    for row in rows:
        if row.wire is None:
            continue
        signed = SignedEnvelope.from_bytes(row.wire)
        expires = signed.envelope.expires
        if expires is not None and expires <= now:
            continue
        targets = await _targets(session, known, row, signed, skip)
        written += await store.put_entries(session, targets, row.id, now=now, expires_at=expires)
        woken.update(targets)
    store.note_wake(session, woken)
    return written


async def recipients(
    session: AsyncSession, row: EnvelopeRow, *, skip: Collection[bytes] = ()
) -> list[bytes]:
    """The peers :func:`enqueue` would write rows for (tests, and admins asking why)."""
    if row.wire is None:
        return []
    known = await _read_peers(session)
    return await _targets(session, known, row, SignedEnvelope.from_bytes(row.wire), skip)


async def _targets(
    session: AsyncSession,
    known: _Peers,
    row: EnvelopeRow,
    signed: SignedEnvelope,
    skip: Collection[bytes],
) -> list[bytes]:
    own = row.origin == known.self_id
    if not own and len(signed.path) >= MAX_RELAY_PATH:
        return []  # SPEC §5.4: the path cannot grow, so it is not relayed
    audience = row.audience
    if audience == PUBLIC:
        chosen: Collection[bytes] = known.allied
    elif audience == ALLIES:
        chosen = known.allied if own else await allied_with_origin(session, row.origin, known)
    elif audience.startswith(NODE_PREFIX) and own:
        target = _node_audience(audience)
        chosen = {target} & known.reachable if target is not None else set()
    elif audience.startswith(COALITION_PREFIX):
        chosen = await _coalition_targets(session, signed, known, own=own)
    else:  # node:<id> of another origin is never relayed
        chosen = set()
    excluded = {known.self_id, row.origin, *signed.path, *skip}
    return sorted(peer for peer in chosen if peer not in excluded)


async def allied_with_origin(session: AsyncSession, origin: bytes, known: _Peers) -> set[bytes]:
    """Our allied peers that ``origin`` declared allied in its latest ``peer.alliance``
    (the ``alliances`` rows the inbox keeps): the only ones its ``allies`` envelopes are
    relayed to (SPEC §5.5)."""
    if not known.allied:
        return set()
    rows = await session.scalars(
        select(Alliance.peer).where(Alliance.node == origin, Alliance.state == ALLIED)
    )
    return set(rows) & known.allied


async def _coalition_targets(
    session: AsyncSession, signed: SignedEnvelope, known: _Peers, *, own: bool
) -> set[bytes]:
    """The allied peers a ``coalition:<id>`` envelope goes to (see the module's docstring)."""
    envelope = signed.envelope
    coalition = coalition_of(envelope.audience)
    if coalition is None or not known.allied:
        return set()
    states = (await coalitions.states_of(session, [coalition])).get(coalition, {})
    managing = envelope.type.startswith(MANAGEMENT)
    wanted = (MEMBER, INVITED) if managing else (MEMBER,)
    if states.get(known.self_id) not in wanted and not (own and managing):
        return set()
    chosen = {node for node, state in states.items() if state in wanted}
    invitee = envelope.body.get("invitee") if envelope.type == CoalitionInvite.TYPE else None
    if isinstance(invitee, bytes):
        chosen.add(invitee)
    return chosen & known.allied


def _node_audience(audience: str) -> bytes | None:
    text = audience.removeprefix(NODE_PREFIX)
    try:
        node = bytes.fromhex(text)
    except ValueError:
        return None
    return node if len(node) == 32 else None


async def _read_peers(session: AsyncSession) -> _Peers:
    self_id = await envelopes.get_node_id(session)
    rows = await session.execute(
        select(Peer.node_id, Peer.state).where(Peer.state.in_((ALLIED, INTRODUCED)))
    )
    states: dict[bytes, str] = dict(rows.all())
    allied = frozenset(peer for peer, state in states.items() if state == ALLIED)
    return _Peers(self_id, allied, frozenset(states))


def relay_wire(row_wire: bytes, self_id: bytes) -> bytes:
    """The bytes to send for a stored envelope: as stored for this node's own envelopes,
    with this node appended to ``relay.path`` for another origin's (SPEC §5.4)."""
    signed = SignedEnvelope.from_bytes(row_wire)
    if signed.envelope.origin == self_id:
        return row_wire
    return signed.relayed_by(self_id).to_bytes()
