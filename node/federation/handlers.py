"""What an envelope received from another node changes here: one flat table from message
type to handler (STYLE.md §9), run in the inbox's transaction, in each origin's ``seq`` order.

Only the types in :data:`HANDLERS` and :data:`WHOLE_HANDLERS` (``call.*``, ``coalition.*``:
their handlers take the whole signed envelope) have their body parsed (SPEC §7, §8). Every
other type, known or not, is stored and relayed without being applied (SPEC §8.1). A body
that does not parse is stored all the same (it holds its place in the origin's chain) but not
applied; the sender is answered with the parse error's code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from node.federation.descriptors import display_name
from node.services.calls_apply import CALL_HANDLERS, CallIgnored
from node.services.coalitions_apply import CoalitionIgnored, apply_coalition
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
from protocol.coalitions import COALITION_TYPES

__all__ = ["HANDLERS", "WHOLE_HANDLERS", "Context", "apply", "handles"]


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


WholeHandler = Callable[[AsyncSession, SignedEnvelope, Context], Awaitable[None]]


def _call(handler: Callable[..., Awaitable[None]]) -> WholeHandler:
    async def run(session: AsyncSession, signed: SignedEnvelope, ctx: Context) -> None:
        await handler(session, signed, now=ctx.now)

    return run


async def _coalition(session: AsyncSession, signed: SignedEnvelope, ctx: Context) -> None:
    await apply_coalition(session, signed, self_id=ctx.self_id, now=ctx.now)


# Types whose handlers take the whole signed envelope (they need its id, audience or time).
WHOLE_HANDLERS: Final[Mapping[str, WholeHandler]] = {
    **{type_: _call(handler) for type_, handler in CALL_HANDLERS.items()},
    **dict.fromkeys(COALITION_TYPES, _coalition),
}


def handles(type_: str) -> bool:
    """Whether envelopes of ``type_`` change anything here (others are only stored)."""
    return type_ in HANDLERS or type_ in WHOLE_HANDLERS


async def apply(session: AsyncSession, signed: SignedEnvelope, ctx: Context) -> str | None:
    """Apply a stored envelope; None, or the code of a body that does not parse (or, for
    ``call.*`` and ``coalition.*``, of a valid envelope that has no effect here:
    node.services.calls_apply, node.services.coalitions_apply)."""
    envelope = signed.envelope
    whole = WHOLE_HANDLERS.get(envelope.type)
    if whole is not None:
        try:
            await whole(session, signed, ctx)
        except (ProtocolError, CallIgnored, CoalitionIgnored) as exc:  # before any write
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
