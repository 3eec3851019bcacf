"""Helpers of the inbox tests (no tests here): other nodes that sign their envelopes in order
(real identities, real signatures), a receiving node with an :class:`Inbox` over a migrated
database, and a snapshot of every table to show that a refused item changed nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from database_support import table_rows
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_decisions_support import START, Node, start_node

from node.federation.inbox import Inbox
from node.federation.keylogs import KeyLogs
from node.federation.wire import BatchResult
from node.identity import Identity, new_identity
from node.storage.models import EnvelopeRow, OriginHead, Peer
from protocol import (
    KeyState,
    SignedEnvelope,
    SignedKeyEvent,
    SigningKey,
    build_envelope,
    sign,
    sign_key_event,
)

NOTE = "org.example.note"  # an extension type: stored and relayed, never applied


@dataclass
class Origin:
    """Another node: its key log and operational key, signing envelopes seq 1, 2, ..."""

    identity: Identity
    key: SigningKey
    log: list[SignedKeyEvent]
    seq: int = 0
    prev: bytes | None = None
    signed: list[SignedEnvelope] = field(default_factory=list)

    @classmethod
    def new(cls) -> Origin:
        identity = new_identity(officers=1, threshold=1, now=START)
        return cls(identity, identity.operational, [identity.inception])

    @property
    def node_id(self) -> bytes:
        return self.identity.state.node_id

    @property
    def state(self) -> KeyState:
        return KeyState.from_log(self.log)

    @property
    def keys(self) -> list[bytes]:
        return [event.to_bytes() for event in self.log]

    def envelope(
        self,
        *,
        type: str = NOTE,
        body: dict[str, Any] | None = None,
        audience: str = "public",
        created: int = START,
        expires: int | None = None,
        key: SigningKey | None = None,
        kpos: int | None = None,
        seq: int | None = None,
        prev: bytes | None = None,
    ) -> SignedEnvelope:
        """The next envelope (or one at ``seq`` after ``prev``, outside the sequence)."""
        in_order = seq is None
        number = self.seq + 1 if in_order else seq
        assert number is not None
        before = self.prev if in_order else prev
        envelope = build_envelope(
            type=type, origin=self.node_id, kpos=self.state.position if kpos is None else kpos,
            seq=number, prev=before, created=created, audience=audience, expires=expires,
            body=body if body is not None else {"text": f"note {number}"},
        )  # fmt: skip
        signed = sign(envelope, key or self.key)
        if in_order:
            self.seq, self.prev = number, signed.id
            self.signed.append(signed)
        return signed

    def wires(self, count: int, **fields: Any) -> list[bytes]:
        return [self.envelope(**fields).to_bytes() for _ in range(count)]

    def delegate(self, seal: int) -> SigningKey:
        """Officers replace the operational key (the seized-server case); the new key."""
        new_key = SigningKey.generate()
        state = self.state
        event = state.delegation(op=new_key.public, seal=seal, created=START)
        self.log.append(sign_key_event(event, self.identity.officers, state))
        self.key = new_key
        return new_key


@dataclass
class Receiver:
    node: Node
    keylogs: KeyLogs
    inbox: Inbox
    engine: AsyncEngine

    @property
    def node_id(self) -> bytes:
        return self.node.signer.node_id

    def now(self) -> int:
        return self.node.now()

    async def receive(
        self, sender: Origin | bytes, items: list[bytes], keys: list[bytes] | None = None
    ) -> BatchResult:
        by = sender.node_id if isinstance(sender, Origin) else sender
        return await self.inbox.receive(by, items, keys or [], now=self.now())

    async def peer(self, origin: Origin, state: str = "allied", *, with_keys: bool = True) -> None:
        """Make ``origin`` a peer in ``state`` (its key log stored, as peering does)."""
        async with self.node.sessions.begin() as session:
            session.add(
                Peer(node_id=origin.node_id, endpoint="https://peer.example", state=state,
                     created_at=START, updated_at=START)
            )  # fmt: skip
            if with_keys:
                await self.keylogs.accept(session, origin.node_id, origin.log, now=START)

    async def know(self, origin: Origin) -> None:
        """Store ``origin``'s key log without making it a peer (a relayed origin)."""
        async with self.node.sessions.begin() as session:
            await self.keylogs.accept(session, origin.node_id, origin.log, now=START)

    async def rows(self, origin: Origin) -> list[EnvelopeRow]:
        async with self.node.sessions() as session:
            found = await session.scalars(
                select(EnvelopeRow).where(EnvelopeRow.origin == origin.node_id)
                .order_by(EnvelopeRow.seq)
            )  # fmt: skip
            return list(found)

    async def head(self, origin: Origin) -> int:
        async with self.node.sessions() as session:
            head = await session.get(OriginHead, origin.node_id)
            return 0 if head is None else head.seq

    async def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table, to show that a refused item changed nothing."""
        return await table_rows(self.engine, skip=("nonces",))


async def receiver(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    node = await start_node(engine, tmp_path)
    keylogs = KeyLogs()
    return Receiver(node, keylogs, Inbox(node.sessions, keylogs, node.signer.node_id), engine)


def tamper(signed: SignedEnvelope, **changes: Any) -> bytes:
    """The wire of ``signed`` with envelope fields changed and its signature kept."""
    fields = dict(signed.envelope.fields) | changes
    forged = build_envelope(
        type=fields["type"], origin=fields["origin"], kpos=fields["kpos"], seq=fields["seq"],
        prev=fields.get("prev"), created=fields["created"], body=fields["body"],
        audience=fields["aud"], expires=fields.get("expires"),
    )  # fmt: skip
    return SignedEnvelope(forged, signed.sig).to_bytes()
