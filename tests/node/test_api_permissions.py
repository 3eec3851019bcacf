"""The permission matrix: every JSON API endpoint against anonymous callers, a pending
member, a member, an organiser, admins (by cookie and by token), a suspended member (by
token and by cookie) and a revoked token, on SQLite and PostgreSQL. Every answer must be
the expected status and code, and one the OpenAPI document promises."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from test_api_calls import apply as apply_envelope
from test_api_calls import draft as call_draft
from test_api_support import (
    PASSWORD,
    ApiNode,
    Who,
    api_node,
    check_documented,
    close_now,
    draft,
    propose,
    route_for,
)
from test_calls import remote_issue
from test_calls_support import remote

from node.app import api_routes
from node.storage.models import Peer
from node.web.auth import Auth


@dataclass
class Case:
    method: str
    path: str
    body: Any = None
    ok: int = 200  # the status when the caller may call it
    # refusals by the service for callers the route's role lets in, by role
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


Make = Callable[[ApiNode], Awaitable[Case]]


async def _register(node: ApiNode) -> Case:
    body = {"invite": await node.invite(), "pseudonym": node.pseudonym("r"), "password": PASSWORD}
    return Case("POST", "/register", body, 201)


async def _login(node: ApiNode) -> Case:
    pseudonym, _ = await node.register()
    return Case("POST", "/login", {"pseudonym": pseudonym, "password": PASSWORD})


async def _target(node: ApiNode, status: str = "active") -> int:
    _, member_id = await node.register()
    if status != "active":
        await node.set_status(member_id, status)
    return member_id


def case(method: str, path: str, body: Any = None, ok: int = 200) -> Make:
    async def make(_: ApiNode) -> Case:
        return Case(method, path, body, ok)

    return make


def on_target(method: str, action: str, status: str, body: Any = None) -> Make:
    async def make(node: ApiNode) -> Case:
        return Case(method, f"/members/{await _target(node, status)}/{action}", body)

    return make


async def _delete_invite(node: ApiNode) -> Case:
    answer = await node.call("POST", "/invites", node.admin, {})
    return Case("DELETE", f"/invites/{answer.body['id']}", ok=204)


async def _create_proposal(node: ApiNode) -> Case:
    return Case("POST", "/proposals", draft(node), 201)


def on_proposal(method: str, action: str, body: Any = None, **changes: Any) -> Make:
    async def make(node: ApiNode) -> Case:
        return Case(method, f"/proposals/{await propose(node, **changes)}{action}", body)

    return make


async def _closed_proposal(node: ApiNode, action: str) -> Case:
    proposal = await propose(node, closes_at=node.clock.now() + 60)
    voter = await node.member(via="token")
    vote = {"choice": "option", "option": 1}
    assert (await node.call("PUT", f"/proposals/{proposal}/vote", voter, vote)).status == 200
    node.clock.advance(60)
    await close_now(node)
    return Case("GET", f"/proposals/{proposal}/{action}")


async def _result(node: ApiNode) -> Case:
    return await _closed_proposal(node, "result")


async def _recompute(node: ApiNode) -> Case:
    return await _closed_proposal(node, "recompute")


async def _cancel(node: ApiNode) -> Case:
    """Proposed by the admin: another organiser or a member may not cancel it."""
    made = await on_proposal("POST", "/cancel")(node)
    made.refused = {"member": (403, "not_allowed"), "organiser": (403, "not_allowed")}
    return made


async def _peer(node: ApiNode, state: str) -> str:
    """A peer row in ``state`` (peering itself is tested in test_peering.py)."""
    node_id = secrets.token_bytes(32)
    async with node.sessions.begin() as session:
        session.add(Peer(node_id=node_id, endpoint="https://peer.example", state=state,
                         created_at=0, updated_at=0))  # fmt: skip
    return node_id.hex()


def on_peer(action: str, state: str) -> Make:
    async def make(node: ApiNode) -> Case:
        return Case("POST", f"/peers/{action}", {"node": await _peer(node, state)})

    return make


async def _revoke_peer_invite(node: ApiNode) -> Case:
    answer = await node.call("POST", "/peer-invites", node.admin, {})
    return Case("DELETE", f"/peer-invites/{answer.body['id']}", ok=204)


async def _join_peer(_: ApiNode) -> Case:
    """Joining needs a second node (test_peering.py); a bad invite string shows the route."""
    made = Case("POST", "/peers/join", {"invite": "tadamun-peer:nonsense"}, 201)
    made.refused = {"admin": (400, "invalid_invite")}
    return made


async def _call(node: ApiNode) -> int:
    """A call of this node's, with a threshold: any member may pledge to it."""
    answer = await node.call("POST", "/calls", node.admin, call_draft(node))
    assert answer.status == 201, answer.body
    return int(answer.body["id"])


def on_call(method: str, action: str, body: Any = None, ok: int = 200) -> Make:
    async def make(node: ApiNode) -> Case:
        return Case(method, f"/calls/{await _call(node)}{action}", body, ok)

    return make


async def _issue_call(node: ApiNode) -> Case:
    return Case("POST", "/calls", call_draft(node), 201)


async def _withdraw(node: ApiNode) -> Case:
    """Nobody has pledged to the new call: every caller let in is told so."""
    made = Case("DELETE", f"/calls/{await _call(node)}/pledge", ok=204)
    made.refused = dict.fromkeys(("member", "organiser", "admin"), (404, "no_pledge"))
    return made


async def _decide(node: ApiNode) -> Case:
    """Another node's call, under a policy where admins decide."""
    policy = {**POLICY, "endorsement_by": "admins"}
    assert (await node.call("PUT", "/policy", node.admin, policy)).status == 200
    issued = remote().envelope(remote_issue(), node.clock.now())
    await apply_envelope(node, issued)
    listed = await node.call("GET", f"/calls?call={issued.id.hex()}", node.admin)
    made = Case("POST", f"/calls/{listed.body['items'][0]['id']}/decision", {"join": True})
    made.refused = {"organiser": (403, "not_allowed")}
    return made


async def _coalition(node: ApiNode) -> int:
    """A coalition this node founds (node.services.coalitions): it is its only member."""
    answer = await node.call("POST", "/coalitions", node.admin, {"name": {"en": "South"}})
    assert answer.status == 201, answer.body
    return int(answer.body["id"])


def on_coalition(method: str, action: str, body: Any = None, **refused: tuple[int, str]) -> Make:
    async def make(node: ApiNode) -> Case:
        made = Case(method, f"/coalitions/{await _coalition(node)}{action}", body)
        made.refused = refused
        return made

    return make


async def _invite_node(node: ApiNode) -> Case:
    body = {"node": secrets.token_bytes(32).hex()}
    return Case("POST", f"/coalitions/{await _coalition(node)}/invite", body)


POLICY = {
    "approval_required": False, "call_issuers": "organisers", "endorsement_by": "admins",
    "vote": {"method": "majority", "fraction": None, "quorum": {"num": 1, "den": 3}, "hours": 24},
}  # fmt: skip

# (endpoint, how to make a request, made afresh for each caller?)
ENDPOINTS: list[tuple[Make, bool]] = [
    (case("GET", "/openapi.json"), False),
    (_register, True),
    (_login, True),
    (case("GET", "/me"), False),
    (case("PATCH", "/me", {"language": "ckb"}), False),
    (case("GET", "/me/export"), False),
    (case("GET", "/me/tokens"), False),
    (case("POST", "/me/tokens", {"name": "phone"}, 201), False),
    (case("DELETE", "/me/tokens/999999", ok=404), False),  # not theirs: 404 once allowed
    (case("GET", "/members?status=active&limit=2"), False),
    (on_target("POST", "approve", "pending"), True),
    (on_target("POST", "suspend", "active"), True),
    (on_target("POST", "reinstate", "suspended"), True),
    (on_target("PUT", "role", "active", {"role": "organiser"}), True),
    (case("GET", "/invites"), False),
    (case("POST", "/invites", {"uses": 3}, 201), False),
    (_delete_invite, True),
    (case("GET", "/audit?limit=5"), False),
    (case("GET", "/policy"), False),
    (case("PUT", "/policy", POLICY), False),
    (_create_proposal, False),
    (case("GET", "/proposals?state=open&limit=2"), False),
    (on_proposal("GET", ""), False),
    (_cancel, True),
    (on_proposal("PUT", "/vote", {"choice": "option", "option": 0}), False),
    (on_proposal("GET", "/vote"), False),
    (on_proposal("GET", "/voters"), False),
    (on_proposal("GET", "/votes", ballot="open"), False),
    (_result, False),
    (_recompute, False),
    (case("GET", "/peers"), False),
    (_join_peer, False),
    (on_peer("block", "allied"), True),
    (on_peer("unblock", "blocked"), True),
    (on_peer("remove", "allied"), True),
    (case("GET", "/peer-invites"), False),
    (case("POST", "/peer-invites", {"expires_hours": 2}, 201), False),
    (_revoke_peer_invite, True),
    (case("GET", "/coalitions"), False),
    (case("POST", "/coalitions", {"name": {"en": "South", "ar": "الجنوب"}}, 201), False),
    (on_coalition("GET", ""), False),
    (_invite_node, True),
    (on_coalition("POST", "/join", admin=(409, "already_member")), False),
    (on_coalition("POST", "/leave"), True),
    (_issue_call, False),
    (case("GET", "/calls?state=open&own=true&limit=2"), False),
    (on_call("GET", ""), False),
    (on_call("PATCH", "", {"text": {"en": "New text"}}), False),
    (on_call("POST", "/updates", {"text": {"en": "News"}}, 201), False),
    (on_call("POST", "/cancel", {"reason": {"en": "Won"}}), True),
    (on_call("POST", "/conclude", {"outcome": "held"}), True),
    (_decide, True),
    (on_call("GET", "/pledge"), False),
    (on_call("PUT", "/pledge", {"kind": "conditional"}), False),
    (_withdraw, True),
    (case("GET", "/notifications?limit=5"), False),
    (case("POST", "/notifications/999999/read", ok=404), False),  # not theirs
    (case("POST", "/notifications/read", ok=204), False),
]
# These end the caller's own session or account: each gets its own callers.
ENDING: list[Make] = [
    case("POST", "/logout", ok=204),
    case("POST", "/me/leave", ok=204),
    case("DELETE", "/me", ok=204),
]

REFUSED = {
    "anonymous": (401, "unauthenticated"),
    "revoked token": (401, "unauthenticated"),
    "pending": (403, "account_not_active"),
    "suspended (token)": (403, "account_suspended"),
    "suspended (cookie)": (403, "account_suspended"),
}
ROLES = {
    "member": "member", "organiser (token)": "organiser", "admin (cookie)": "admin",
    "admin (token)": "admin",
}  # fmt: skip


async def callers(node: ApiNode) -> list[Who]:
    pending = await node.member(name="pending")
    assert pending.member_id is not None
    await node.set_status(pending.member_id, "pending")
    suspended = await node.member(name="suspended (cookie)")
    suspended_token = await node.by_token(suspended, "suspended (token)")
    answer = await node.call("POST", f"/members/{suspended.member_id}/suspend", node.admin)
    assert answer.status == 200, answer.body
    revoked = await node.member(via="token", name="revoked token")
    tokens = await node.call("GET", "/me/tokens", revoked)
    for token in tokens.body["items"]:
        assert (await node.call("DELETE", f"/me/tokens/{token['id']}", revoked)).status == 204
    return [
        Who("anonymous"), pending, await node.member(name="member"),
        await node.member("organiser", via="token", name="organiser (token)"),
        await node.member("admin", name="admin (cookie)"),
        await node.member("admin", via="token", name="admin (token)"),
        suspended, suspended_token, revoked,
    ]  # fmt: skip


def expected(made: Case, who: Who) -> tuple[int, str | None]:
    auth = route_for(made.method, made.path).auth
    if auth is Auth.PUBLIC:
        return made.ok, None
    if who.name in REFUSED:
        return REFUSED[who.name]
    if auth is not Auth.MEMBER and ROLES[who.name] not in _AT_LEAST[auth]:
        return 403, "forbidden"
    if ROLES[who.name] in made.refused:
        return made.refused[ROLES[who.name]]
    return made.ok, "not_found" if made.ok == 404 else None


_AT_LEAST = {Auth.ORGANISER: {"organiser", "admin"}, Auth.ADMIN: {"admin"}}


async def check_cell(node: ApiNode, document: Any, make: Make, who: Who) -> str | None:
    made = await make(node)
    answer = await node.call(made.method, made.path, who, made.body)
    want = expected(made, who)
    check_documented(document, made.method, made.path, answer)
    if (answer.status, answer.code) != want:
        return f"{made.method} {made.path} as {who.name}: {answer.status} {answer.body}, not {want}"
    return None


async def test_permission_matrix(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        problems: list[str | None] = []
        covered: set[tuple[str, str]] = set()
        everyone = await callers(node)
        for make, fresh in ENDPOINTS:
            shared = None if fresh else await make(node)
            for who in everyone:
                problems.append(await check_cell(node, document, _same(shared) or make, who))
            covered.add(_key(shared or await make(node)))
        for make in ENDING:
            for who in await callers(node):
                problems.append(await check_cell(node, document, make, who))
            covered.add(_key(await make(node)))
        assert [p for p in problems if p] == []
        assert covered == {(r.method, r.path) for r in api_routes()}  # every endpoint


def _same(made: Case | None) -> Make | None:
    if made is None:
        return None

    async def make(_: ApiNode) -> Case:
        return made

    return make


def _key(made: Case) -> tuple[str, str]:
    return made.method, route_for(made.method, made.path).path
