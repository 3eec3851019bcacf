"""The node's local secret (``DATA_DIR/keys/secret.key``) and the keys derived from it.

Each use gets its own subkey, derived with HKDF-SHA256 under a distinct label, so one key is
never used for two purposes:

- contact fields are sealed with AES-256-GCM, a random 96-bit nonce and the member's id as
  associated data (a sealed blob copied onto another member's row does not open);
- the login throttle keys its counters by HMAC-SHA256 of the lower-cased pseudonym, so the
  table names no account.

Losing the secret loses the sealed contact fields: back it up with the data directory.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from node.identity import KEYS_DIR, LOCAL_SECRET, read_key_file

__all__ = ["NodeSecrets", "SecretMissing", "load_secrets"]

SEAL_VERSION: Final = b"\x01"
NONCE_BYTES: Final = 12
CONTACT_LABEL: Final = "tadamun/v1/contact-seal"
THROTTLE_LABEL: Final = "tadamun/v1/login-throttle"


class SecretMissing(RuntimeError):
    """The data directory has no usable local secret."""


@dataclass(frozen=True, slots=True)
class NodeSecrets:
    master: bytes = field(repr=False)

    def subkey(self, label: str) -> bytes:
        """A 32-byte key for one purpose, named by ``label`` (e.g. "tadamun/v1/...")."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label.encode())
        return hkdf.derive(self.master)

    def seal_contact(self, member_id: int, contact: dict[str, str]) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(contact, sort_keys=True, ensure_ascii=False).encode()
        sealed = AESGCM(self.subkey(CONTACT_LABEL)).encrypt(nonce, plain, _contact_ad(member_id))
        return SEAL_VERSION + nonce + sealed

    def open_contact(self, member_id: int, sealed: bytes) -> dict[str, str]:
        if sealed[:1] != SEAL_VERSION:
            raise ValueError("unknown contact seal version")
        nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
        try:
            plain = AESGCM(self.subkey(CONTACT_LABEL)).decrypt(nonce, body, _contact_ad(member_id))
        except InvalidTag:
            raise ValueError(f"contact of member {member_id} does not open") from None
        value = json.loads(plain)
        if not isinstance(value, dict):
            raise ValueError(f"contact of member {member_id} is not an object")
        return value

    def account_key(self, pseudonym: str) -> bytes:
        key = self.subkey(THROTTLE_LABEL)
        return hmac.new(key, pseudonym.lower().encode(), hashlib.sha256).digest()


def _contact_ad(member_id: int) -> bytes:
    return f"tadamun contact, member {member_id}".encode()


def load_secrets(data_dir: Path) -> NodeSecrets:
    path = data_dir / KEYS_DIR / LOCAL_SECRET
    try:
        key = read_key_file(path)
    except FileNotFoundError:
        raise SecretMissing(
            f"{path} is missing: restore it from the data directory's backup "
            "(without it, members' contact fields cannot be opened)"
        ) from None
    except (OSError, ValueError, KeyError) as exc:
        raise SecretMissing(f"{path} is unreadable: {exc}") from exc
    if key.kind != "secret" or len(key.seed) != 32:
        raise SecretMissing(f"{path} is not a 32-byte local secret")
    return NodeSecrets(key.seed)
