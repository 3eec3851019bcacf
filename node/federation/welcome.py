"""Answering a join: the inviter's side of peering (SPEC §14.6, "The inviter's checks").

The body is decoded strictly, the presented key log verified in memory (nothing of it is
stored yet), the request's transport signature checked with that log's key, then the
introduction, the descriptor and the invite; only then, in one transaction, are the key log,
the used invite, the allied peer and this node's ``peer.alliance`` stored. A refused attempt
changes nothing but the bounded contact log (and the nonce cache once the transport
signature has passed, SPEC §10.8).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.config import Config
from node.errors import NodeError
from node.federation import descriptors as docs
from node.federation.invite_codes import invite_secret
from node.federation.keylogs import KeyLogs
from node.federation.peer_admin import declare_alliance, set_peer
from node.federation.peering_errors import PeeringCode, PeeringError, protocol_error
from node.federation.transport import IncomingRequest, TransportVerifier
from node.services.members import Actor, audit
from node.services.secrets import NodeSecrets
from node.services.signer import Signer
from node.storage import contact_log, peers
from node.storage.errors import NotFound
from node.storage.models import PeerInvite
from node.storage.peer_invites import get_peer_invite, use_peer_invite
from protocol import (
    DecodeError,
    ErrorCode,
    KeyLogError,
    KeyState,
    NodeDescriptor,
    PeerIntroduce,
    ProtocolError,
    SignedEnvelope,
    SignedKeyEvent,
    decode,
    parse_body,
    peering_proof,
    verify,
)

__all__ = ["FEDERATION", "Welcome"]

log = logging.getLogger(__name__)

FEDERATION: Final = Actor(None, "federation")  # the audit log's actor for a peer's request
_REQUEST_FIELDS: Final = frozenset({"envelope", "keys", "descriptor"})


@dataclass(frozen=True, slots=True)
class _Introduction:
    envelope: SignedEnvelope
    keys: tuple[SignedKeyEvent, ...]
    descriptor: bytes


class _WithPresented(KeyLogs):
    """The stored key logs, plus one presented log not stored yet (the joiner's): its key
    checks the request's transport signature before anything of it is stored."""

    def __init__(self, stored: KeyLogs, presented: KeyState) -> None:
        super().__init__(max_cached=0)
        self._stored = stored
        self._presented = presented

    async def state(self, session: AsyncSession, node_id: bytes) -> KeyState | None:
        if node_id == self._presented.node_id:
            return self._presented
        return await self._stored.state(session, node_id)


@dataclass(frozen=True, slots=True)
class Welcome:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    signer: Signer
    keylogs: KeyLogs
    secrets: NodeSecrets
    config: Config

    @property
    def node_id(self) -> bytes:
        return self.signer.node_id

    async def accept(self, request: IncomingRequest, body: bytes) -> None:
        """Check a peering request and ally with its sender; every refusal is logged."""
        now = self.clock.now()
        claimed: bytes | None = None
        try:
            intro = _parse_request(body)
            claimed = intro.envelope.envelope.origin
            state = await self._presented_state(intro.keys)
            claimed = state.node_id
            await self._check_transport(request, body, state)
            introduce = self._check_introduction(intro.envelope, state, now)
            descriptor = _presented_descriptor(intro.descriptor, state, now)
            await self._welcome(state, intro.keys, introduce, descriptor, now)
        except NodeError as exc:
            await self.refused(claimed, exc.code)
            raise

    async def refused(self, node: bytes | None, code: str) -> None:
        """Note a refused peering attempt in the bounded contact log."""
        log.info("peering refused (%s) from %s", code, node.hex() if node else "unknown")
        async with self.sessions.begin() as session:
            await contact_log.put_contact(session, node, code, self.clock.now())

    async def _presented_state(self, keys: Sequence[SignedKeyEvent]) -> KeyState:
        """The presented whole log, verified in memory on top of what is stored of it."""
        async with self.sessions() as session:
            known = await self.keylogs.state(session, keys[0].event.digest)
        try:
            return KeyState.from_log(keys) if known is None else known.extend(keys, complete=True)
        except KeyLogError as exc:
            raise protocol_error(exc, what="key log: ") from None

    async def _check_transport(
        self, request: IncomingRequest, body: bytes, state: KeyState
    ) -> None:
        federation = self.config.federation
        verifier = TransportVerifier(
            self.sessions, _WithPresented(self.keylogs, state), self.clock,
            own_node_id=self.node_id, base_url=self.config.server.base_url,
            max_skew=federation.max_skew, max_validity=federation.max_validity,
        )  # fmt: skip
        sender = await verifier.verify_incoming(request, body)
        if sender != state.node_id:
            raise PeeringError(
                400, ErrorCode.ORIGIN_MISMATCH, "the request is signed by another node"
            )

    def _check_introduction(
        self, signed: SignedEnvelope, state: KeyState, now: int
    ) -> PeerIntroduce:
        envelope = signed.envelope
        if envelope.type != PeerIntroduce.TYPE:
            raise PeeringError(400, ErrorCode.INVALID_FIELD, "envelope: not a peer.introduce")
        try:
            verify(signed, state, now=now)
            introduce = parse_body(envelope.type, envelope.body)
        except ProtocolError as exc:
            raise protocol_error(exc, what="envelope: ") from None
        assert isinstance(introduce, PeerIntroduce)  # noqa: S101 - the registry maps the type
        if envelope.audience != _to(self.node_id) or introduce.inviter != self.node_id:
            raise PeeringError(400, PeeringCode.NOT_FOR_US, "the introduction is for another node")
        return introduce

    async def _welcome(
        self,
        state: KeyState,
        keys: Sequence[SignedKeyEvent],
        introduce: PeerIntroduce,
        descriptor: NodeDescriptor | None,
        now: int,
    ) -> None:
        joiner = state.node_id
        async with self.sessions.begin() as session:
            invite = await self._usable_invite(session, introduce, joiner, now)
            existing = await peers.get_peer(session, joiner)
            if existing is not None and existing.state == peers.BLOCKED:
                raise PeeringError(403, PeeringCode.BLOCKED, "this node blocked yours")
            try:
                await self.keylogs.accept(session, joiner, keys, now=now, complete=True)
            except KeyLogError as exc:  # the stored log moved since it was checked
                raise protocol_error(exc, what="key log: ") from None
            if not await use_peer_invite(session, invite.id, joiner, now):
                raise PeeringError(403, PeeringCode.INVITE_USED, "the invite was used meanwhile")
            name = docs.display_name(descriptor)
            await set_peer(
                session, joiner, peers.ALLIED, endpoint=introduce.endpoint, name=name, now=now
            )
            await declare_alliance(session, self.signer, joiner, "allied", now)
            await audit(session, now, FEDERATION, "peer.accept", peer=joiner.hex(),
                        invite=invite.id.hex(), endpoint=introduce.endpoint)  # fmt: skip

    async def _usable_invite(
        self, session: AsyncSession, introduce: PeerIntroduce, joiner: bytes, now: int
    ) -> PeerInvite:
        """The invite, if the proof holds and it is unused and unexpired (checked in this
        order: someone without the secret learns nothing about an invite's state)."""
        try:
            invite = await get_peer_invite(session, introduce.invite)
        except NotFound:
            raise PeeringError(403, PeeringCode.INVALID_INVITE, "no such invite") from None
        secret = invite_secret(self.secrets, invite.id)
        if not hmac.compare_digest(peering_proof(secret, self.node_id, joiner), introduce.proof):
            raise PeeringError(403, PeeringCode.BAD_PROOF, "the proof does not match the invite")
        if invite.used_at is not None:
            raise PeeringError(403, PeeringCode.INVITE_USED, "the invite was used already")
        if invite.expires_at <= now:
            raise PeeringError(403, PeeringCode.INVITE_EXPIRED, "the invite has expired")
        return invite


def _parse_request(body: bytes) -> _Introduction:
    """Strictly decode ``{"envelope", "keys", "descriptor"}`` (SPEC §14.6)."""
    try:
        value = decode(body, docs.DOCUMENT_LIMITS)
        if not isinstance(value, dict) or set(value) != _REQUEST_FIELDS:
            raise DecodeError(ErrorCode.MALFORMED, "the body is {envelope, keys, descriptor}")
        if type(value["envelope"]) is not bytes or type(value["descriptor"]) is not bytes:
            raise DecodeError(ErrorCode.MALFORMED, "envelope and descriptor are bins")
        envelope = SignedEnvelope.from_bytes(value["envelope"])
        keys = docs.parse_key_events(value["keys"])
    except ProtocolError as exc:
        raise protocol_error(exc) from None
    return _Introduction(envelope, keys, value["descriptor"])


def _presented_descriptor(wire: bytes, state: KeyState, now: int) -> NodeDescriptor:
    try:
        return docs.check_descriptor(wire, state, now)
    except ProtocolError as exc:
        raise protocol_error(exc, what="descriptor: ") from None


def _to(node: bytes) -> str:
    return f"node:{node.hex()}"
