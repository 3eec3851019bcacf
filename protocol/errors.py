"""The typed error tree of the protocol (SPEC.md §12).

Every error carries a stable, machine-readable ``code`` (an :class:`ErrorCode`) that
implementations in any language report the same way, plus a human-readable detail.
Callers branch on the class or on ``code``, never on the message text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

__all__ = [
    "DecodeError",
    "ErrorCode",
    "FreshnessError",
    "HttpSignatureError",
    "KeyLogError",
    "ProtocolError",
    "SignatureError",
    "UnknownCritical",
    "UnknownMessageType",
    "UnsupportedVersion",
    "ValidationError",
]


class ErrorCode(StrEnum):
    """Stable error codes (SPEC.md §12). Never renumbered, never reused."""

    # decoding: the canonical encoding profile (§3)
    TOO_LARGE = "too_large"
    TOO_DEEP = "too_deep"
    TOO_LONG = "too_long"
    TRUNCATED = "truncated"
    TRAILING_BYTES = "trailing_bytes"
    MALFORMED = "malformed"
    NONCANONICAL = "noncanonical"
    UNSORTED_KEYS = "unsorted_keys"
    DUPLICATE_KEY = "duplicate_key"
    NON_STRING_KEY = "non_string_key"
    INT_OUT_OF_RANGE = "int_out_of_range"
    FLOAT_NOT_ALLOWED = "float_not_allowed"
    EXT_NOT_ALLOWED = "ext_not_allowed"
    INVALID_UTF8 = "invalid_utf8"
    # structure and field validation (§5, §7, §8)
    INVALID_FIELD = "invalid_field"
    MISSING_FIELD = "missing_field"
    UNKNOWN_TYPE = "unknown_type"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_CRITICAL = "unknown_critical"
    ACTIVATION_UNPROVEN = "activation_unproven"
    # envelope signatures and key state (§6)
    BAD_SIGNATURE = "bad_signature"
    ORIGIN_MISMATCH = "origin_mismatch"
    KEY_POSITION_UNKNOWN = "key_position_unknown"
    KEY_REVOKED = "key_revoked"
    # freshness (§6.5)
    FROM_FUTURE = "from_future"
    EXPIRED = "expired"
    # key log (§4)
    KEYLOG_BAD_EVENT = "keylog_bad_event"
    KEYLOG_BAD_POSITION = "keylog_bad_position"
    KEYLOG_BROKEN_CHAIN = "keylog_broken_chain"
    KEYLOG_BAD_THRESHOLD = "keylog_bad_threshold"
    KEYLOG_DUPLICATE_KEY = "keylog_duplicate_key"
    KEYLOG_DUPLICATE_SIGNATURE = "keylog_duplicate_signature"
    KEYLOG_BAD_SIGNATURE = "keylog_bad_signature"
    KEYLOG_THRESHOLD_NOT_MET = "keylog_threshold_not_met"
    KEYLOG_COMMITMENT_MISMATCH = "keylog_commitment_mismatch"
    KEYLOG_ROLLBACK = "keylog_rollback"
    KEYLOG_DUPLICITY = "keylog_duplicity"
    KEYLOG_WRONG_NODE = "keylog_wrong_node"
    # HTTP message signatures (§10)
    HTTPSIG_MISSING = "httpsig_missing"
    HTTPSIG_MALFORMED = "httpsig_malformed"
    HTTPSIG_BAD_DIGEST = "httpsig_bad_digest"
    HTTPSIG_BAD_SIGNATURE = "httpsig_bad_signature"
    HTTPSIG_EXPIRED = "httpsig_expired"
    HTTPSIG_FROM_FUTURE = "httpsig_from_future"
    HTTPSIG_WRONG_TARGET = "httpsig_wrong_target"
    HTTPSIG_UNKNOWN_KEY = "httpsig_unknown_key"


class ProtocolError(Exception):
    """Root of every error the protocol raises. ``code`` is stable; ``detail`` is for logs."""

    allowed: ClassVar[frozenset[ErrorCode]] = frozenset()

    def __init__(self, code: ErrorCode, detail: str = "") -> None:
        if self.allowed and code not in self.allowed:
            raise TypeError(f"{type(self).__name__} cannot carry code {code!r}")
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else str(code))


def _codes(*names: str) -> frozenset[ErrorCode]:
    return frozenset(ErrorCode(n) for n in names)


class DecodeError(ProtocolError):
    """Bytes that are not in the canonical encoding profile (§3)."""

    allowed = _codes(
        "too_large",
        "too_deep",
        "too_long",
        "truncated",
        "trailing_bytes",
        "malformed",
        "noncanonical",
        "unsorted_keys",
        "duplicate_key",
        "non_string_key",
        "int_out_of_range",
        "float_not_allowed",
        "ext_not_allowed",
        "invalid_utf8",
    )


class ValidationError(ProtocolError):
    """Well-encoded data whose fields break the schema of its type (§5, §7, §8)."""

    allowed = _codes("invalid_field", "missing_field", "too_long", "activation_unproven")


class UnknownMessageType(ProtocolError):
    """A core-namespace type this implementation does not know (§8.1)."""

    allowed = _codes("unknown_type")

    def __init__(self, type_: str) -> None:
        super().__init__(ErrorCode.UNKNOWN_TYPE, type_)
        self.type = type_


class UnsupportedVersion(ProtocolError):
    """A protocol major version this implementation does not speak (§11)."""

    allowed = _codes("unsupported_version")


class UnknownCritical(ProtocolError):
    """A field listed in ``crit`` that this implementation does not understand (§5.3)."""

    allowed = _codes("unknown_critical")


class SignatureError(ProtocolError):
    """An envelope whose signature or signing key does not hold (§6)."""

    allowed = _codes("bad_signature", "origin_mismatch", "key_position_unknown", "key_revoked")


class FreshnessError(ProtocolError):
    """An envelope from the future beyond the skew bound, or past its own expiry (§6.5)."""

    allowed = _codes("from_future", "expired")


class KeyLogError(ProtocolError):
    """An invalid key event, or a key log that breaks the chain, rolls back or forks (§4)."""

    allowed = _codes(
        "keylog_bad_event",
        "keylog_bad_position",
        "keylog_broken_chain",
        "keylog_bad_threshold",
        "keylog_duplicate_key",
        "keylog_duplicate_signature",
        "keylog_bad_signature",
        "keylog_threshold_not_met",
        "keylog_commitment_mismatch",
        "keylog_rollback",
        "keylog_duplicity",
        "keylog_wrong_node",
    )


class HttpSignatureError(ProtocolError):
    """A federation request whose RFC 9421 signature or RFC 9530 digest fails (§10)."""

    allowed = _codes(
        "httpsig_missing",
        "httpsig_malformed",
        "httpsig_bad_digest",
        "httpsig_bad_signature",
        "httpsig_expired",
        "httpsig_from_future",
        "httpsig_wrong_target",
        "httpsig_unknown_key",
    )
