"""Ed25519 keys, digests and the human fingerprint of a node id (SPEC.md §2, §4.1)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from .errors import ErrorCode, ValidationError

__all__ = [
    "DIGEST_SIZE",
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "commitment",
    "digest",
    "fingerprint",
    "public_key",
    "verify_signature",
]

PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
DIGEST_SIZE: Final = 32
FINGERPRINT_DOMAIN: Final = b"TADAMUN-FINGERPRINT-V1\x00"


def digest(data: bytes) -> bytes:
    """SHA-256, the only digest of the protocol (§2)."""
    return hashlib.sha256(data).digest()


def commitment(public_key: bytes) -> bytes:
    """The pre-rotation commitment to a next officer key: SHA-256 of its 32 raw bytes (§4.2)."""
    return digest(public_key)


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An Ed25519 private key, known by its 32-byte seed (RFC 8032)."""

    seed: bytes = field(repr=False)
    _key: Ed25519PrivateKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.seed) != 32:
            raise ValidationError(ErrorCode.INVALID_FIELD, "an Ed25519 seed is 32 bytes")
        object.__setattr__(self, "_key", Ed25519PrivateKey.from_private_bytes(self.seed))

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate().private_bytes_raw())

    @property
    def public(self) -> bytes:
        return self._key.public_key().public_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)

    def private_key(self) -> Ed25519PrivateKey:
        """The `cryptography` key object, for APIs that take one (HTTP signatures)."""
        return self._key


@lru_cache(maxsize=4096)
def public_key(raw: bytes) -> Ed25519PublicKey:
    """The loaded key object for 32 raw bytes, cached: loading costs as much as hashing."""
    if len(raw) != PUBLIC_KEY_SIZE:
        raise ValidationError(ErrorCode.INVALID_FIELD, "an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def verify_signature(key: bytes, signature: bytes, message: bytes) -> bool:
    """True if ``signature`` is a valid Ed25519 signature of ``message`` by ``key``."""
    if len(key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key(key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def fingerprint(node_id: bytes) -> str:
    """Six groups of five digits that two people can read aloud and compare (§2.3).

    Digits read the same in Arabic, Kurdish and English. Each group is five bytes of
    SHA-256(domain || node id) as a big-endian integer modulo 100000: ~99.7 bits in all.
    """
    if len(node_id) != DIGEST_SIZE:
        raise ValidationError(ErrorCode.INVALID_FIELD, "a node id is 32 bytes")
    h = digest(FINGERPRINT_DOMAIN + node_id)
    groups = (int.from_bytes(h[i : i + 5], "big") % 100_000 for i in range(0, 30, 5))
    return " ".join(f"{g:05d}" for g in groups)
