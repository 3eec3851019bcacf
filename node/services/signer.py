"""The node signs its own envelopes (SPEC §4.5, §5.2, §6.2).

Each envelope takes the next per-origin sequence number (1 first) and names the id of the
envelope before it in ``prev`` (present exactly when ``seq > 1``). It is signed with the
operational key under the head position of the node's key log, and stored in the own-envelope
log in the caller's transaction, so an envelope exists exactly when the change that caused it
is committed. Sequence numbers are allocated under a lock (:func:`lock_own_log`), so signers
in several processes on one PostgreSQL database never take the same number.

The key state is read from the stored key events at every signature: signing is rare (a few
envelopes per decision or call), and a delegation recorded by another process is seen at once.
If the head's operational key is no longer ours, the signer refuses rather than sign envelopes
that every receiver would reject.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from node.errors import NodeError
from node.federation.outbox import enqueue
from node.identity import KEYS_DIR, OPERATIONAL_KEY, read_key_file
from node.storage import envelopes
from node.storage.errors import NotFound
from node.storage.models import EnvelopeRow
from protocol import (
    KeyLogError,
    KeyState,
    SignedEnvelope,
    SignedKeyEvent,
    SigningKey,
    ValidationError,
    build_envelope,
    sign,
)

__all__ = ["Signer", "SignerCode", "SignerError", "load_signer"]


class SignerCode(StrEnum):
    NOT_INITIALISED = "node_not_initialised"
    KEY_FILE_INVALID = "operational_key_file_invalid"
    WRONG_NODE = "operational_key_wrong_node"
    KEY_NOT_CURRENT = "operational_key_not_current"
    KEY_LOG_INVALID = "own_key_log_invalid"


class SignerError(NodeError):
    """The node cannot sign: a setup or key problem for the operator, never the client's."""

    def __init__(self, code: SignerCode, internal: str) -> None:
        super().__init__(500, code.value, "the node cannot sign right now", internal)


@dataclass(frozen=True, slots=True)
class Signer:
    """The node's operational key, and the node it signs for."""

    node_id: bytes
    key: SigningKey = field(repr=False)

    async def append(
        self,
        session: AsyncSession,
        *,
        type: str,
        body: Mapping[str, Any],
        audience: str,
        now: int,
        expires: int | None = None,
    ) -> SignedEnvelope:
        """Sign the next envelope of this node and store it, in the caller's transaction."""
        await _lock(session)
        state = await self.key_state(session)
        last = await envelopes.get_last_envelope(session, self.node_id)
        seq, prev = (1, None) if last is None else (last[0] + 1, last[1])
        envelope = build_envelope(
            type=type, origin=self.node_id, kpos=state.position, seq=seq, prev=prev,
            created=now, body=body, audience=audience, expires=expires,
        )  # fmt: skip
        signed = sign(envelope, self.key)
        row = EnvelopeRow(
            origin=self.node_id, seq=seq, id=signed.id, type=type, audience=audience,
            wire=signed.to_bytes(), created_at=now, received_at=now,
        )  # fmt: skip
        await envelopes.put_envelope(session, row)
        await enqueue(session, row, now=now)  # its deliveries commit with it (DESIGN §4)
        return signed

    async def key_state(self, session: AsyncSession) -> KeyState:
        """This node's verified key state, whose head operational key must be ours."""
        try:
            node_id = await envelopes.get_node_id(session)
        except NotFound as exc:
            raise SignerError(SignerCode.NOT_INITIALISED, str(exc)) from exc
        if node_id != self.node_id:
            raise SignerError(SignerCode.WRONG_NODE, "the operational key file names another node")
        state = _verify_log(await envelopes.list_key_events(session, node_id))
        if state.op != self.key.public:
            raise SignerError(
                SignerCode.KEY_NOT_CURRENT,
                f"key log position {state.position} names another operational key",
            )
        return state


async def _lock(session: AsyncSession) -> None:
    try:
        await envelopes.lock_own_log(session)
    except NotFound as exc:
        raise SignerError(SignerCode.NOT_INITIALISED, str(exc)) from exc


def _verify_log(wires: list[bytes]) -> KeyState:
    try:
        return KeyState.from_log([SignedKeyEvent.from_bytes(wire) for wire in wires])
    except KeyLogError as exc:
        raise SignerError(SignerCode.KEY_LOG_INVALID, f"stored key log: {exc}") from exc


def load_signer(data_dir: Path) -> Signer:
    """The signer of the node in ``data_dir``, from its operational key file."""
    path = data_dir / KEYS_DIR / OPERATIONAL_KEY
    try:
        key_file = read_key_file(path)
        if key_file.kind != "operational":
            raise ValueError(f"kind is {key_file.kind!r}")
        return Signer(bytes.fromhex(key_file.node), SigningKey(key_file.seed))
    except (OSError, KeyError, ValueError, ValidationError) as exc:
        raise SignerError(SignerCode.KEY_FILE_INVALID, f"{path}: {exc}") from exc
