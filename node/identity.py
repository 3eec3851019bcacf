"""A node's identity on disk: officer, next-officer and operational key files (SPEC §4).

Officer keys control the organisation and belong OFFLINE, one per officer, on devices the
server never sees; ``tadamun init`` writes them to their own directory so they can be moved
off the server at once. The server keeps only its operational key and its local secret.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from protocol import (
    KeyEvent,
    KeyState,
    SignedKeyEvent,
    SigningKey,
    sign_key_event,
)

__all__ = [
    "Identity",
    "KeyFile",
    "new_identity",
    "read_key_file",
    "write_identity",
    "write_key_file",
]

KEYS_DIR: Final = "keys"
OFFICERS_DIR: Final = "officers"
OPERATIONAL_KEY: Final = "operational.key"
LOCAL_SECRET: Final = "secret.key"  # noqa: S105 - a file name, not a secret


@dataclass(frozen=True, slots=True)
class KeyFile:
    kind: str  # "officer", "next-officer", "operational" or "secret"
    node: str  # node id, hex
    seed: bytes


@dataclass(frozen=True, slots=True)
class Identity:
    """A new node's keys, in memory until :func:`write_identity` puts them on disk."""

    inception: SignedKeyEvent
    state: KeyState
    operational: SigningKey
    officers: tuple[SigningKey, ...]
    next_officers: tuple[SigningKey, ...]
    secret: bytes = field(repr=False)


HEADERS: Final = {
    "officer": "Tadamun OFFICER key. Keep it OFFLINE, with one officer only; never on the server.",
    "next-officer": "Tadamun NEXT-OFFICER key (pre-rotation). Keep it OFFLINE and unused until "
    "a rotation; never with the current officer keys.",
    "operational": "Tadamun OPERATIONAL key: the server signs with it. Officers can replace it.",
    "secret": "Tadamun local secret: encrypts contact fields at rest. Back it up with the data.",
}


def write_key_file(path: Path, key: KeyFile) -> None:
    """Write a key file readable by its owner only; refuse to overwrite one."""
    text = (
        f"# {HEADERS[key.kind]}\n"
        f'kind = "{key.kind}"\nnode = "{key.node}"\nseed = "{key.seed.hex()}"\n'
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def read_key_file(path: Path) -> KeyFile:
    document = tomllib.loads(path.read_text(encoding="utf-8"))
    return KeyFile(document["kind"], document["node"], bytes.fromhex(document["seed"]))


def new_identity(officers: int, threshold: int, now: int) -> Identity:
    """Generate every key and sign the inception with the first ``threshold`` officers."""
    officer_keys = tuple(SigningKey.generate() for _ in range(officers))
    next_keys = tuple(SigningKey.generate() for _ in range(officers))
    operational = SigningKey.generate()
    event = KeyEvent.inception(
        officers=[k.public for k in officer_keys],
        threshold=threshold,
        next_officers=[k.public for k in next_keys],
        op=operational.public,
        created=now,
    )
    inception = sign_key_event(event, officer_keys[:threshold])
    state = KeyState.from_log([inception])
    return Identity(inception, state, operational, officer_keys, next_keys, secrets.token_bytes(32))


def write_identity(data_dir: Path, identity: Identity) -> Path:
    """Write every key file (owner-only); return the directory holding the officer keys."""
    node = identity.state.node_id.hex()
    keys, officers = data_dir / KEYS_DIR, data_dir / OFFICERS_DIR
    for directory in (keys, officers):
        directory.mkdir(mode=0o700)
    write_key_file(keys / OPERATIONAL_KEY, KeyFile("operational", node, identity.operational.seed))
    write_key_file(keys / LOCAL_SECRET, KeyFile("secret", node, identity.secret))
    for kind, group in (("officer", identity.officers), ("next-officer", identity.next_officers)):
        for number, key in enumerate(group, start=1):
            write_key_file(officers / f"{kind}-{number}.key", KeyFile(kind, node, key.seed))
    return officers
