"""What an envelope received from another node changes here: one flat table from message
type to handler (STYLE.md §9), run in the inbox's transaction, in each origin's ``seq`` order.

Only the types in :data:`HANDLERS` have their body parsed (SPEC §7, §8). Every other type,
known or not, is stored and relayed without being applied (SPEC §8.1). A body that does not
parse is stored all the same (it holds its place in the origin's chain) but not applied; the
sender is answered with the parse error's code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.descriptors import display_name
from node.services.calls_apply import CALL_HANDLERS, CallIgnored
from node.storage import alliances
from node.storage.peers import get_peer
from protocol import (
    DecisionOutcome,
    Message,
    NodeDescriptor,
    PeerAlliance,
    ProtocolError,
    SignedEnvelope,
    parse_body,
)

__all__ = ["HANDLERS", "Context", "apply", "handles"]


@dataclass(frozen=True, slots=True)
class Context:
    """The applied envelope's place and the node applying it."""

    origin: bytes
    seq: int
    self_id: bytes
    now: int


Handler = Callable[[AsyncSession, Context, Any], Awaitable[None]]


async def _descriptor(session: AsyncSession, ctx: Context, message: NodeDescriptor) -> None:
    """A peer's newest name; its endpoint too, unless the one used is still among its own."""
    peer = await get_peer(session, ctx.origin)
    if peer is None:
        return
    peer.name = display_name(message)
    if peer.endpoint not in message.endpoints:
        peer.endpoint = message.endpoints[0]
    peer.updated_at = ctx.now


async def _alliance(session: AsyncSession, ctx: Context, message: PeerAlliance) -> None:
    """Who the origin says it is allied with: the ``allies`` relay rule (SPEC §5.5)."""
    recorded = await alliances.put_alliance(
        session, ctx.origin, message.peer, message.state, seq=ctx.seq, now=ctx.now
    )
    if recorded and message.peer == ctx.self_id:
        peer = await get_peer(session, ctx.origin)
        if peer is not None:
            peer.they_allied = message.state == "allied"
            peer.updated_at = ctx.now


async def _store_only(session: AsyncSession, ctx: Context, message: Message) -> None:
    """Kept as received; nothing here depends on it yet."""


HANDLERS: Final[Mapping[str, Handler]] = {
    NodeDescriptor.TYPE: _descriptor,
    PeerAlliance.TYPE: _alliance,
    DecisionOutcome.TYPE: _store_only,
}


def handles(type_: str) -> bool:
    """Whether envelopes of ``type_`` change anything here (others are only stored)."""
    return type_ in HANDLERS or type_ in CALL_HANDLERS


async def apply(session: AsyncSession, signed: SignedEnvelope, ctx: Context) -> str | None:
    """Apply a stored envelope; None, or the code of a body that does not parse (or, for
    ``call.*``, of a valid envelope that has no effect here: node.services.calls_apply)."""
    envelope = signed.envelope
    if envelope.type in CALL_HANDLERS:
        try:
            await CALL_HANDLERS[envelope.type](session, signed, now=ctx.now)
        except (ProtocolError, CallIgnored) as exc:  # raised before anything is written
            return str(exc.code)
        return None
    handler = HANDLERS.get(envelope.type)
    if handler is None:
        return None
    try:
        message = parse_body(envelope.type, envelope.body)
    except ProtocolError as exc:
        return str(exc.code)
    await handler(session, ctx, message)
    return None
