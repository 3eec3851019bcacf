"""Setting a node up: its identity rows, and the first admin invite, in one transaction."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from node.identity import Identity
from node.storage.models import AuditEntry, Invite, KeyEventRow, Setting

__all__ = ["INVITE_TTL", "invite_token", "invite_token_hash", "record_identity"]

INVITE_TTL = 7 * 86_400


def invite_token() -> tuple[str, bytes]:
    """A fresh invite token for the link, and the hash that is all the database keeps."""
    token = secrets.token_urlsafe(32)
    return token, invite_token_hash(token)


def invite_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def record_identity(
    sessions: async_sessionmaker[Any], identity: Identity, name: str, now: int
) -> str:
    """Store the node's key log and settings and an admin invite; return the invite token."""
    token, token_hash = invite_token()
    event = identity.inception.event
    async with sessions.begin() as session:
        session.add_all([
            Setting(key="node_id", value=identity.state.node_id.hex()),
            Setting(key="name", value=name),
            KeyEventRow(node_id=identity.state.node_id, pos=0, digest=event.digest,
                        wire=identity.inception.to_bytes(), received_at=now),
            Invite(token_hash=token_hash, role="admin", uses_left=1,
                   expires_at=now + INVITE_TTL, created_at=now),
            AuditEntry(at=now, actor="cli", action="node.init",
                       detail=json.dumps({"name": name, "officers": len(event.officers),
                                          "threshold": event.threshold})),
        ])  # fmt: skip
    return token
