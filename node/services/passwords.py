"""Password hashing with Argon2id (RFC 9106), as ``cryptography`` provides it.

Hashes are stored in the PHC string format (``$argon2id$v=19$m=...,t=...,p=...$salt$hash``),
which carries its parameters and salt, so the parameters can be raised later: a login with
an older hash re-hashes it (:meth:`PasswordHasher.needs_rehash`). Tests inject cheap
parameters; production uses at least OWASP's minimum (19 MiB, 2 passes).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

__all__ = ["PRODUCTION", "Argon2Params", "PasswordHasher"]

SALT_BYTES: Final = 16
HASH_BYTES: Final = 32
PHC: Final = re.compile(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$")


@dataclass(frozen=True, slots=True)
class Argon2Params:
    memory_kib: int = 19_456
    iterations: int = 2
    lanes: int = 1


PRODUCTION: Final = Argon2Params()


@dataclass(slots=True)
class PasswordHasher:
    params: Argon2Params = PRODUCTION
    _dummy: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._dummy = self.hash(os.urandom(16).hex())

    def hash(self, password: str) -> str:
        return self._kdf(os.urandom(SALT_BYTES)).derive_phc_encoded(password.encode())

    def verify(self, password: str, encoded: str | None) -> bool:
        """True if ``password`` matches; with no hash (an unknown account) a dummy hash is
        checked instead, so the time taken does not tell which accounts exist."""
        try:
            Argon2id.verify_phc_encoded(password.encode(), encoded or self._dummy)
        except (InvalidKey, ValueError):
            return False
        return bool(encoded)

    def needs_rehash(self, encoded: str) -> bool:
        match = PHC.match(encoded)
        if match is None:
            return True
        memory, iterations, lanes = map(int, match.groups())
        p = self.params
        return (memory, iterations, lanes) != (p.memory_kib, p.iterations, p.lanes)

    def _kdf(self, salt: bytes) -> Argon2id:
        return Argon2id(
            salt=salt,
            length=HASH_BYTES,
            iterations=self.params.iterations,
            lanes=self.params.lanes,
            memory_cost=self.params.memory_kib,
        )
