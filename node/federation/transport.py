"""The transport signature of a request to this node, checked on receipt (SPEC §10.6–§10.8).

:meth:`TransportVerifier.verify` takes plain values (method, URL, header map, body) and
returns the sender's node id, or raises :class:`TransportError` (HTTP 401) with the SPEC
code of the first check that failed. Steps 1-13 are ``protocol.httpsig.verify_request``;
this module adds what needs state:

* the key (§10.7): ``keyid`` names a node; its verifying key is the operational key of the
  head of that node's stored key log (:class:`~node.federation.keylogs.KeyLogs`), so a key
  replaced by a newer key event fails at step 13 as soon as the newer event is stored;
* the nonce (§10.8, step 14): recorded in the ``nonces`` table, whose primary key catches a
  replay in this process or any other on the same database. :meth:`TransportVerifier.verify`
  records it in a transaction of its own; :meth:`TransportVerifier.check` leaves it to the
  caller (:meth:`Verified.record`), which writes it first in its own write transaction (the
  inbox: in the batch's), so a replay is refused and undoes whatever it would have changed.
  An entry is kept until the request it came with can no longer pass step 8
  (``expires + max_skew``), and at least ``max_validity + max_skew`` seconds. Expired entries
  are purged by the first accepted request of each clock second in each process, at most
  ``PURGE_BATCH`` of them at a time.

The URL is the one the sender signed: this node's public base URL (``ServerConfig.base_url``)
followed by the path and query as received, never a Host or forwarding header (§10.4).
:meth:`TransportVerifier.verify_incoming` builds it from a web request for the handlers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import NodeError
from node.federation.keylogs import KeyLogs
from node.storage import nonces
from node.storage.errors import Conflict
from protocol import HttpSignatureError, KeyLogError
from protocol.httpsig import PROFILE_LABEL, VerifiedRequest, parse_signature_input, verify_request
from protocol.keys import public_key

__all__ = [
    "REPLAYED",
    "IncomingRequest",
    "TransportError",
    "TransportVerifier",
    "Verified",
    "combine_fields",
]

REPLAYED: Final = "httpsig_replayed"
_NODE_ID = re.compile(r"[0-9a-f]{64}")


class TransportError(NodeError):
    """A request whose transport signature is refused; ``code`` is the SPEC §12 code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(401, code, f"transport signature refused: {detail}")


class IncomingRequest(Protocol):
    """What :meth:`TransportVerifier.verify_incoming` reads of a web request (aiohttp's
    ``web.Request`` has it; this module does not import aiohttp)."""

    @property
    def method(self) -> str: ...

    @property
    def raw_path(self) -> str: ...  # path and query exactly as received

    @property
    def headers(self) -> Mapping[str, str]: ...  # every field line, names in any case


def combine_fields(lines: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Field lines as a map of lower-case names, repeated lines joined by ", " (RFC 9110
    §5.3), as SPEC §10.3 asks of a receiver before it verifies."""
    combined: dict[str, str] = {}
    for name, value in lines:
        key = name.lower()
        combined[key] = f"{combined[key]}, {value}" if key in combined else value
    return combined


class TransportVerifier:
    """Checks the transport signature of requests to this node, in SPEC §10.6 order."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        keylogs: KeyLogs,
        clock: Clock,
        *,
        own_node_id: bytes,
        base_url: str,
        max_skew: int = 60,
        max_validity: int = 300,
    ) -> None:
        self._sessions = sessions
        self._keylogs = keylogs
        self._clock = clock
        self._own = own_node_id.hex()
        self.base_url = base_url.rstrip("/")
        self._max_skew = max_skew
        self._max_validity = max_validity
        self._purged_at: int | None = None

    async def verify_incoming(self, request: IncomingRequest, body: bytes) -> bytes:
        """:meth:`verify` for a web request whose whole body has been read."""
        return await self.verify(
            method=request.method,
            url=self.base_url + request.raw_path,
            headers=combine_fields(request.headers.items()),
            body=body,
        )

    async def check_incoming(self, request: IncomingRequest, body: bytes) -> Verified:
        """:meth:`check` for a web request whose whole body has been read."""
        return await self.check(
            method=request.method,
            url=self.base_url + request.raw_path,
            headers=combine_fields(request.headers.items()),
            body=body,
        )

    async def verify(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> bytes:
        """The sender's node id, once every check of SPEC §10.6 has passed and the nonce is
        recorded; else :class:`TransportError`, and nothing is recorded."""
        verified = await self.check(method=method, url=url, headers=headers, body=body)
        async with self._sessions.begin() as session:  # a write first: no lock upgrade
            await verified.record(session)
        return verified.sender

    async def check(
        self, *, method: str, url: str, headers: Mapping[str, str], body: bytes
    ) -> Verified:
        """Steps 1-13 of SPEC §10.6, nothing written: the caller records the nonce (step 14,
        :meth:`Verified.record`) in its own write transaction before it changes anything
        else, so that a replay is refused and the request's effects are undone with it."""
        now = self._clock.now()
        async with self._sessions() as session:  # read only: no write lock held while verifying
            keyid, key = await self._claimed_key(session, headers)
        try:
            verified = verify_request(
                method=method, url=url, headers=headers, body=body, now=now,
                own_node_id=self._own, resolve_key=lambda k: key if k == keyid else None,
                max_skew=self._max_skew, max_validity=self._max_validity,
            )  # fmt: skip
        except HttpSignatureError as exc:
            raise TransportError(exc.code, str(exc)) from exc
        return Verified(self, verified, now)

    async def _claimed_key(
        self, session: AsyncSession, headers: Mapping[str, str]
    ) -> tuple[str, Ed25519PublicKey | None]:
        """The ``keyid`` the ``tadamun`` signature names and that node's current operational
        key, or None (unknown node, unreadable header: verify_request reports the step)."""
        keyid = _claimed_keyid(headers)
        if keyid is None:
            return "", None
        try:
            state = await self._keylogs.state(session, bytes.fromhex(keyid))
        except KeyLogError:
            return keyid, None  # a stored log that does not verify is no verified log (§10.7)
        return keyid, None if state is None else public_key(state.op)

    async def _record_nonce(self, session: AsyncSession, req: VerifiedRequest, now: int) -> None:
        keep_until = max(req.expires + self._max_skew, now + self._max_validity + self._max_skew)
        try:
            await nonces.put_nonce(session, bytes.fromhex(req.keyid), req.nonce, keep_until)
        except Conflict as exc:
            raise TransportError(REPLAYED, "this nonce was used before") from exc
        if self._purged_at != now:  # a purge costs as much as the insert: once a second
            await nonces.delete_expired_nonces(session, now)
            self._purged_at = now


class Verified:
    """A request whose signature passed (steps 1-13), its nonce not yet recorded."""

    __slots__ = ("_now", "_request", "_verifier", "sender")

    def __init__(self, verifier: TransportVerifier, request: VerifiedRequest, now: int) -> None:
        self._verifier, self._request, self._now = verifier, request, now
        self.sender = bytes.fromhex(request.keyid)

    async def record(self, session: AsyncSession) -> None:
        """Step 14 in the caller's write transaction: record the nonce, or raise
        :class:`TransportError` (``httpsig_replayed``; the transaction is then spoilt and
        must be rolled back). The table's primary key is the guard, in every process."""
        await self._verifier._record_nonce(session, self._request, self._now)


def _claimed_keyid(headers: Mapping[str, str]) -> str | None:
    """The node id in the ``keyid`` of the ``tadamun`` signature, read leniently: only to
    know which key log to load. verify_request reads the same header strictly."""
    lines = [value for name, value in headers.items() if name.lower() == "signature-input"]
    if len(lines) != 1:
        return None
    try:
        params = parse_signature_input(lines[0].strip(" \t")).get(PROFILE_LABEL)
    except HttpSignatureError:
        return None
    keyid = None if params is None else params.value("keyid")
    return keyid if isinstance(keyid, str) and _NODE_ID.fullmatch(keyid) else None
