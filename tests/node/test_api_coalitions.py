"""Coalitions over the JSON API on one node, SQLite and PostgreSQL: found, show, invite,
join an invite another node sent, leave, and call the coalition; every refusal documented,
bad input refused with a clear code and nothing changed. Envelopes from other nodes are
stored and applied as the inbox does (tests/node/test_coalitions.py runs the real inbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from database_support import table_rows
from test_api_calls import draft as call_draft
from test_api_support import ApiNode, api_node, check_documented
from test_calls_support import Remote, remote

from node.services.coalitions_apply import apply_coalition
from node.storage.models import EnvelopeRow
from node.web.keys import SIGNER
from protocol import (
    CoalitionFound,
    CoalitionInvite,
    SignedEnvelope,
    coalition_audience,
    coalition_id,
)
from protocol.coalitions import Member

NAME = {"en": "Southern unions", "ckb": "یەکێتییەکانی باشوور"}


async def receive(node: ApiNode, signed: SignedEnvelope) -> None:
    """Store and apply another node's envelope, as the inbox does."""
    envelope = signed.envelope
    async with node.sessions.begin() as session:
        session.add(EnvelopeRow(
            origin=envelope.origin, seq=envelope.seq, id=signed.id, type=envelope.type,
            audience=envelope.audience, wire=signed.to_bytes(), created_at=envelope.created,
            received_at=node.clock.now(),
        ))  # fmt: skip
        await session.flush()
        self_id = node.client.app[SIGNER].node_id
        await apply_coalition(session, signed, self_id=self_id, now=node.clock.now())


async def invited_by(node: ApiNode, founder: Remote) -> bytes:
    """``founder`` founds a coalition and invites this node; the coalition id."""
    salt = b"\x07" * 32
    coalition = coalition_id(founder.node_id, salt)
    self_id = node.client.app[SIGNER].node_id
    found = CoalitionFound(coalition, salt, NAME)  # nobody but the founder ever holds it
    founder.envelope(found, node.clock.now(), coalition_audience(coalition))
    invite = CoalitionInvite(coalition, self_id, founder.node_id, salt, NAME,
                             (Member(founder.node_id, 1),))  # fmt: skip
    await receive(node, founder.envelope(invite, node.clock.now(), coalition_audience(coalition)))
    return coalition


async def test_found_invite_list_and_call_the_coalition(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        made = await node.call("POST", "/coalitions", node.admin, {"name": NAME, "purpose": None})
        assert made.status == 201, made.body
        check_documented(document, "POST", "/coalitions", made)
        number, audience = made.body["id"], made.body["audience"]
        assert (made.body["standing"], made.body["name"]) == ("member", NAME)
        invitee = remote().node_id.hex()
        answer = await node.call("POST", f"/coalitions/{number}/invite", node.admin,
                                 {"node": invitee})  # fmt: skip
        assert answer.status == 200, answer.body
        assert [(m["node"], m["state"]) for m in answer.body["members"]][1] == (invitee, "invited")
        listed = await node.call("GET", "/coalitions", node.admin)
        assert listed.body["items"] == [answer.body]
        issued = await node.call("POST", "/calls", node.admin, call_draft(node, audience=audience))
        assert issued.status == 201, issued.body
        assert issued.body["audience"] == audience
        left = await node.call("POST", f"/coalitions/{number}/leave", node.admin)
        assert left.body["standing"] == "left"
        refused = await node.call("POST", "/calls", node.admin, call_draft(node, audience=audience))
        assert (refused.status, refused.code) == (400, "audience_unsupported")


async def test_join_an_invite_from_another_node(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        founder = remote()
        coalition = await invited_by(node, founder)
        (listed,) = (await node.call("GET", "/coalitions", node.admin)).body["items"]
        assert (listed["coalition"], listed["standing"]) == (coalition.hex(), "invited")
        assert listed["founder"] == founder.node_id.hex()
        audience = coalition_audience(coalition)
        early = await node.call("POST", "/calls", node.admin, call_draft(node, audience=audience))
        assert (early.status, early.code) == (400, "audience_unsupported")
        joined = await node.call("POST", f"/coalitions/{listed['id']}/join", node.admin)
        assert joined.status == 200, joined.body
        assert {m["node"]: m["state"] for m in joined.body["members"]} == {
            founder.node_id.hex(): "member", listed["members"][1]["node"]: "member",
        }  # fmt: skip
        again = await node.call("POST", f"/coalitions/{listed['id']}/join", node.admin)
        assert (again.status, again.code) == (409, "already_member")


async def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        made = await node.call("POST", "/coalitions", node.admin, {"name": {"en": "South"}})
        number = made.body["id"]
        long_name = {"ar": "ب" * 300}  # 300 characters, 600 bytes: over the protocol's 512
        cases: list[tuple[str, str, Any, int, str]] = [
            ("POST", "/coalitions", {}, 400, "missing_field"),
            ("POST", "/coalitions", {"name": {}}, 400, "invalid_field"),
            ("POST", "/coalitions", {"name": {"xx": "y"}}, 400, "unknown_field"),
            ("POST", "/coalitions", {"name": {"en": ""}}, 400, "invalid_field"),
            ("POST", "/coalitions", {"name": long_name}, 400, "invalid_field"),
            ("POST", "/coalitions", {"name": {"en": "a\x00b"}}, 400, "invalid_field"),
            ("POST", "/coalitions", {"name": "South"}, 400, "invalid_field"),
            ("POST", "/coalitions", {"name": {"en": "S"}, "x": 1}, 400, "unknown_field"),
            ("GET", "/coalitions/0", None, 404, "not_found"),
            ("GET", "/coalitions/abc", None, 404, "not_found"),
            ("GET", "/coalitions/99", None, 404, "not_found"),
            ("POST", f"/coalitions/{number}/invite", {}, 400, "missing_field"),
            ("POST", f"/coalitions/{number}/invite", {"node": ""}, 400, "invalid_field"),
            ("POST", f"/coalitions/{number}/invite", {"node": "f" * 65}, 400, "invalid_field"),
            ("POST", f"/coalitions/{number}/invite", {"node": "zz"}, 404, "unknown_node"),
            ("POST", "/coalitions/99/invite", {"node": "ab" * 32}, 404, "not_found"),
            ("POST", f"/coalitions/{number}/join", None, 409, "already_member"),
        ]
        before = await table_rows(node.engine, skip=("sessions", "api_tokens", "nonces"))
        for method, path, body, status, code in cases:
            answer = await node.call(method, path, node.admin, body)
            assert (answer.status, answer.code) == (status, code), (path, body, answer.body)
            check_documented(document, method, path, answer)
        malformed = await node.call("POST", "/coalitions", node.admin, raw=b"{",
                                    headers={"Content-Type": "application/json"})  # fmt: skip
        assert malformed.code == "malformed_json"
        own = await node.call("GET", f"/coalitions/{number}", node.admin)
        self_hex = own.body["members"][0]["node"]
        answer = await node.call("POST", f"/coalitions/{number}/invite", node.admin,
                                 {"node": self_hex})  # fmt: skip
        assert (answer.status, answer.code) == (400, "own_node")
        assert await table_rows(node.engine, skip=("sessions", "api_tokens", "nonces")) == before
