"""Hostile and careless peering requests against a real node, on SQLite and PostgreSQL: each
is refused with its status and stable code, and changes nothing but the bounded contact log
(and the nonce cache, for requests whose transport signature held, SPEC §10.8)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from peering_support import (
    CLI,
    FedNode,
    MakeDatabase,
    document,
    envelope,
    fed_nodes,
    make_database,
    post,
)

from node.federation.invite_codes import InviteCode, decode_invite, invite_secret
from node.federation.peering import MAX_PEERING_BODY, PEERING_PATH
from protocol import SignedKeyEvent, SigningKey, encode, peering_proof
from protocol.httpsig import sign_request

__all__ = ["make_database"]


@dataclass
class Joiner:
    """What a joiner sends: its parts can be spoilt one at a time."""

    node: FedNode
    inviter: FedNode
    code: InviteCode
    proof: bytes | None = None
    audience: str | None = None
    type_: str = "peer.introduce"
    keys: list[bytes] | None = None
    descriptor: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> bytes:
        node = self.node
        descriptor = envelope(node, "node.descriptor", {
            "name": {"und": node.name}, "endpoints": [node.url]})  # fmt: skip
        proof = self.proof or peering_proof(self.code.secret, self.inviter.node_id, node.node_id)
        introduce = {"inviter": self.inviter.node_id, "invite": self.code.invite,
                     "proof": proof, "endpoint": node.url}  # fmt: skip
        signed = envelope(
            node, self.type_, introduce, seq=2, prev=descriptor.id,
            audience=self.audience or f"node:{self.inviter.node_id.hex()}",
        )  # fmt: skip
        keys = self.keys or [node.identity.inception.to_bytes()]
        value = {"envelope": signed.to_bytes(), "keys": keys,
                 "descriptor": self.descriptor or descriptor.to_bytes()}  # fmt: skip
        return document(value | self.extra)


def signed_headers(
    sender: FedNode,
    receiver: FedNode,
    body: bytes,
    *,
    key: SigningKey | None = None,
    destination: bytes | None = None,
    created: int | None = None,
) -> dict[str, str]:
    created = sender.clock.now() if created is None else created
    return sign_request(
        method="POST", url=receiver.url + PEERING_PATH, body=body,
        key=(key or sender.identity.operational).private_key(),
        keyid=sender.node_id.hex(), destination=(destination or receiver.node_id).hex(),
        created=created, expires=created + 300, nonce=secrets.token_urlsafe(16),
    )  # fmt: skip


async def refused_and_unchanged(
    inviter: FedNode,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    what: str = "",
    **kw: Any,
) -> None:
    before = await inviter.snapshot()
    contacts = len(await inviter.contacts())
    answer = await post(inviter.url + PEERING_PATH, body, headers, **kw)
    assert answer[0] == status, (what, answer)
    assert answer[1]["error"] == code, (what, answer)
    assert isinstance(answer[1]["detail"], str)
    assert await inviter.snapshot() == before, code
    assert len(await inviter.contacts()) == contacts + 1
    assert (await inviter.contacts())[-1][1] == code


async def test_hostile_peering_requests(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta", "gamma") as nodes:
        alpha, beta, gamma = nodes
        made = await alpha.peering.create_invite(CLI, hours=1)
        code = decode_invite(made["invite"])

        def joiner(**spoilt: Any) -> Joiner:
            return Joiner(beta, alpha, code, **spoilt)

        def signed(body: bytes, **kw: Any) -> dict[str, str]:
            return signed_headers(beta, alpha, body, **kw)

        good = joiner().body()
        forged_log = SignedKeyEvent.from_bytes(beta.identity.inception.to_bytes())
        bad_sig = bytes([forged_log.sigs[0][1][0] ^ 1]) + forged_log.sigs[0][1][1:]
        forged = SignedKeyEvent(forged_log.event, ((forged_log.sigs[0][0], bad_sig),))
        cases: list[tuple[str, bytes, dict[str, str], int, str]] = [
            ("unsigned", good, {}, 401, "httpsig_missing"),
            ("signed by a key not in the log", good,
             signed(good, key=SigningKey.generate()), 401, "httpsig_bad_signature"),
            ("signed for another node", good, signed(good, destination=gamma.node_id), 401,
             "httpsig_wrong_target"),
            ("from the future", good, signed(good, created=alpha.clock.now() + 3600), 401,
             "httpsig_from_future"),
            ("malformed", b"\xc1", {}, 400, "malformed"),
            ("not canonical", b"\x82\xa1b\x01\xa1a\x01", {}, 400, "unsorted_keys"),
            ("trailing bytes", good + b"\x00", {}, 400, "trailing_bytes"),
            ("not a map", encode([1, 2]), {}, 400, "malformed"),
        ]  # fmt: skip
        for name, spoilt in {
            "unknown field": joiner(extra={"colour": "red"}),
            "forged key log": joiner(keys=[forged.to_bytes()]),
            "another node's key log": joiner(keys=[gamma.identity.inception.to_bytes()]),
            "not an introduction": joiner(type_="org.example.thing.hello"),
            "for another node": joiner(audience=f"node:{gamma.node_id.hex()}"),
            "wrong proof": joiner(proof=bytes(32)),
            "unknown invite": Joiner(beta, alpha, InviteCode(
                code.endpoint, code.node, bytes(16), code.secret)),
            "another node's descriptor": joiner(descriptor=_descriptor_of(gamma)),
        }.items():  # fmt: skip
            body = spoilt.body()
            cases.append((name, body, signed(body), *EXPECTED[name]))
        for name, body, headers, status, code_ in cases:
            await refused_and_unchanged(alpha, body, headers, status, code_, name)

        big = b"\x00" * (MAX_PEERING_BODY + 1)
        await refused_and_unchanged(alpha, big, {}, 413, "too_large")
        await refused_and_unchanged(alpha, good, signed(good), 415, "unsupported_media_type",
                                    content_type="application/json")  # fmt: skip

        # The real thing, once; then its replay, and a fresh request for the used invite.
        headers = signed(good)
        status, answer = await post(alpha.url + PEERING_PATH, good, headers)
        assert status == 200, answer
        assert set(answer) == {"keys", "descriptor"}
        await refused_and_unchanged(alpha, good, headers, 401, "httpsig_replayed")
        await refused_and_unchanged(alpha, good, signed(good), 403, "invite_used")


async def test_an_expired_invite(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        made = await alpha.peering.create_invite(CLI, hours=2)
        code = decode_invite(made["invite"])
        assert code.secret == invite_secret(alpha.peering.secrets, code.invite)
        alpha.clock.advance(2 * 3600)
        body = Joiner(beta, alpha, code).body()
        headers = signed_headers(beta, alpha, body)
        await refused_and_unchanged(alpha, body, headers, 403, "invite_expired")


EXPECTED: dict[str, tuple[int, str]] = {
    "unknown field": (400, "malformed"),
    "forged key log": (400, "keylog_bad_signature"),
    "another node's key log": (401, "httpsig_unknown_key"),
    "not an introduction": (400, "invalid_field"),
    "for another node": (400, "not_for_us"),
    "wrong proof": (403, "bad_proof"),
    "unknown invite": (403, "invalid_invite"),
    "another node's descriptor": (400, "origin_mismatch"),
}


def _descriptor_of(node: FedNode) -> bytes:
    return envelope(node, "node.descriptor", {"name": {"und": "x"}, "endpoints": [node.url]})\
        .to_bytes()  # fmt: skip


async def test_the_well_known_document_needs_no_signature(
    tmp_path: Path, make_database: MakeDatabase
) -> None:
    url = "/.well-known/tadamun"
    async with fed_nodes(tmp_path, make_database, "alpha") as (alpha,):
        async with aiohttp.ClientSession() as http, http.post(alpha.url + url) as response:
            assert response.status == 405  # only GET
        async with aiohttp.ClientSession() as http, http.get(alpha.url + url) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
