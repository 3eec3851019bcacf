"""Key recovery by the officers (SPEC §4.3, §4.5): delegation and rotation.

**Delegation** (the server was seized, or its key leaked): a threshold of the current
officers sign a new operational key. ``seal`` is the last sequence number signed under the
old key that the officers vouch for; peers refuse anything later signed with the old key.
By default it is the node's last own envelope; after a seizure the officers set it to the
last one they trust (anything the thief signed after it becomes invalid).

**Rotation** (an officer key is lost or compromised, or the committee changes): the
pre-committed next officer keys are revealed and become the officers; the node commits to
newly generated next keys. Only the revealed keys sign (SPEC §4.3): someone holding the
current officer keys cannot rotate, which is the point.

Both store the event through :class:`KeyLogs` (verified like any peer's), then sign a fresh
``node.descriptor``, so the change reaches peers at once (key events ride along with every
delivery). Files are written so that a crash loses nothing: a new operational key is first
written beside the old one (``operational.key.new``) and put in place only after the event
is committed; new next-officer keys are written before the event that commits to them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.config import Config
from node.errors import NodeError
from node.federation import descriptors as docs
from node.federation.keylogs import KeyLogs
from node.identity import KEYS_DIR, OPERATIONAL_KEY, KeyFile, read_key_file, write_key_file
from node.services.signer import Signer
from node.storage import envelopes
from protocol import KeyState, SignedKeyEvent, SigningKey, commitment, sign_key_event

__all__ = [
    "Recovery",
    "RecoveryCode",
    "RecoveryError",
    "Rotated",
    "load_keys",
]

NEW_SUFFIX: Final = ".new"
OFFICER_KINDS: Final = ("officer", "next-officer")  # revealed next keys act as officers


class RecoveryCode(StrEnum):
    KEY_FILE_INVALID = "key_file_invalid"
    WRONG_NODE = "key_file_wrong_node"
    DUPLICATE_KEY = "duplicate_key_file"
    NOT_AN_OFFICER = "not_an_officer"
    NOT_COMMITTED = "not_committed"
    TOO_FEW = "too_few_officers"
    BAD_SEAL = "bad_seal"
    BAD_THRESHOLD = "bad_threshold"


class RecoveryError(NodeError):
    def __init__(self, code: RecoveryCode, message: str) -> None:
        super().__init__(400, code.value, message)


def load_keys(paths: Sequence[Path], node_id: bytes) -> list[SigningKey]:
    """The keys in officer (or next-officer) key files of ``node_id``; each file once."""
    keys: list[SigningKey] = []
    for path in paths:
        try:
            found = read_key_file(path)
            key = SigningKey(found.seed)
        except (OSError, KeyError, ValueError) as exc:
            raise RecoveryError(RecoveryCode.KEY_FILE_INVALID, f"{path}: {exc}") from None
        if found.kind not in OFFICER_KINDS:
            raise RecoveryError(RecoveryCode.KEY_FILE_INVALID, f"{path} is an {found.kind} key")
        if found.node != node_id.hex():
            raise RecoveryError(RecoveryCode.WRONG_NODE, f"{path} belongs to another node")
        if key.public in [k.public for k in keys]:
            raise RecoveryError(RecoveryCode.DUPLICATE_KEY, f"{path}: the same key twice")
        keys.append(key)
    return keys


@dataclass(frozen=True, slots=True)
class Rotated:
    state: KeyState
    next_dir: Path  # where the new next-officer key files are


@dataclass(frozen=True, slots=True)
class Recovery:
    sessions: async_sessionmaker[AsyncSession]
    keylogs: KeyLogs
    config: Config

    @property
    def keys_dir(self) -> Path:
        return self.config.data_dir / KEYS_DIR

    async def state(self) -> KeyState:
        async with self.sessions() as session:
            node_id = await envelopes.get_node_id(session)
            state = await self.keylogs.state(session, node_id)
        if state is None:  # pragma: no cover - init stores the inception with the node id
            raise RecoveryError(RecoveryCode.KEY_FILE_INVALID, "the node has no key log")
        return state

    async def delegate(self, officer_files: Sequence[Path], seal: int | None, now: int) -> KeyState:
        """A new operational key, signed by the officers in ``officer_files``."""
        state = await self.finish_pending()
        officers = load_keys(officer_files, state.node_id)
        stranger = next((k for k in officers if k.public not in state.officers), None)
        if stranger is not None:
            raise RecoveryError(
                RecoveryCode.NOT_AN_OFFICER, "a key file is not a current officer's"
            )
        _enough(len(officers), state.threshold)
        seal = await self._seal(state, seal)
        new_key = SigningKey.generate()
        event = state.delegation(op=new_key.public, seal=seal, created=now)
        signed = sign_key_event(event, officers, state)
        pending = self.keys_dir / (OPERATIONAL_KEY + NEW_SUFFIX)
        write_key_file(pending, KeyFile("operational", state.node_id.hex(), new_key.seed))
        try:
            new_state = await self._commit(signed, Signer(state.node_id, new_key), now)
        except BaseException:
            pending.unlink(missing_ok=True)
            raise
        self._install(pending, state.position)
        return new_state

    async def rotate(
        self,
        next_files: Sequence[Path],
        *,
        threshold: int | None,
        next_count: int | None,
        seal: int | None,
        now: int,
    ) -> Rotated:
        """Reveal the next officer keys in ``next_files``; commit to new ones."""
        state = await self.finish_pending()
        revealed = load_keys(next_files, state.node_id)
        committed = set(state.next)
        if any(commitment(k.public) not in committed for k in revealed):
            raise RecoveryError(
                RecoveryCode.NOT_COMMITTED, "a key file is not a committed next key"
            )
        threshold = state.threshold if threshold is None else threshold
        if not 1 <= threshold <= len(revealed):
            raise RecoveryError(
                RecoveryCode.BAD_THRESHOLD, f"need 1 <= threshold <= {len(revealed)}"
            )
        _enough(len(revealed), max(state.threshold, threshold))
        count = len(revealed) if next_count is None else next_count
        if not threshold <= count <= 16:
            raise RecoveryError(RecoveryCode.BAD_THRESHOLD, f"need {threshold} to 16 next keys")
        next_keys = [SigningKey.generate() for _ in range(count)]
        event = state.rotation(
            officers=[k.public for k in revealed], threshold=threshold,
            next_officers=[k.public for k in next_keys], seal=await self._seal(state, seal),
            created=now,
        )  # fmt: skip
        signed = sign_key_event(event, revealed)
        signer = Signer(state.node_id, SigningKey(read_key_file(self._operational).seed))
        next_dir = self._write_next_keys(state, next_keys)  # before the event commits to them
        try:
            new_state = await self._commit(signed, signer, now)
        except BaseException:
            shutil.rmtree(next_dir, ignore_errors=True)
            raise
        return Rotated(new_state, next_dir)

    @property
    def _operational(self) -> Path:
        return self.keys_dir / OPERATIONAL_KEY

    async def finish_pending(self) -> KeyState:
        """Complete a delegation interrupted after its commit (the new key is in force but
        still in ``operational.key.new``), or drop a stale one; the key state."""
        state = await self.state()
        pending = self.keys_dir / (OPERATIONAL_KEY + NEW_SUFFIX)
        if pending.exists():
            if SigningKey(read_key_file(pending).seed).public == state.op:
                self._install(pending, state.position - 1)
            else:
                pending.unlink()
        return state

    async def _seal(self, state: KeyState, seal: int | None) -> int:
        async with self.sessions() as session:
            last = await envelopes.get_last_envelope(session, state.node_id)
        last_seq = 0 if last is None else last[0]
        floor = state.events[-1].seal or 0
        seal = last_seq if seal is None else seal
        if not floor <= seal <= last_seq:
            raise RecoveryError(
                RecoveryCode.BAD_SEAL,
                f"the seal must be between {floor} (the last seal) and {last_seq} (the last "
                "envelope this node signed)",
            )
        return seal

    async def _commit(self, signed: SignedKeyEvent, signer: Signer, now: int) -> KeyState:
        """Store the event and sign a descriptor under the new state, in one transaction."""
        name, base_url = self.config.node.name, self.config.server.base_url
        async with self.sessions.begin() as session:
            state = await self.keylogs.accept(session, signer.node_id, [signed], now=now)
            wanted = docs.descriptor_for(name, base_url)
            await docs.sign_descriptor(session, signer, wanted, now)
        return state

    def _install(self, pending: Path, old_position: int) -> None:
        """Keep the old operational key as ``operational.key.old-<pos>``; put the new one
        in its place."""
        current = self._operational
        if current.exists():
            os.replace(current, current.with_name(f"{OPERATIONAL_KEY}.old-{old_position}"))
        os.replace(pending, current)

    def _write_next_keys(self, state: KeyState, keys: Sequence[SigningKey]) -> Path:
        directory = self.config.data_dir / f"officers-next-{state.position + 1}"
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            raise RecoveryError(
                RecoveryCode.KEY_FILE_INVALID, f"{directory} exists: move it away first"
            ) from None
        for number, key in enumerate(keys, start=1):
            path = directory / f"next-officer-{number}.key"
            write_key_file(path, KeyFile("next-officer", state.node_id.hex(), key.seed))
        return directory


def _enough(given: int, needed: int) -> None:
    if given < needed:
        raise RecoveryError(
            RecoveryCode.TOO_FEW, f"{given} officer key(s) given; {needed} must sign"
        )
