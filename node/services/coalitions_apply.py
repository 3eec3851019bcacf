"""Applying ``coalition.*`` envelopes (SPEC §15): the handler the inbox calls for verified
envelopes of other nodes, and that this node runs on its own right after signing them.

:func:`apply_coalition` checks the envelope (:func:`protocol.check_coalition_envelope`:
audience, founder, the inviter in its snapshot), records it as a
:class:`protocol.CoalitionEvent` and computes membership again from every event held and
this node's seed (:func:`protocol.membership`), replacing the ``coalition_members`` rows.
A coalition becomes known here only by this node's own ``coalition.found`` or by an invite
naming this node; an envelope of a coalition it does not know is stored (it holds its place
in its origin's log) but changes nothing (``unknown_coalition``: the inbox refuses such
envelopes as ``not_for_us`` before they get here, so only an odd sender meets it).
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
from protocol.membership import FOUND, INVITE

__all__ = ["UNKNOWN_COALITION", "CoalitionIgnored", "apply_coalition", "recompute"]

log = logging.getLogger(__name__)

UNKNOWN_COALITION: Final = "unknown_coalition"


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
    await store.put_event(session, row.coalition_id, CoalitionEvent.of(envelope, message))
    return await recompute(session, row, self_id, now)


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
    """The seed of ``event`` (this node's found, or an invite naming it); the row's name,
    purpose and founder follow the invite it came from."""
    if event is None:  # the found or invite that made it known is always held: be safe
        return CoalitionSeed({})
    if event.kind == FOUND:
        row.seed = event.id
        return CoalitionSeed.founded(event)
    wire = await session.scalar(select(EnvelopeRow.wire).where(EnvelopeRow.id == event.id))
    if event.kind != INVITE or wire is None:
        return CoalitionSeed({})
    message = check_coalition_envelope(SignedEnvelope.from_bytes(wire).envelope)
    if not isinstance(message, CoalitionInvite):  # pragma: no cover - kind says invite
        return CoalitionSeed({})
    if row.seed != event.id:
        row.seed, row.founder, row.salt = event.id, message.founder, message.salt
        row.name = dict(message.name)
        row.purpose = None if message.purpose is None else dict(message.purpose)
    return CoalitionSeed.invited(message)
