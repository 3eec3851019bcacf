"""One table from type tag to message class, and the type namespace rules (SPEC.md §8.1)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from .calls import (
    CallActivate,
    CallAmend,
    CallCancel,
    CallConclude,
    CallDecline,
    CallEndorse,
    CallIssue,
    CallTally,
    CallUpdate,
)
from .coalitions import CoalitionFound, CoalitionInvite, CoalitionJoin, CoalitionLeave
from .errors import UnknownMessageType
from .fields import invalid
from .message import Message
from .messages import DecisionOutcome, NodeDescriptor, PeerAlliance, PeerIntroduce

__all__ = [
    "CORE_ROOTS",
    "MESSAGE_TYPES",
    "body_fields",
    "check_type_namespace",
    "is_core_type",
    "parse_body",
]

# Roots reserved for core types; any other type is an extension named by reverse DNS (§8.1).
CORE_ROOTS: Final = frozenset({"node", "peer", "call", "decision", "coalition", "key", "tadamun"})

MESSAGE_TYPES: Final[Mapping[str, type[Message]]] = MappingProxyType(
    {
        cls.TYPE: cls
        for cls in (
            NodeDescriptor,
            PeerIntroduce,
            PeerAlliance,
            DecisionOutcome,
            CallIssue,
            CallAmend,
            CallCancel,
            CallUpdate,
            CallConclude,
            CallEndorse,
            CallDecline,
            CallTally,
            CallActivate,
            CoalitionFound,
            CoalitionInvite,
            CoalitionJoin,
            CoalitionLeave,
        )
    }
)

_BODY_FIELDS: Final = {t: c.field_names() for t, c in MESSAGE_TYPES.items()}


def is_core_type(type_: str) -> bool:
    return type_.partition(".")[0] in CORE_ROOTS


def check_type_namespace(type_: str) -> None:
    """An extension type has a reverse-DNS prefix of at least two labels and a name (§8.1)."""
    if not is_core_type(type_) and type_.count(".") < 2:
        raise invalid("type", "an extension type is <reverse-dns>.<name>, e.g. org.example.poll")


def body_fields(type_: str) -> frozenset[str] | None:
    """The body fields this implementation understands for ``type_``; None if unknown."""
    return _BODY_FIELDS.get(type_)


def parse_body(type_: str, body: Mapping[str, Any]) -> Message:
    """The typed message for a body; unknown core types raise :class:`UnknownMessageType`."""
    try:
        cls = MESSAGE_TYPES[type_]
    except KeyError:
        raise UnknownMessageType(type_) from None
    return cls.from_body(body)
