"""Helpers shared by the call tests (no tests here): other nodes ("remotes") that sign call
envelopes with their own test identities, feeding them to this node's apply handlers as the
inbox would, and shortcuts for policies, calls and pledges."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from test_decisions_support import HOUR, START, Node, add_member

from node.identity import Identity, new_identity
from node.services.calls import CallDraft, issue_call
from node.services.calls_apply import CALL_HANDLERS
from node.services.policy import defaults
from node.services.tallies import TallyRules
from node.storage import calls as store
from node.storage.models import CallRow, EnvelopeRow, Notification
from node.storage.policy import put_policy
from protocol import Message, SignedEnvelope, build_envelope, sign

RULES = TallyRules(bucket=5, k=10, interval=60, grace=HOUR, final_margin=30)
DAY = 86_400
TITLE = {"ar": "إضراب عام", "ckb": "مانگرتنی گشتی", "en": "General strike"}
TEXT = {"ar": "نص الدعوة", "ckb": "دەقی بانگەواز", "en": "Stop work on the first of May."}


@dataclass
class Remote:
    """Another node: its identity and its own envelope log (seq and prev)."""

    identity: Identity
    seq: int = 0
    prev: bytes | None = None
    sent: list[SignedEnvelope] = field(default_factory=list)

    @property
    def node_id(self) -> bytes:
        return self.identity.state.node_id

    def envelope(
        self, message: Message, created: int, audience: str = "allies", *, seq: int | None = None
    ) -> SignedEnvelope:
        """The next envelope of this node's log (or one at ``seq``, for forgeries)."""
        number = self.seq + 1 if seq is None else seq
        envelope = build_envelope(
            type=message.TYPE, origin=self.node_id, kpos=0, seq=number,
            prev=None if number == 1 else (self.prev or bytes(32)), created=created,
            body=message.to_body(), audience=audience,
        )  # fmt: skip
        signed = sign(envelope, self.identity.operational)
        if seq is None:
            self.seq, self.prev = number, signed.id
        self.sent.append(signed)
        return signed


def remote() -> Remote:
    return Remote(new_identity(1, 1, START))


async def apply(node: Node, signed: SignedEnvelope) -> None:
    """Apply a received envelope in one transaction, as the inbox does."""
    async with node.sessions.begin() as session:
        await CALL_HANDLERS[signed.envelope.type](session, signed, now=node.now())


async def set_policy(node: Node, **changes: Any) -> None:
    base = defaults()
    columns = {
        name: getattr(base, name)
        for name in (
            "approval_required", "call_issuers", "endorsement_by", "vote_method",
            "vote_fraction_num", "vote_fraction_den", "vote_quorum_num", "vote_quorum_den",
            "vote_hours",
        )
    } | changes  # fmt: skip
    async with node.sessions.begin() as session:
        await put_policy(session, columns, node.now())


def draft(**changes: Any) -> CallDraft:
    base: dict[str, Any] = {
        "kind": "strike", "title": TITLE, "text": TEXT, "audience": "allies",
        "starts": START + 10 * DAY, "ends": START + 11 * DAY, "region": "IQ-BA",
        "place": "Basra oil fields", "meeting_point": "Gate 4, North Rumaila, 06:00",
        "sectors": ("oil",), "regions": ("IQ-BA",), "threshold": (20, 2, START + 5 * DAY),
    }  # fmt: skip
    return CallDraft(**(base | changes))


async def issue(node: Node, by: int | None = None, **changes: Any) -> CallRow:
    """A call issued by this node (by the operator unless ``by`` is given)."""
    number = await issue_call(node.sessions, node.signer, draft(**changes), by=by, now=node.now())
    return await call(node, number)


async def call(node: Node, number: int) -> CallRow:
    async with node.sessions() as session:
        return await store.get_call_by_number(session, number)


async def call_by_id(node: Node, call_id: bytes) -> CallRow | None:
    async with node.sessions() as session:
        return await store.get_call(session, call_id)


async def own_envelopes(node: Node, type_: str | None = None) -> list[SignedEnvelope]:
    async with node.sessions() as session:
        query = select(EnvelopeRow.wire).order_by(EnvelopeRow.seq)
        if type_ is not None:
            query = query.where(EnvelopeRow.type == type_)
        wires = list(await session.scalars(query.where(EnvelopeRow.origin == node.signer.node_id)))
    return [SignedEnvelope.from_bytes(w) for w in wires if w is not None]


async def notifications(node: Node) -> list[tuple[int, str, int]]:
    """(member, kind, call) of every notification."""
    async with node.sessions() as session:
        rows = await session.scalars(select(Notification).order_by(Notification.id))
        return [(n.member_id, n.kind, n.call) for n in rows]


async def members(node: Node, count: int, role: str = "member") -> list[int]:
    return [await add_member(node, role) for _ in range(count)]
