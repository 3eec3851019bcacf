"""Serving one origin's log to a peer for catch-up (``GET /federation/v1/log``, SPEC §14.4).

Any origin this node holds is served, its own or relayed, from ``after + 1`` in ``seq``
order, with the origin's whole key log so that every entry can be verified. An entry the
requesting peer's audience rights do not cover (SPEC §5.5) is served *withheld*: its seq and
id without the envelope, so the peer's copy of the chain still links. So is an entry this
node holds withheld itself.

Rights, for a requester R and an envelope of origin O:

* R = O: everything (a node may read its own log back);
* ``public``: yes;
* ``allies``: if O is this node, when R is an allied peer; otherwise when O's latest
  ``peer.alliance`` about R says ``allied`` (the ``alliances`` table);
* ``node:<id>``: when the id is R's;
* ``coalition:<id>``: when R is a member of that coalition as this node computes it, or is
  invited to it and the envelope is a ``coalition.*`` one (SPEC §15.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import NodeError
from node.federation.coalition_policy import MANAGEMENT
from node.federation.wire import LogEntry, LogPage
from node.storage import alliances, coalitions, envelopes
from node.storage.models import EnvelopeRow
from protocol import COALITION_PREFIX, coalition_audience
from protocol.membership import INVITED, MEMBER

__all__ = ["LOG_PAGE_BYTES", "Rights", "log_page", "unknown_origin"]

LOG_PAGE_BYTES: Final = 2_097_152  # envelope bytes per page: well under a client's 4 MiB cap
ENTRY_OVERHEAD: Final = 48  # the seq, the id and the map around them, roughly


def unknown_origin(origin: bytes) -> NodeError:
    return NodeError(404, "unknown_origin", "this node holds no key log of that node",
                     f"no key log of {origin.hex()}")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Rights:
    """What one requester may read of one origin's envelopes."""

    requester: bytes
    everything: bool
    allies: bool
    coalitions: Mapping[str, str] = field(default_factory=dict)  # audience -> R's state

    def allows(self, audience: str, type_: str = "") -> bool:
        if self.everything or audience == "public":
            return True
        if audience == "allies":
            return self.allies
        if audience.startswith(COALITION_PREFIX):
            state = self.coalitions.get(audience)
            return state == MEMBER or (state == INVITED and type_.startswith(MANAGEMENT))
        return audience == "node:" + self.requester.hex()

    @classmethod
    async def read(cls, session: AsyncSession, requester: bytes, origin: bytes) -> Rights:
        allies = await alliances.is_allied(session, origin, requester)
        states = await coalitions.states_of_node(session, requester)
        joined = {coalition_audience(c): state for c, state in states.items()}
        return cls(requester, requester == origin, allies, joined)


async def log_page(
    session: AsyncSession, requester: bytes, origin: bytes, *, after: int, limit: int
) -> LogPage:
    """The page of ``origin``'s log after ``after`` that ``requester`` may fetch."""
    keys = await envelopes.list_key_events(session, origin)
    if not keys:
        raise unknown_origin(origin)
    rows = (
        await session.execute(
            select(
                EnvelopeRow.seq,
                EnvelopeRow.id,
                EnvelopeRow.wire,
                EnvelopeRow.audience,
                EnvelopeRow.type,
            )
            .where(EnvelopeRow.origin == origin, EnvelopeRow.seq > after)
            .order_by(EnvelopeRow.seq)
            .limit(limit + 1)
        )
    ).all()
    rights = await Rights.read(session, requester, origin)
    entries: list[LogEntry] = []
    size = 0
    for row in rows[:limit]:
        env = row.wire if row.wire is not None and rights.allows(row.audience, row.type) else None
        size += len(env or b"") + ENTRY_OVERHEAD
        if entries and size > LOG_PAGE_BYTES:
            return LogPage(tuple(entries), tuple(keys), more=True)
        entries.append(LogEntry(row.seq, row.id, env))
    return LogPage(tuple(entries), tuple(keys), more=len(rows) > limit)
