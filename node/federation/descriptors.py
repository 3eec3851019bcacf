"""The node's descriptor and its well-known document (SPEC §8.2, §14.2).

The node signs a ``node.descriptor`` when it has none, or when its configured name or base
URL changed, and after a key event (so that the change travels to peers). The name is its
configured name under the language tag ``und`` (undetermined, as decision titles are): the
configuration does not say which language the name is written in. ``langs`` are the
languages of the node's interface, ``caps`` is ``tadamun.v1``.

``GET /.well-known/tadamun`` answers ``{"node", "keys", "descriptor"?}``: the node id, its
whole key log and its latest descriptor. Everything in it is self-certifying, so it is
served to anyone; a reader checks the node id it expected, verifies the log as a whole and
the descriptor against it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession

from node.services.members import LANGUAGES
from node.services.signer import Signer
from node.storage import envelopes
from node.storage.models import EnvelopeRow
from protocol import (
    DecodeError,
    ErrorCode,
    KeyState,
    Limits,
    NodeDescriptor,
    SignedEnvelope,
    SignedKeyEvent,
    ValidationError,
    decode,
    parse_body,
    verify,
)

__all__ = [
    "CAPABILITIES",
    "DESCRIPTOR",
    "DOCUMENT_LIMITS",
    "NAME_LANG",
    "WELL_KNOWN_PATH",
    "NodeDocument",
    "check_descriptor",
    "descriptor_for",
    "display_name",
    "ensure_descriptor",
    "own_document",
    "parse_document",
    "parse_key_events",
    "sign_descriptor",
]

WELL_KNOWN_PATH: Final = "/.well-known/tadamun"
DESCRIPTOR: Final = NodeDescriptor.TYPE
CAPABILITIES: Final = ("tadamun.v1",)
NAME_LANG: Final = "und"
MAX_KEY_EVENTS: Final = 1_024
# Documents holding a whole key log and a descriptor: larger than one envelope (64 KiB),
# since each key event and the descriptor are bins inside them.
DOCUMENT_LIMITS: Final = Limits(max_size=1_048_576, max_bin=65_536, max_array=MAX_KEY_EVENTS)


def descriptor_for(name: str, base_url: str) -> NodeDescriptor:
    """The descriptor this node should publish for its configured name and base URL."""
    return NodeDescriptor(
        name={NAME_LANG: _truncate(name, 512)},
        endpoints=(base_url,),
        langs=LANGUAGES,
        caps=CAPABILITIES,
    )


def _truncate(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes of ``text``, cut at a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")


async def ensure_descriptor(
    session: AsyncSession, signer: Signer, name: str, base_url: str, now: int
) -> bytes:
    """The wire of this node's latest descriptor, signed anew first if there is none or
    its name or endpoint differ from ``name`` and ``base_url``. In the caller's transaction;
    the own log is locked first, so two processes starting at once sign one descriptor."""
    await envelopes.lock_own_log(session)
    wanted = descriptor_for(name, base_url)
    latest = await envelopes.get_latest_of_type(session, signer.node_id, DESCRIPTOR)
    if latest is not None and latest.wire is not None:
        body = SignedEnvelope.from_bytes(latest.wire).envelope.body
        if (body.get("name"), body.get("endpoints")) == (dict(wanted.name), [base_url]):
            return latest.wire
    return await sign_descriptor(session, signer, wanted, now)


async def sign_descriptor(
    session: AsyncSession, signer: Signer, descriptor: NodeDescriptor, now: int
) -> bytes:
    signed = await signer.append(
        session, type=DESCRIPTOR, body=descriptor.to_body(), audience="public", now=now
    )
    return signed.to_bytes()


async def own_document(session: AsyncSession, node_id: bytes) -> dict[str, Any]:
    """The well-known document of this node, as a value to encode."""
    document: dict[str, Any] = {
        "node": node_id,
        "keys": await envelopes.list_key_events(session, node_id),
    }
    latest: EnvelopeRow | None = await envelopes.get_latest_of_type(session, node_id, DESCRIPTOR)
    if latest is not None and latest.wire is not None:
        document["descriptor"] = latest.wire
    return document


@dataclass(frozen=True, slots=True)
class NodeDocument:
    """A well-known document (or a peering answer) as read, not yet verified."""

    node: bytes | None
    keys: tuple[SignedKeyEvent, ...]
    descriptor: bytes | None


def parse_document(raw: bytes, *, with_node: bool = True) -> NodeDocument:
    """Strictly decode ``{"node"?, "keys", "descriptor"?}`` (``node`` required exactly when
    ``with_node``): :class:`~protocol.DecodeError`, :class:`~protocol.ValidationError` or
    :class:`~protocol.KeyLogError` (an event that is not a signed key event)."""
    value = decode(raw, DOCUMENT_LIMITS)
    required = {"node", "keys"} if with_node else {"keys"}
    if not isinstance(value, dict) or not required <= set(value) <= required | {"descriptor"}:
        raise DecodeError(ErrorCode.MALFORMED, f"the document has fields {sorted(required)}")
    node = value.get("node")
    if with_node and (type(node) is not bytes or len(node) != 32):
        raise ValidationError(ErrorCode.INVALID_FIELD, "node: must be bin of 32 bytes")
    descriptor = value.get("descriptor")
    if descriptor is not None and type(descriptor) is not bytes:
        raise ValidationError(ErrorCode.INVALID_FIELD, "descriptor: must be bin")
    return NodeDocument(node, parse_key_events(value["keys"]), descriptor)


def parse_key_events(value: object) -> tuple[SignedKeyEvent, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_KEY_EVENTS:
        raise ValidationError(ErrorCode.INVALID_FIELD, "keys: 1 or more signed key events")
    if any(type(item) is not bytes for item in value):
        raise ValidationError(ErrorCode.INVALID_FIELD, "keys: each event is bin")
    return tuple(SignedKeyEvent.from_bytes(item) for item in value)


def check_descriptor(wire: bytes, state: KeyState, now: int) -> NodeDescriptor:
    """The descriptor in ``wire``, verified as an envelope of ``state``'s node (§6.3):
    :class:`~protocol.ProtocolError` with the code of the first check that fails."""
    signed = SignedEnvelope.from_bytes(wire)
    if signed.envelope.type != DESCRIPTOR:
        raise ValidationError(ErrorCode.INVALID_FIELD, "descriptor: not a node.descriptor")
    verify(signed, state, now=now)
    descriptor = parse_body(DESCRIPTOR, signed.envelope.body)
    assert isinstance(descriptor, NodeDescriptor)  # noqa: S101 - the registry maps the type
    return descriptor


def display_name(descriptor: NodeDescriptor | None, limit: int = 512) -> str:
    """One name to show an admin: the undetermined-language one, else the first."""
    if descriptor is None:
        return ""
    names: Sequence[str] = [descriptor.name.get(NAME_LANG, ""), *descriptor.name.values()]
    return _truncate(next(name for name in names if name), limit)
