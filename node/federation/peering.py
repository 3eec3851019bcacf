"""Peering by out-of-band invite (SPEC §8.3, §14.6): invites, joining, and answering a join.

The inviter makes an invite (16-byte id, one use, an expiry; the secret is derived, never
stored) and gives its string to a person. The joiner, with that string:

1. fetches the inviter's ``/.well-known/tadamun`` (unsigned), checks that the node id is the
   invite's, verifies the whole key log (stored through :class:`KeyLogs`) and the descriptor;
2. signs a ``peer.introduce`` (``proof`` = HMAC under the invite secret), addressed
   ``node:<inviter>``, stores the inviter as ``introduced``, and POSTs the introduction with
   its own key log and descriptor to ``/federation/v1/peering``, signed (§10);
3. on success stores the inviter's answer (key log, descriptor), marks it ``allied`` and
   signs a ``peer.alliance``; on any failure the peer row goes back to what it was.

The inviter answers in :meth:`Peering.accept` (:mod:`node.federation.welcome`). Making the
invite was the inviter's consent; joining an invite whose fingerprint the joiner's admin
compared is the joiner's.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.config import Config
from node.errors import not_found
from node.federation import descriptors as docs
from node.federation.client import FederationClient, FederationResponse
from node.federation.invite_codes import (
    InviteCode,
    InviteCodeError,
    decode_invite,
    encode_invite,
    invite_secret,
)
from node.federation.keylogs import KeyLogs
from node.federation.peer_admin import declare_alliance, peer_view, set_peer
from node.federation.peering_errors import PeeringCode, PeeringError, remote_error
from node.federation.transport import IncomingRequest
from node.federation.welcome import Welcome
from node.services.members import Actor, audit
from node.services.secrets import NodeSecrets
from node.services.signer import Signer, SignerCode, SignerError
from node.storage import envelopes, peers
from node.storage.errors import NotFound
from node.storage.models import Peer, PeerInvite
from node.storage.peer_invites import delete_peer_invite, list_peer_invites, put_peer_invite
from protocol import (
    KeyLogError,
    KeyState,
    NodeDescriptor,
    PeerIntroduce,
    ProtocolError,
    SignedKeyEvent,
    decode,
    encode,
    fingerprint,
    peering_proof,
)

__all__ = [
    "DEFAULT_INVITE_HOURS",
    "MAX_INVITE_HOURS",
    "MAX_PEERING_BODY",
    "PEERING_PATH",
    "Peering",
    "PeeringCode",
    "PeeringError",
]

PEERING_PATH: Final = "/federation/v1/peering"
MAX_PEERING_BODY: Final = 262_144  # bytes; checked before the body is read
DEFAULT_INVITE_HOURS: Final = 7 * 24
MAX_INVITE_HOURS: Final = 90 * 24


class _Before(NamedTuple):
    """A peer row's fields that a join changes, to put back if the join fails."""

    state: str
    endpoint: str
    name: str
    they_allied: bool

    @classmethod
    def of(cls, peer: Peer) -> _Before:
        return cls(peer.state, peer.endpoint, peer.name, peer.they_allied)


@dataclass(frozen=True, slots=True)
class Peering:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    signer: Signer
    keylogs: KeyLogs
    secrets: NodeSecrets
    config: Config

    @property
    def node_id(self) -> bytes:
        return self.signer.node_id

    @property
    def base_url(self) -> str:
        return self.config.server.base_url

    # --- the descriptor and the well-known document ------------------------------------

    async def publish_descriptor(self) -> bytes:
        """Sign a descriptor if there is none or the name or base URL changed;
        :class:`SignerError` if the node cannot sign."""
        try:
            async with self.sessions.begin() as session:
                return await docs.ensure_descriptor(
                    session, self.signer, self.config.node.name, self.base_url, self.clock.now()
                )
        except NotFound as exc:  # no identity in the database (init did not finish)
            raise SignerError(SignerCode.NOT_INITIALISED, str(exc)) from exc

    async def document(self, *, with_node: bool = True) -> bytes:
        """The well-known document (``with_node``) or the answer to a peering request."""
        async with self.sessions() as session:
            value = await docs.own_document(session, self.node_id)
        if not with_node:
            del value["node"]
        return encode(value, docs.DOCUMENT_LIMITS)

    # --- invites -----------------------------------------------------------------------

    async def create_invite(
        self, actor: Actor, hours: int = DEFAULT_INVITE_HOURS
    ) -> dict[str, Any]:
        """A new one-use invite; its string (with the secret) is in this answer only."""
        now, invite_id = self.clock.now(), secrets.token_bytes(16)
        async with self.sessions.begin() as session:
            invite = await put_peer_invite(
                session, PeerInvite(id=invite_id, created_at=now, expires_at=now + hours * 3600,
                                    created_by=actor.member_id),
            )  # fmt: skip
            await audit(session, now, actor, "peer.invite.create", invite=invite_id.hex(),
                        expires_at=invite.expires_at)  # fmt: skip
        code = InviteCode(self.base_url, self.node_id, invite_id,
                          invite_secret(self.secrets, invite_id))  # fmt: skip
        return _invite_view(invite, now) | {
            "invite": encode_invite(code),
            "fingerprint": fingerprint(self.node_id),
        }

    async def invites(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.sessions() as session:
            rows = await list_peer_invites(session, limit)
        now = self.clock.now()
        return [_invite_view(row, now) for row in rows]

    async def revoke_invite(self, actor: Actor, invite_id: bytes) -> None:
        async with self.sessions.begin() as session:
            try:
                invite = await delete_peer_invite(session, invite_id)
            except NotFound:
                raise not_found("peer invite") from None
            await audit(session, self.clock.now(), actor, "peer.invite.revoke",
                        invite=invite_id.hex(), used=invite.used_at is not None)  # fmt: skip

    # --- joining (this node answers another's invite) ----------------------------------

    async def join(self, actor: Actor, text: str) -> dict[str, Any]:
        """Answer the invite in ``text``; the new peer's view (with its fingerprint)."""
        try:
            code = decode_invite(text)
        except InviteCodeError as exc:
            raise PeeringError(400, PeeringCode.INVALID_INVITE, str(exc)) from None
        if code.node == self.node_id:
            raise PeeringError(400, PeeringCode.INVALID_INVITE, "this is this node's own invite")
        async with FederationClient(self.config.federation, self.signer, self.clock) as client:
            document = await self._fetch_document(client, code)
            request, previous = await self._introduce(code, document)
            try:
                answer = await client.post(
                    code.endpoint.rstrip("/") + PEERING_PATH, request, destination=code.node
                )
                return await self._joined(actor, code, answer)
            except Exception:
                await self._restore(code.node, previous)
                raise

    async def _fetch_document(
        self, client: FederationClient, code: InviteCode
    ) -> docs.NodeDocument:
        url = code.endpoint.rstrip("/") + docs.WELL_KNOWN_PATH
        response = await client.get(url, destination=None)
        if not response.ok:
            raise PeeringError(502, PeeringCode.PEER_BAD_RESPONSE,
                               f"{url} answered HTTP {response.status}")  # fmt: skip
        try:
            document = docs.parse_document(response.body)
        except ProtocolError as exc:
            raise remote_error(exc, "the other node's document: ") from None
        if document.node != code.node:
            raise PeeringError(
                502, PeeringCode.PEER_WRONG_NODE, "the invite's address serves another node"
            )
        return document

    async def _introduce(
        self, code: InviteCode, document: docs.NodeDocument
    ) -> tuple[bytes, _Before | None]:
        """Store the inviter's key log and the peer (``introduced``), sign the
        introduction; the request body, and the peer row's fields before (None: new)."""
        now = self.clock.now()
        proof = peering_proof(code.secret, code.node, self.node_id)
        body = PeerIntroduce(code.node, code.invite, proof, self.base_url).to_body()
        async with self.sessions.begin() as session:
            state = await self._accept_remote_keys(session, code.node, document.keys, now)
            name = docs.display_name(_remote_descriptor(document.descriptor, state, now))
            ours = await docs.ensure_descriptor(
                session, self.signer, self.config.node.name, self.base_url, now
            )
            signed = await self.signer.append(
                session, type=PeerIntroduce.TYPE, body=body, audience=_to(code.node), now=now
            )  # before the peer row exists, so delivery does not also queue it
            previous = await peers.get_peer(session, code.node)
            before = None if previous is None else _Before.of(previous)
            await set_peer(
                session, code.node, peers.INTRODUCED, endpoint=code.endpoint, name=name, now=now
            )
            keys = await envelopes.list_key_events(session, self.node_id)
        request = {"envelope": signed.to_bytes(), "keys": keys, "descriptor": ours}
        return encode(request, docs.DOCUMENT_LIMITS), before

    async def _accept_remote_keys(
        self, session: AsyncSession, node: bytes, keys: Sequence[SignedKeyEvent], now: int
    ) -> KeyState:
        try:
            return await self.keylogs.accept(session, node, keys, now=now, complete=True)
        except KeyLogError as exc:
            raise remote_error(exc, "the other node's key log: ") from None

    async def _joined(
        self, actor: Actor, code: InviteCode, answer: FederationResponse
    ) -> dict[str, Any]:
        if not answer.ok:
            raise PeeringError(502, PeeringCode.PEERING_REFUSED,
                               f"the other node refused: {_remote_code(answer)}")  # fmt: skip
        try:
            reply = docs.parse_document(answer.body, with_node=False)
        except ProtocolError as exc:
            raise remote_error(exc, "the other node's answer: ") from None
        now = self.clock.now()
        async with self.sessions.begin() as session:
            state = await self._accept_remote_keys(session, code.node, reply.keys, now)
            name = docs.display_name(_remote_descriptor(reply.descriptor, state, now))
            peer = await set_peer(
                session, code.node, peers.ALLIED, endpoint=code.endpoint, name=name, now=now
            )
            await declare_alliance(session, self.signer, code.node, "allied", now)
            await audit(session, now, actor, "peer.join", peer=code.node.hex(),
                        endpoint=code.endpoint)  # fmt: skip
            pending = (await peers.pending_by_peer(session)).get(code.node, 0)
            return peer_view(peer, pending)

    async def _restore(self, node: bytes, previous: _Before | None) -> None:
        """Undo the ``introduced`` row of a join that failed."""
        async with self.sessions.begin() as session:
            peer = await peers.get_peer(session, node)
            if peer is None:
                return
            if previous is None:
                await session.delete(peer)
            else:
                peer.state, peer.endpoint, peer.name, peer.they_allied = previous

    # --- answering a join (another node answers this node's invite) --------------------

    async def accept(self, request: IncomingRequest, body: bytes) -> bytes:
        """Check a peering request and ally with its sender (:mod:`welcome`); the answer's
        body: this node's key log and descriptor."""
        await self._welcome.accept(request, body)
        return await self.document(with_node=False)

    async def refused(self, node: bytes | None, code: str) -> None:
        await self._welcome.refused(node, code)

    @property
    def _welcome(self) -> Welcome:
        return Welcome(self.sessions, self.clock, self.signer, self.keylogs, self.secrets,
                       self.config)  # fmt: skip


def _to(node: bytes) -> str:
    return f"node:{node.hex()}"


def _remote_descriptor(wire: bytes | None, state: KeyState, now: int) -> NodeDescriptor | None:
    if wire is None:
        return None
    try:
        return docs.check_descriptor(wire, state, now)
    except ProtocolError as exc:
        raise remote_error(exc, "the other node's descriptor: ") from None


def _remote_code(answer: FederationResponse) -> str:
    """The error code in a peer's msgpack error answer, or its HTTP status."""
    try:
        value = decode(answer.body)
    except ProtocolError:
        value = None
    code = value.get("error") if isinstance(value, dict) else None
    return code if isinstance(code, str) and len(code) <= 64 else f"HTTP {answer.status}"


def _invite_view(invite: PeerInvite, now: int) -> dict[str, Any]:
    state = "used" if invite.used_at is not None else "expired" if invite.expires_at <= now \
        else "usable"  # fmt: skip
    return {
        "id": invite.id.hex(),
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "used_at": invite.used_at,
        "used_by": None if invite.used_by is None else invite.used_by.hex(),
        "state": state,
    }
