"""Transport signatures checked on receipt (node.federation.transport, SPEC §10.6-§10.8), on
SQLite and PostgreSQL: the sender's key from its stored key log, every refusal with its SPEC
code and nothing recorded, replayed nonces refused (also by another process on the same
database), how long nonces are kept, keys replaced by delegation, and a real aiohttp
endpoint reached by the federation client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from node.clock import FakeClock
from node.config import FederationConfig
from node.federation.client import FederationClient
from node.federation.keylogs import KeyLogs
from node.federation.transport import TransportError, TransportVerifier, combine_fields
from node.identity import Identity, new_identity
from node.services.signer import Signer
from node.storage import nonces
from node.storage.db import create_engine, session_factory, upgrade
from protocol import SigningKey, digest, sign_key_event
from protocol.httpsig import sign_request

START = 1_800_000_000
RECEIVER = digest(b"receiving node")
BASE = "https://union.example"
INBOX = "/federation/v1/inbox"
BODY = b"\x81\xa4type\xa4ping"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def signed(
    identity: Identity,
    *,
    key: SigningKey | None = None,
    url: str = BASE + INBOX,
    body: bytes = BODY,
    created: int = START,
    validity: int = 300,
    nonce: str = "nonce-0123456789abcdef",
    destination: bytes = RECEIVER,
) -> Request:
    """A request as ``identity``'s node sends it (with its operational key unless ``key``)."""
    headers = sign_request(
        method="POST", url=url, body=body, key=(key or identity.operational).private_key(),
        keyid=identity.state.node_id.hex(), destination=destination.hex(), created=created,
        expires=created + validity, nonce=nonce, extra_headers={"Content-Type": "x/y"},
    )  # fmt: skip
    return Request("POST", url, headers, body)


@dataclass
class Receiver:
    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    clock: FakeClock
    verifier: TransportVerifier
    sender: Identity

    async def verify(self, request: Request, verifier: TransportVerifier | None = None) -> bytes:
        return await (verifier or self.verifier).verify(
            method=request.method, url=request.url, headers=request.headers, body=request.body
        )

    async def refused(self, request: Request, code: str, **kw: Any) -> TransportError:
        with pytest.raises(TransportError) as caught:
            await self.verify(request, **kw)
        assert caught.value.code == code, caught.value
        assert caught.value.status == 401
        return caught.value

    async def nonce_count(self) -> int:
        async with self.sessions() as session:
            return await nonces.count_nonces(session)

    async def store_log(self, identity: Identity, *events: Any) -> None:
        async with self.sessions.begin() as session:
            await KeyLogs().accept(
                session, identity.state.node_id, [identity.inception, *events], now=START
            )

    def verifier_on(self, engine: AsyncEngine) -> TransportVerifier:
        """Another process's verifier: its own engine, its own key-log cache."""
        return TransportVerifier(
            session_factory(engine), KeyLogs(), self.clock, own_node_id=RECEIVER, base_url=BASE
        )


@pytest.fixture
async def receiver(engine: AsyncEngine) -> Receiver:
    await upgrade(engine)
    sessions = session_factory(engine)
    clock = FakeClock(START)
    verifier = TransportVerifier(
        sessions, KeyLogs(), clock, own_node_id=RECEIVER, base_url=BASE + "/"
    )
    node = Receiver(engine, sessions, clock, verifier, new_identity(1, 1, START))
    await node.store_log(node.sender)
    return node


@pytest.fixture
async def other_process(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_valid_request_names_its_sender(receiver: Receiver) -> None:
    assert await receiver.verify(signed(receiver.sender)) == receiver.sender.state.node_id
    assert await receiver.nonce_count() == 1


async def test_the_skew_window_edges_are_accepted(receiver: Receiver) -> None:
    sender = receiver.sender
    await receiver.verify(signed(sender, created=START + 60, nonce="future-edge-0000001"))
    await receiver.verify(signed(sender, created=START - 360, nonce="past-edge-000000001"))


Tamper = Callable[[Identity], Request]
STRANGER = new_identity(1, 1, START)  # a node whose key log the receiver does not hold


def _with(request: Request, **changes: Any) -> Request:
    return replace(request, **changes)


def _field(request: Request, name: str, value: str | None) -> Request:
    """``request`` with header ``name`` set to ``value``, or removed if None."""
    headers = {k: v for k, v in request.headers.items() if k != name}
    return replace(request, headers=headers | ({} if value is None else {name: value}))


def _input(request: Request, old: str, new: str) -> Request:
    return _field(request, "Signature-Input", request.headers["Signature-Input"].replace(old, new))


def _digest_of(body: bytes) -> str:
    return signed(STRANGER, body=body).headers["Content-Digest"]


REFUSALS: dict[str, tuple[Tamper, str]] = {
    "tampered-body": (lambda s: _with(signed(s), body=BODY + b"!"), "httpsig_bad_digest"),
    "body-and-digest-replaced": (
        lambda s: _field(_with(signed(s), body=b"\x80"), "Content-Digest", _digest_of(b"\x80")),
        "httpsig_bad_signature",
    ),
    "other-path": (
        lambda s: _with(signed(s), url=BASE + "/federation/v1/peering"),
        "httpsig_bad_signature",
    ),
    "query-added": (
        lambda s: _with(signed(s), url=BASE + INBOX + "?all=1"),
        "httpsig_bad_signature",
    ),
    "signed-for-another-host": (
        lambda s: _with(signed(s, url="https://other.example" + INBOX), url=BASE + INBOX),
        "httpsig_bad_signature",
    ),
    "other-method": (lambda s: _with(signed(s), method="PUT"), "httpsig_bad_signature"),
    "other-destination": (
        lambda s: signed(s, destination=digest(b"another node")),
        "httpsig_wrong_target",
    ),
    "destination-rewritten": (
        lambda s: _field(
            signed(s, destination=digest(b"x")), "Tadamun-Destination", RECEIVER.hex()
        ),
        "httpsig_bad_signature",
    ),
    "expired": (lambda s: signed(s, created=START - 361), "httpsig_expired"),
    "long-expired": (lambda s: signed(s, created=START - 86_400), "httpsig_expired"),
    "from-future": (lambda s: signed(s, created=START + 61), "httpsig_from_future"),
    "validity-too-long": (lambda s: signed(s, validity=301), "httpsig_malformed"),
    "unknown-keyid": (lambda _s: signed(STRANGER), "httpsig_unknown_key"),
    "keyid-swapped": (
        lambda s: _input(signed(s), s.state.node_id.hex(), STRANGER.state.node_id.hex()),
        "httpsig_unknown_key",
    ),
    "wrong-key-for-keyid": (lambda s: signed(s, key=STRANGER.operational), "httpsig_bad_signature"),
    "officer-key-for-keyid": (lambda s: signed(s, key=s.officers[0]), "httpsig_bad_signature"),
    "signature-removed": (lambda s: _field(signed(s), "Signature", None), "httpsig_missing"),
    "digest-removed": (lambda s: _field(signed(s), "Content-Digest", None), "httpsig_missing"),
    "no-headers": (lambda s: _with(signed(s), headers={}), "httpsig_missing"),
    "nonce-too-short": (
        lambda s: _input(signed(s), "nonce-0123456789abcdef", "short"),
        "httpsig_malformed",
    ),
    "garbage-signature-input": (
        lambda s: _field(signed(s), "Signature-Input", "tadamun=("),
        "httpsig_malformed",
    ),
    "signature-input-twice": (
        lambda s: _field(signed(s), "signature-input", signed(s).headers["Signature-Input"]),
        "httpsig_malformed",
    ),
    "bad-target-uri": (
        lambda s: _with(signed(s), url="ftp://union.example" + INBOX),
        "httpsig_malformed",
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
async def test_each_refusal_has_its_code_and_records_nothing(receiver: Receiver, case: str) -> None:
    make, code = REFUSALS[case]
    error = await receiver.refused(make(receiver.sender), code)
    assert error.message.startswith("transport signature refused")
    assert await receiver.nonce_count() == 0
    # The genuine request with the same nonce is still accepted afterwards.
    assert await receiver.verify(signed(receiver.sender)) == receiver.sender.state.node_id


async def test_a_replayed_request_is_refused(receiver: Receiver) -> None:
    request = signed(receiver.sender)
    await receiver.verify(request)
    await receiver.refused(request, "httpsig_replayed")
    # The same nonce in a new, validly signed request is a replay too.
    await receiver.refused(signed(receiver.sender, body=b"\xc0"), "httpsig_replayed")
    assert await receiver.nonce_count() == 1


async def test_a_replay_to_another_process_is_refused(
    receiver: Receiver, other_process: AsyncEngine
) -> None:
    request = signed(receiver.sender)
    await receiver.verify(request)
    await receiver.refused(
        request, "httpsig_replayed", verifier=receiver.verifier_on(other_process)
    )


async def test_concurrent_copies_are_accepted_once(
    receiver: Receiver, other_process: AsyncEngine
) -> None:
    verifiers = [receiver.verifier, receiver.verifier_on(other_process)]
    request = signed(receiver.sender)

    async def attempt(i: int) -> str:
        try:
            await receiver.verify(request, verifiers[i % 2])
        except TransportError as exc:
            return exc.code
        return "ok"

    outcomes = await asyncio.wait_for(asyncio.gather(*(attempt(i) for i in range(8))), 60)
    assert sorted(outcomes) == ["httpsig_replayed"] * 7 + ["ok"]
    assert await receiver.nonce_count() == 1


async def test_a_nonce_is_per_sender(receiver: Receiver) -> None:
    other = new_identity(1, 1, START)
    await receiver.store_log(other)
    await receiver.verify(signed(receiver.sender))
    assert await receiver.verify(signed(other)) == other.state.node_id
    assert await receiver.nonce_count() == 2


async def test_nonces_outlive_the_requests_they_came_with(receiver: Receiver) -> None:
    sender = receiver.sender
    now_dated = signed(sender, nonce="now-dated-000000001")
    future_dated = signed(sender, created=START + 60, nonce="future-dated-000001")
    await receiver.verify(now_dated)
    await receiver.verify(future_dated)
    receiver.clock.advance(360)  # now_dated expires + skew: the last second it could pass
    await receiver.refused(now_dated, "httpsig_replayed")
    receiver.clock.advance(1)
    await receiver.refused(now_dated, "httpsig_expired")
    receiver.clock.advance(59)  # START + 420: future_dated's last second
    await receiver.refused(future_dated, "httpsig_replayed")
    receiver.clock.advance(1)
    await receiver.refused(future_dated, "httpsig_expired")
    assert await receiver.nonce_count() == 2
    await receiver.verify(signed(sender, created=START + 421, nonce="fresh-0000000000001"))
    assert await receiver.nonce_count() == 1  # both expired entries purged by that request


async def test_purging_is_bounded_and_once_a_second(receiver: Receiver) -> None:
    keyid = receiver.sender.state.node_id

    async def put_expired(count: int, prefix: str) -> None:
        async with receiver.sessions.begin() as session:
            for i in range(count):
                await nonces.put_nonce(session, keyid, f"{prefix}-{i:016d}", START - 1)

    await put_expired(nonces.PURGE_BATCH + 8, "old")
    async with receiver.sessions.begin() as session:
        await nonces.put_nonce(session, keyid, "not-yet-expired-0001", START)
    await receiver.verify(signed(receiver.sender, nonce="first-of-the-second"))
    assert await receiver.nonce_count() == 8 + 1 + 1  # one batch purged
    await receiver.verify(signed(receiver.sender, nonce="second-in-the-second"))
    assert await receiver.nonce_count() == 8 + 1 + 2  # no purge again in the same second
    receiver.clock.advance(1)
    await receiver.verify(signed(receiver.sender, nonce="in-the-next-second-1"))
    assert await receiver.nonce_count() == 3  # the rest, and not-yet-expired, purged
    async with receiver.sessions.begin() as session:
        assert await nonces.delete_expired_nonces(session, START + 1) == 0
        assert await nonces.delete_expired_nonces(session, START + 361) == 2  # kept to +360
        await nonces.put_nonce(session, keyid, "first-of-the-second", START)
        assert await nonces.delete_expired_nonces(session, START + 500, limit=0) == 0
        assert await nonces.delete_expired_nonces(session, START + 500, limit=5) == 2


async def test_a_delegated_key_replaces_the_old_one(
    receiver: Receiver, other_process: AsyncEngine
) -> None:
    sender = receiver.sender
    await receiver.verify(signed(sender, nonce="before-delegation-01"))  # caches the state
    new_key = SigningKey.generate()
    event = sender.state.delegation(op=new_key.public, seal=0, created=START + 10)
    delegation = sign_key_event(event, sender.officers, sender.state)
    # Another process learns of the delegation: this one's cached state must not be used.
    async with session_factory(other_process).begin() as session:
        await KeyLogs().accept(session, sender.state.node_id, [delegation], now=START + 10)
    await receiver.refused(signed(sender, nonce="old-key-after-0001"), "httpsig_bad_signature")
    assert await receiver.verify(signed(sender, key=new_key, nonce="new-key-000000001")) == (
        sender.state.node_id
    )
    assert await receiver.nonce_count() == 2  # the refused request recorded nothing


def test_repeated_field_lines_are_combined() -> None:
    lines = [("Accept", "a"), ("X-Thing", "1"), ("accept", "b"), ("x-thing", "2"), ("Host", "h")]
    assert combine_fields(lines) == {"accept": "a, b", "x-thing": "1, 2", "host": "h"}


# --- through a real endpoint --------------------------------------------------------------------


@pytest.fixture
async def endpoint(receiver: Receiver) -> AsyncIterator[TransportVerifier]:
    """A federation inbox on 127.0.0.1 whose handler calls ``verify_incoming``."""
    verifiers: list[TransportVerifier] = []

    async def inbox(request: web.Request) -> web.Response:
        try:
            sender = await verifiers[0].verify_incoming(request, await request.read())
        except TransportError as exc:
            return web.json_response({"error": exc.code, "detail": exc.message}, status=401)
        return web.json_response({"sender": sender.hex()})

    app = web.Application()
    app.router.add_post(INBOX, inbox)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    base = f"http://127.0.0.1:{server.port}"
    verifiers.append(
        TransportVerifier(receiver.sessions, KeyLogs(), receiver.clock, own_node_id=RECEIVER,
                          base_url=base)
    )  # fmt: skip
    try:
        yield verifiers[0]
    finally:
        await server.close()


async def test_the_client_reaches_a_verifying_endpoint(
    receiver: Receiver, endpoint: TransportVerifier
) -> None:
    verifier = endpoint
    sender = receiver.sender
    config = FederationConfig(allow_networks=("127.0.0.0/8",))
    signer = Signer(sender.state.node_id, sender.operational)
    async with FederationClient(config, signer, receiver.clock) as client:
        for path in (INBOX, INBOX + "?page=2&x=%2F"):
            url = verifier.base_url + path
            answer = await client.post(url, BODY, destination=RECEIVER)
            assert (answer.status, answer.body) == (200, b'{"sender": "%s"}' % (
                sender.state.node_id.hex().encode()))  # fmt: skip
        answer = await client.post(url, BODY, destination=digest(b"someone else"))
        assert (answer.status, b"httpsig_wrong_target" in answer.body) == (401, True)
    assert await receiver.nonce_count() == 2


async def test_an_endpoint_ignores_the_host_header_and_refuses_replays(
    receiver: Receiver, endpoint: TransportVerifier
) -> None:
    verifier = endpoint
    url = verifier.base_url + INBOX
    request = signed(receiver.sender, url=url)
    forged_host = signed(receiver.sender, url="https://union.example" + INBOX, nonce="n" * 16)
    async with aiohttp.ClientSession() as http:

        async def post(r: Request, extra: dict[str, str]) -> tuple[int, Any]:
            async with http.post(url, data=r.body, headers=r.headers | extra) as answer:
                return answer.status, await answer.json()

        assert (await post(request, {"Host": "evil.example"}))[0] == 200
        assert await post(request, {}) == (401, {
            "error": "httpsig_replayed", "detail": "transport signature refused: "
            "this nonce was used before"})  # fmt: skip
        # Signed for the URL a Host header claims, not for where it arrived: refused.
        status, body = await post(forged_host, {"Host": "union.example"})
        assert (status, body["error"]) == (401, "httpsig_bad_signature")
