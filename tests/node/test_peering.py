"""Peering by invite between two real nodes over HTTP on 127.0.0.1, on SQLite and PostgreSQL:
the well-known document, the invite string, a join that leaves both sides allied with each
other's key log, name and fingerprint, the alliances both sides sign, invites that are used,
revoked or expired, block/unblock/remove and the way back with a new invite, and the
descriptor signed when the node starts."""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from peering_support import CLI, START, FedNode, MakeDatabase, fed_nodes, make_database, peer_up
from sqlalchemy import func, select

from node.config import NodeConfig
from node.errors import NodeError
from node.federation.descriptors import check_descriptor, parse_document
from node.federation.invite_codes import (
    InviteCode,
    InviteCodeError,
    decode_invite,
    encode_invite,
    invite_secret,
)
from node.federation.peering import PeeringError
from node.storage.models import AuditEntry, OutboxEntry, Peer, PeerInvite
from protocol import (
    KeyState,
    NodeDescriptor,
    PeerAlliance,
    PeerIntroduce,
    fingerprint,
    parse_body,
    peering_proof,
)

__all__ = ["make_database"]  # the fixture, imported so pytest finds it


async def well_known(node: FedNode) -> bytes:
    async with aiohttp.ClientSession() as http, http.get(node.url + "/.well-known/tadamun") as r:
        assert r.status == 200
        assert r.content_type == "application/msgpack"
        return await r.read()


async def refused(call: Awaitable[object], code: str, remote: str = "") -> NodeError:
    """``call`` fails with ``code``; a join the inviter refused names its code too."""
    with pytest.raises(NodeError) as caught:
        await call
    assert caught.value.code == code, caught.value
    assert remote in caught.value.message
    return caught.value


async def audit_actions(node: FedNode) -> list[tuple[str, str]]:
    async with node.sessions() as session:
        rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(row.actor, row.action) for row in rows]


async def outbox_count(node: FedNode) -> int:
    async with node.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxEntry)) or 0)


async def test_the_well_known_document(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha") as (alpha,):
        document = parse_document(await well_known(alpha))
        assert document.node == alpha.node_id
        state = KeyState.from_log(document.keys)
        assert state.node_id == alpha.node_id
        assert document.descriptor is not None
        descriptor = check_descriptor(document.descriptor, state, START)
        assert descriptor == NodeDescriptor(
            name={"und": "alpha"}, endpoints=(alpha.url,), langs=("ar", "ckb", "en"),
            caps=("tadamun.v1",),
        )  # fmt: skip


async def test_two_nodes_peer_by_invite(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        made = await alpha.peering.create_invite(CLI, hours=24)
        assert made["fingerprint"] == fingerprint(alpha.node_id)
        assert made["state"] == "usable"
        assert made["expires_at"] == START + 24 * 3600
        code = decode_invite(made["invite"])
        assert (code.endpoint, code.node, code.invite.hex()) == (alpha.url, alpha.node_id,
                                                               made["id"])  # fmt: skip

        view = await beta.peering.join(CLI, made["invite"])
        assert view["fingerprint"] == fingerprint(alpha.node_id)  # what beta's admin compares
        assert (view["node"], view["name"], view["state"]) == (alpha.node_id.hex(), "alpha",
                                                               "allied")  # fmt: skip

        for here, there in ((alpha, beta), (beta, alpha)):
            peer = await here.peer(there.node_id)
            assert peer is not None
            assert (peer.state, peer.they_allied, peer.name, peer.endpoint) == (
                "allied", True, there.name, there.url,
            )  # fmt: skip
            [alliance] = await here.envelopes_of("peer.alliance")
            assert alliance.envelope.audience == "allies"
            assert parse_body("peer.alliance", alliance.envelope.body) == PeerAlliance(
                there.node_id, "allied"
            )
            assert await here.contacts() == []
        # Each side holds the other's key log now, so requests between them verify.
        async with alpha.sessions() as session:
            assert await alpha.peering.keylogs.state(session, beta.node_id) is not None
        [introduce] = await beta.envelopes_of("peer.introduce")
        body = parse_body("peer.introduce", introduce.envelope.body)
        assert isinstance(body, PeerIntroduce)
        secret = invite_secret(alpha.peering.secrets, code.invite)
        assert body.proof == peering_proof(secret, alpha.node_id, beta.node_id)
        assert introduce.envelope.audience == f"node:{alpha.node_id.hex()}"

        [invite] = await alpha.peering.invites()
        assert (invite["state"], invite["used_by"]) == ("used", beta.node_id.hex())
        assert ("cli", "peer.invite.create") in await audit_actions(alpha)
        assert ("federation", "peer.accept") in await audit_actions(alpha)
        assert ("cli", "peer.join") in await audit_actions(beta)
        listed = await alpha.peer_admin.list()
        assert [(p["node"], p["state"]) for p in listed] == [(beta.node_id.hex(), "allied")]


SPEC_EXAMPLE = (  # SPEC §14.6
    "tadamun-peer:haFltWh0dHBzOi8vdW5pb24uZXhhbXBsZaFpxBAAAAAAAAAAAAAAAAAAAAAAoW7EIAAAAAAAAAAAAAAA"
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAoXPEIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4foXYB"
)


async def test_invite_strings_are_strict() -> None:
    code = InviteCode("https://union.example", bytes(32), bytes(16), bytes(range(32)))
    text = encode_invite(code)
    assert text == SPEC_EXAMPLE
    assert decode_invite(f"  {text}\n") == code
    assert "=" not in text
    for bad in (
        "", "tadamun-peer:", text.replace("tadamun-peer:", "tadamun:"), text + "A", text[:-3],
        text + "=", "tadamun-peer:" + "A" * 3000, "tadamun-peer:!!!!",
    ):  # fmt: skip
        with pytest.raises(InviteCodeError):
            decode_invite(bad)
    with pytest.raises(InviteCodeError, match="URL"):
        InviteCode("ftp://union.example", bytes(32), bytes(16), bytes(32))


async def test_refused_joins_change_nothing(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        made = await alpha.peering.create_invite(CLI)
        code = decode_invite(made["invite"])
        cases = {
            "wrong secret": (InviteCode(code.endpoint, code.node, code.invite, bytes(32)),
                             "peering_refused"),
            "unknown invite": (InviteCode(code.endpoint, code.node, bytes(16), code.secret),
                               "peering_refused"),
            "another node's id": (InviteCode(code.endpoint, beta.node_id, code.invite,
                                             code.secret), "invalid_invite"),
            "another node": (InviteCode(code.endpoint, bytes(range(32)), code.invite,
                                        code.secret), "peer_wrong_node"),
        }  # fmt: skip
        before = await beta.snapshot(skip=("key_events", "envelopes", "contact_log", "nonces"))
        for case, (forged, expected) in cases.items():
            with pytest.raises(NodeError) as refused:
                await beta.peering.join(CLI, encode_invite(forged))
            assert refused.value.code == expected, case
        assert await beta.peer(alpha.node_id) is None
        after = await beta.snapshot(skip=("key_events", "envelopes", "contact_log", "nonces"))
        assert after == before
        codes = [code for _, code in await alpha.contacts()]
        assert codes == ["bad_proof", "invalid_invite"]
        assert isinstance(refused.value, PeeringError)


async def test_used_expired_and_revoked_invites(
    tmp_path: Path, make_database: MakeDatabase
) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta", "gamma") as nodes:
        alpha, beta, gamma = nodes
        made = await alpha.peering.create_invite(CLI, hours=1)
        await beta.peering.join(CLI, made["invite"])
        await refused(gamma.peering.join(CLI, made["invite"]), "peering_refused", "invite_used")

        expiring = await alpha.peering.create_invite(CLI, hours=1)
        alpha.clock.advance(3600)
        await refused(
            gamma.peering.join(CLI, expiring["invite"]), "peering_refused", "invite_expired"
        )

        revoked = await alpha.peering.create_invite(CLI)
        await alpha.peering.revoke_invite(CLI, bytes.fromhex(revoked["id"]))
        await refused(
            gamma.peering.join(CLI, revoked["invite"]), "peering_refused", "invalid_invite"
        )
        await refused(alpha.peering.revoke_invite(CLI, bytes.fromhex(revoked["id"])), "not_found")

        assert await gamma.peer(alpha.node_id) is None  # every failed join undone
        assert await alpha.peer(gamma.node_id) is None
        states = {i["id"]: i["state"] for i in await alpha.peering.invites()}
        assert states == {made["id"]: "used", expiring["id"]: "expired"}
        async with alpha.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(PeerInvite)) == 2


async def test_block_unblock_remove_and_back(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        await peer_up(alpha, beta)
        beta_hex = beta.node_id.hex()
        admin = alpha.peer_admin
        assert (await admin.change(CLI, beta_hex[:6], "block"))["state"] == "blocked"
        await refused(admin.change(CLI, beta_hex, "block"), "invalid_transition")
        # A blocked node cannot come back through a new invite either.
        await refused(peer_up(alpha, beta), "peering_refused", "blocked")
        assert (await alpha.peer(beta.node_id)).state == "blocked"  # type: ignore[union-attr]
        by_fingerprint = fingerprint(beta.node_id)
        assert (await admin.change(CLI, by_fingerprint, "unblock"))["state"] == "allied"
        removed = await admin.change(CLI, by_fingerprint.replace(" ", ""), "remove")
        assert (removed["state"], removed["they_allied"]) == ("removed", False)
        assert removed["delivery"]["pending"] == 0
        ended = await alpha.envelopes_of("peer.alliance")
        assert [parse_body(e.envelope.type, e.envelope.body) for e in ended] == [
            PeerAlliance(beta.node_id, "allied"), PeerAlliance(beta.node_id, "ended"),
        ]  # fmt: skip
        for action in ("block", "unblock", "remove"):
            await refused(admin.change(CLI, beta_hex, action), "invalid_transition")
        await refused(admin.change(CLI, "ff" * 32, "block"), "not_found")
        await refused(admin.change(CLI, "not hex", "block"), "not_found")
        await refused(admin.change(CLI, "", "block"), "not_found")
        async with alpha.sessions.begin() as session:
            for node in (bytes([0xAB] * 32), bytes([0xAB, 0xCD] * 16)):
                session.add(Peer(node_id=node, endpoint="https://x.example", state="allied",
                                 created_at=START, updated_at=START))  # fmt: skip
        await refused(admin.change(CLI, "AB", "block"), "ambiguous_peer")
        assert (await admin.change(CLI, "abcd", "block"))["state"] == "blocked"

        await peer_up(alpha, beta)  # a new invite brings it back
        assert (await alpha.peer(beta.node_id)).state == "allied"  # type: ignore[union-attr]
        actions = [action for _, action in await audit_actions(alpha)]
        assert [a for a in actions if a.startswith("peer.") and "invite" not in a] == [
            "peer.accept", "peer.block", "peer.unblock", "peer.remove", "peer.block",
            "peer.accept",
        ]  # fmt: skip


async def test_the_descriptor_follows_the_configuration(
    tmp_path: Path, make_database: MakeDatabase
) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha") as (alpha,):
        [first] = await alpha.envelopes_of("node.descriptor")
        assert await alpha.peering.publish_descriptor() == first.to_bytes()  # unchanged
        assert len(await alpha.envelopes_of("node.descriptor")) == 1
        config = replace(alpha.config, node=NodeConfig(name="alpha union"))
        await replace(alpha.peering, config=config).publish_descriptor()
        descriptors = await alpha.envelopes_of("node.descriptor")
        assert len(descriptors) == 2
        body = parse_body("node.descriptor", descriptors[-1].envelope.body)
        assert isinstance(body, NodeDescriptor)
        assert body.name == {"und": "alpha union"}
        assert await outbox_count(alpha) == 0  # no peers yet: nothing to deliver


async def test_the_admin_api(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        on_alpha, on_beta = await alpha.admin_headers(), await beta.admin_headers()
        status, made = await alpha.api("POST", "/peer-invites", on_alpha, {"expires_hours": 5})
        assert status == 201, made
        assert made["fingerprint"] == fingerprint(alpha.node_id)
        assert made["expires_at"] == START + 5 * 3600
        status, joined = await beta.api("POST", "/peers/join", on_beta, {"invite": made["invite"]})
        assert status == 201, joined
        assert (joined["fingerprint"], joined["name"]) == (fingerprint(alpha.node_id), "alpha")
        status, listed = await alpha.api("GET", "/peers", on_alpha)
        assert status == 200
        [peer] = listed["items"]
        assert (peer["node"], peer["state"], peer["name"]) == (beta.node_id.hex(), "allied",
                                                               "beta")  # fmt: skip
        assert set(peer["delivery"]) == {"pending", "failures", "next_attempt_at",
                                         "last_delivery_at", "last_error"}  # fmt: skip
        status, answer = await beta.api("POST", "/peers/join", on_beta, {"invite": made["invite"]})
        assert (status, answer["error"]["code"]) == (502, "peering_refused")
        assert "invite_used" in answer["error"]["message"]
        for action, state in (("block", "blocked"), ("unblock", "allied"), ("remove", "removed")):
            status, changed = await alpha.api("POST", f"/peers/{action}", on_alpha,
                                              {"node": fingerprint(beta.node_id)})  # fmt: skip
            assert (status, changed["state"]) == (200, state), changed
        status, invites = await alpha.api("GET", "/peer-invites", on_alpha)
        assert [i["state"] for i in invites["items"]] == ["used"]
        status, _ = await alpha.api("DELETE", f"/peer-invites/{made['id']}", on_alpha)
        assert status == 204
        status, answer = await alpha.api("DELETE", f"/peer-invites/{made['id']}", on_alpha)
        assert (status, answer["error"]["code"]) == (404, "not_found")
        async with alpha.sessions() as session:
            rows = await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            actors = {(row.actor, row.action) for row in rows}
        wanted = ("peer.invite.create", "peer.block", "peer.unblock", "peer.remove",
                  "peer.invite.revoke")  # fmt: skip
        assert {("member:1", action) for action in wanted} <= actors


async def test_a_failed_join_puts_the_peer_back(
    tmp_path: Path, make_database: MakeDatabase
) -> None:
    async with fed_nodes(tmp_path, make_database, "alpha", "beta") as (alpha, beta):
        await peer_up(alpha, beta)
        await beta.peer_admin.change(CLI, alpha.node_id.hex(), "block")
        before = await beta.snapshot(skip=("key_events", "envelopes", "contact_log", "nonces"))
        code = decode_invite((await alpha.peering.create_invite(CLI))["invite"])
        forged = InviteCode(code.endpoint, code.node, code.invite, bytes(32))
        await refused(beta.peering.join(CLI, encode_invite(forged)), "peering_refused", "bad_proof")
        after = await beta.snapshot(skip=("key_events", "envelopes", "contact_log", "nonces"))
        assert after == before
        peer = await beta.peer(alpha.node_id)
        assert peer is not None
        assert (peer.state, peer.they_allied, peer.name) == ("blocked", True, "alpha")
