"""Applying ``coalition.*`` envelopes (SPEC §15): the handler the inbox calls for verified
envelopes of other nodes, and that this node runs on its own right after signing them.

:func:`apply_coalition` checks the envelope (:func:`protocol.check_coalition_envelope`:
audience, founder, the inviter in its snapshot), records it as a
:class:`protocol.CoalitionEvent` and computes membership again from every event held and
this node's seed (:func:`protocol.membership`), replacing the ``coalition_members`` rows.
A coalition becomes known here only by this node's own ``coalition.found`` or by an invite
naming this node; an envelope of a coalition it does not know changes nothing
(``unknown_coalition``, a guard: the inbox refuses such envelopes as ``not_for_us`` before
they get here, so no sender meets it).

Once the founder's ``coalition.found`` is held, it is the word on the coalition's name and
purpose: an invite whose name or purpose differs from it does not count (it is answered
``invalid_field`` and never becomes an event; those recorded before the found arrived are
forgotten when it does), so no invite can rename a coalition for a node that can check.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage import coalitions as store
from node.storage.models import CoalitionRow, EnvelopeRow
from protocol import (
    CoalitionEvent,
    CoalitionFound,
    CoalitionInvite,
    CoalitionMessage,
    CoalitionSeed,
    SignedEnvelope,
    Standing,
    check_coalition_envelope,
    membership,
    seed_event,
)
from protocol.membership import FOUND, INVITE, open_invites

__all__ = [
    "NOT_AS_FOUNDED",
    "UNKNOWN_COALITION",
    "CoalitionIgnored",
    "apply_coalition",
    "invitations",
    "recompute",
]

log = logging.getLogger(__name__)

UNKNOWN_COALITION: Final = "unknown_coalition"
NOT_AS_FOUNDED: Final = "invalid_field"  # an invite whose name or purpose is not the found's


class CoalitionIgnored(Exception):
    """A valid envelope that changes nothing here; ``code`` goes back to the sender."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code


async def apply_coalition(
    session: AsyncSession, signed: SignedEnvelope, *, self_id: bytes, now: int
) -> dict[bytes, Standing]:
    """Apply a stored, verified ``coalition.*`` envelope; the coalition's standings after it.
    Raises ``ProtocolError`` (the body or its envelope is wrong) or :class:`CoalitionIgnored`,
    both before anything is written."""
    envelope = signed.envelope
    message = check_coalition_envelope(envelope)
    row = await store.get_coalition(session, message.coalition, lock=True)
    if row is None:
        row = _first_known(envelope.origin, envelope.id, message, self_id, now)
        if row is None:
            raise CoalitionIgnored(UNKNOWN_COALITION, "a coalition this node does not know")
        await store.put_coalition(session, row)
    await _against_found(session, row, message)
    await store.put_event(session, row.coalition_id, CoalitionEvent.of(envelope, message))
    return await recompute(session, row, self_id, now)


async def _against_found(
    session: AsyncSession, row: CoalitionRow, message: CoalitionMessage
) -> None:
    """An invite must name the coalition as its held found does; the first found held sets
    the name. Raises :class:`CoalitionIgnored` before anything is written."""
    if isinstance(message, (CoalitionInvite, CoalitionFound)):
        held = await store.has_found(session, row.coalition_id)
        if isinstance(message, CoalitionInvite) and held and not _as_founded(row, message):
            raise CoalitionIgnored(NOT_AS_FOUNDED, "the invite's name or purpose is not founded")
        if isinstance(message, CoalitionFound) and not held:
            await _founded(session, row, message)


def _as_founded(row: CoalitionRow, invite: CoalitionInvite) -> bool:
    """Whether the invite names the coalition as its found does (the row holds the found's
    name and purpose once it is held; the founder and salt follow from the id)."""
    purpose = None if invite.purpose is None else dict(invite.purpose)
    return (dict(invite.name), purpose) == (dict(row.name), row.purpose)


async def _founded(session: AsyncSession, row: CoalitionRow, found: CoalitionFound) -> None:
    """The founder's first found is held now: its name and purpose are the coalition's, and
    the invites recorded before it that say otherwise are forgotten."""
    row.name = dict(found.name)
    row.purpose = None if found.purpose is None else dict(found.purpose)
    invites = [e.id for e in await store.list_events(session, row.coalition_id)
               if e.kind == INVITE]  # fmt: skip
    wires = await session.execute(select(EnvelopeRow.id, EnvelopeRow.wire).where(
        EnvelopeRow.id.in_(invites)))  # fmt: skip
    wrong = [
        ident for ident, wire in wires if wire is not None
        and not _as_founded(row, _invite_of(wire))
    ]  # fmt: skip
    await store.delete_events(session, wrong)


def _invite_of(wire: bytes) -> CoalitionInvite:
    message = check_coalition_envelope(SignedEnvelope.from_bytes(wire).envelope)
    assert isinstance(message, CoalitionInvite)  # noqa: S101 - recorded as an invite
    return message


def _first_known(
    origin: bytes, envelope_id: bytes, message: CoalitionMessage, self_id: bytes, now: int
) -> CoalitionRow | None:
    """The coalition's row, if this envelope makes it known here: this node founding it, or
    an invite naming this node."""
    if isinstance(message, CoalitionFound) and origin == self_id:
        founder = self_id
    elif isinstance(message, CoalitionInvite) and message.invitee == self_id:
        founder = message.founder
    else:
        return None
    return CoalitionRow(
        coalition_id=message.coalition, founder=founder, salt=message.salt, name=dict(message.name),
        purpose=None if message.purpose is None else dict(message.purpose), seed=envelope_id,
        created_at=now, updated_at=now,
    )  # fmt: skip


async def recompute(
    session: AsyncSession, row: CoalitionRow, self_id: bytes, now: int
) -> dict[bytes, Standing]:
    """Membership again, from the events held and this node's seed; the rows replaced."""
    events = await store.list_events(session, row.coalition_id)
    seed = await _seed(session, row, seed_event(self_id, events))
    standings = membership(seed, events)
    changes = await store.put_standings(session, row.coalition_id, standings, now=now)
    if changes:
        log.info("coalition %s: %d standings changed", row.coalition_id.hex()[:16], len(changes))
    row.updated_at = now
    return standings


async def _seed(
    session: AsyncSession, row: CoalitionRow, event: CoalitionEvent | None
) -> CoalitionSeed:
    """The seed of ``event`` (this node's found, or an invite naming it); the row's founder,
    salt, name and purpose follow the invite it came from (the name the found's once held)."""
    seed, message = await _seed_of(session, event)
    if event is not None and event.kind == FOUND:
        row.seed = event.id
    elif event is not None and message is not None and row.seed != event.id:
        row.seed, row.founder, row.salt = event.id, message.founder, message.salt
        if not await store.has_found(session, row.coalition_id):  # else the found's name
            row.name = dict(message.name)
            row.purpose = None if message.purpose is None else dict(message.purpose)
    return seed


async def _seed_of(
    session: AsyncSession, event: CoalitionEvent | None
) -> tuple[CoalitionSeed, CoalitionInvite | None]:
    """The seed of ``event``, and its invite if it is one; read only."""
    if event is None:  # the found or invite that made it known is always held: be safe
        return CoalitionSeed({}), None
    if event.kind == FOUND:
        return CoalitionSeed.founded(event), None
    wire = await session.scalar(select(EnvelopeRow.wire).where(EnvelopeRow.id == event.id))
    if event.kind != INVITE or wire is None:
        return CoalitionSeed({}), None
    message = _invite_of(wire)
    return CoalitionSeed.invited(message), message


async def invitations(
    session: AsyncSession, coalition: bytes, self_id: bytes
) -> list[tuple[bytes, int, bytes | None]]:
    """The open invites naming this node that count, oldest first, as (invite id, created,
    inviter: None if the invite is not held here, only listed in a snapshot)."""
    events = await store.list_events(session, coalition)
    seed, _ = await _seed_of(session, seed_event(self_id, events))
    inviters = {e.id: e.origin for e in events}
    return [(i, at, inviters.get(i)) for i, at in open_invites(seed, events, self_id)]
