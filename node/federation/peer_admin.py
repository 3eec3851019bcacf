"""What admins do to peers: list them with their delivery health, block, unblock, remove.

States (``node.storage.peers``): ``introduced`` → ``allied`` by peering; ``block`` stops
everything both ways (the inbox refuses a blocked sender, delivery sends it nothing; its
queued envelopes wait); ``unblock`` makes it ``allied`` again; ``remove`` forgets the
alliance and drops what was queued for it, and only a new invite brings it back. Blocking
is local policy and is never federated (SPEC §8.3); removing an allied peer signs a
``peer.alliance`` ``ended``. Every change writes the audit log.

A peer is named by its node id in hex, a unique prefix of it, or its fingerprint (SPEC
§2.3, with or without the spaces).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import bad_request, conflict, not_found
from node.services.members import Actor, audit
from node.services.signer import Signer
from node.storage import peers
from node.storage.models import Peer
from protocol import PeerAlliance, fingerprint

__all__ = [
    "ALLIANCE_AUDIENCE",
    "TRANSITIONS",
    "PeerAdmin",
    "declare_alliance",
    "peer_view",
    "set_peer",
]

# action -> (states it applies to, the state it sets)
TRANSITIONS: Final = {
    "block": ((peers.INTRODUCED, peers.ALLIED), peers.BLOCKED),
    "unblock": ((peers.BLOCKED,), peers.ALLIED),
    "remove": ((peers.INTRODUCED, peers.ALLIED, peers.BLOCKED), peers.REMOVED),
}
# peer.alliance goes to all allies, not only to the peer it names: relays learn from it whom
# this node is allied with, which is what lets them forward its `allies` envelopes (§5.5).
ALLIANCE_AUDIENCE: Final = "allies"
_HEX: Final = re.compile(r"[0-9a-f]{1,64}")
_FINGERPRINT: Final = re.compile(r"[0-9]{30}")
_PAGE: Final = 500


def peer_view(peer: Peer, pending: int = 0) -> dict[str, Any]:
    return {
        "node": peer.node_id.hex(),
        "fingerprint": fingerprint(peer.node_id),
        "name": peer.name,
        "endpoint": peer.endpoint,
        "state": peer.state,
        "they_allied": peer.they_allied,
        "created_at": peer.created_at,
        "updated_at": peer.updated_at,
        "last_contact_at": peer.last_contact_at,
        "delivery": {
            "pending": pending,
            "failures": peer.failures,
            "next_attempt_at": peer.next_attempt_at,
            "last_delivery_at": peer.last_delivery_at,
            "last_error": peer.last_error,
        },
    }


async def set_peer(
    session: AsyncSession, node: bytes, state: str, *, endpoint: str, name: str, now: int
) -> Peer:
    """Create or update the peer ``node`` by peering: its state, endpoint and name (an
    empty ``name`` keeps the one known). Allied by peering means both sides consented."""
    peer = await peers.get_peer(session, node)
    if peer is None:
        return await peers.put_peer(
            session,
            Peer(node_id=node, endpoint=endpoint, name=name, state=state,
                 they_allied=state == peers.ALLIED, created_at=now, updated_at=now,
                 failures=0, next_attempt_at=0),
        )  # fmt: skip
    peer.state, peer.endpoint, peer.updated_at = state, endpoint, now
    peer.name = name or peer.name
    peer.they_allied = state == peers.ALLIED
    if state == peers.ALLIED:  # a fresh start for delivery
        peer.failures, peer.next_attempt_at = 0, 0
    return peer


async def declare_alliance(
    session: AsyncSession, signer: Signer, peer: bytes, state: str, now: int
) -> None:
    """Sign this node's ``peer.alliance`` about ``peer`` (``allied`` or ``ended``)."""
    body = PeerAlliance(peer, state).to_body()
    await signer.append(
        session, type=PeerAlliance.TYPE, body=body, audience=ALLIANCE_AUDIENCE, now=now
    )


@dataclass(frozen=True, slots=True)
class PeerAdmin:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock
    signer: Signer

    async def list(self) -> list[dict[str, Any]]:
        """Every peer (removed ones too), by node id, with its delivery health."""
        async with self.sessions() as session:
            rows = await _all_peers(session)
            pending = await peers.pending_by_peer(session)
        return [peer_view(peer, pending.get(peer.node_id, 0)) for peer in rows]

    async def resolve(self, name: str) -> bytes:
        """The node id of the one peer ``name`` names; 404, or 400 ``ambiguous_peer``."""
        async with self.sessions() as session:
            rows = await _all_peers(session)
        found = [peer.node_id for peer in rows if _names(name, peer.node_id)]
        if not found:
            raise not_found("peer")
        if len(found) > 1:
            raise bad_request("ambiguous_peer", f"{len(found)} peers match {name!r}; say more")
        return found[0]

    async def change(self, actor: Actor, name: str, action: str) -> dict[str, Any]:
        """block, unblock or remove the peer ``name`` names; 409 ``invalid_transition``."""
        sources, target = TRANSITIONS[action]
        node = await self.resolve(name)
        now = self.clock.now()
        async with self.sessions.begin() as session:
            peer = await peers.get_peer(session, node)
            if peer is None:  # removed from under us: rows are never deleted, but be safe
                raise not_found("peer")
            if peer.state not in sources:
                raise conflict("invalid_transition", f"cannot {action} a peer that is {peer.state}")
            before = peer.state
            peer.state, peer.updated_at = target, now
            if target == peers.REMOVED:
                peer.they_allied = False
                await peers.delete_outbox_of(session, node)
                if before == peers.ALLIED:  # relays stop forwarding `allies` envelopes to it
                    await session.flush()
                    await declare_alliance(session, self.signer, node, "ended", now)
            await audit(session, now, actor, f"peer.{action}", peer=node.hex(), before=before,
                        after=target)  # fmt: skip
            pending = (await peers.pending_by_peer(session)).get(node, 0)
            return peer_view(peer, pending)


def _names(name: str, node: bytes) -> bool:
    text = name.strip().lower()
    digits = text.replace(" ", "")
    if _FINGERPRINT.fullmatch(digits) and fingerprint(node).replace(" ", "") == digits:
        return True
    return bool(_HEX.fullmatch(text)) and node.hex().startswith(text)


async def _all_peers(session: AsyncSession) -> list[Peer]:
    rows: list[Peer] = []
    after = b""
    while True:
        page = await peers.list_peers(session, after=after, limit=_PAGE)
        rows += page
        if len(page) < _PAGE:
            return rows
        after = page[-1].node_id
