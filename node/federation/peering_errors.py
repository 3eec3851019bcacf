"""The refusals of peering (SPEC §14.6): stable codes, with the HTTP status for each side.

The inviter answers a bad request with the protocol's own code (``malformed``, ``keylog_*``,
``bad_signature`` ...) or one of :class:`PeeringCode`; the joiner reports a flaw in what the
inviter sent as ``peer_bad_response`` (502), except a key log's code, which it keeps.
"""

from __future__ import annotations

from enum import StrEnum

from node.errors import NodeError
from protocol import KeyLogError, ProtocolError

__all__ = ["PeeringCode", "PeeringError", "protocol_error", "remote_error"]


class PeeringCode(StrEnum):
    INVALID_INVITE = "invalid_invite"  # unreadable invite, or no such invite
    INVITE_EXPIRED = "invite_expired"
    INVITE_USED = "invite_used"
    BAD_PROOF = "bad_proof"
    BLOCKED = "blocked"
    NOT_FOR_US = "not_for_us"  # an introduction addressed to another node
    PEER_WRONG_NODE = "peer_wrong_node"  # the invite's address serves another node
    PEERING_REFUSED = "peering_refused"  # the inviter refused our introduction
    PEER_BAD_RESPONSE = "peer_bad_response"


class PeeringError(NodeError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)


def protocol_error(exc: ProtocolError, status: int = 400, what: str = "") -> PeeringError:
    return PeeringError(status, exc.code, f"{what}{exc.detail or exc.code}")


def remote_error(exc: ProtocolError, what: str) -> PeeringError:
    """A flaw in what the other node sent us: its key log's code as it is (``keylog_*``),
    anything else as ``peer_bad_response``."""
    code = exc.code if isinstance(exc, KeyLogError) else PeeringCode.PEER_BAD_RESPONSE
    return PeeringError(502, code, f"{what}{exc}")
