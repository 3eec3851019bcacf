"""Calls over the JSON API on one node, SQLite and PostgreSQL: an organiser issues a call,
members pledge, the app's own scheduler publishes the tally and the activation once another
organisation's tally arrives, members are notified; an officer decides on another node's
call; every refusal is documented and changes nothing. Received envelopes are applied as
the inbox applies them (the federation tests carry them over HTTP)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select
from test_api_support import ApiNode, Who, api_node, check_documented, sqlite_url
from test_calls import remote_issue
from test_calls_support import DAY, TEXT, TITLE, remote

from node.services.calls_apply import CALL_HANDLERS
from node.storage.models import EnvelopeRow
from protocol import CallActivate, CallTally, SignedEnvelope, Threshold

DEADLINE_DAYS = 5


def draft(node: ApiNode, **changes: Any) -> dict[str, Any]:
    now = node.clock.now()
    base = {
        "kind": "strike", "title": TITLE, "text": TEXT, "audience": "allies",
        "starts": now + 10 * DAY, "ends": now + 11 * DAY,
        "location": {"region": "IQ-BA", "place": "Basra"}, "meeting_point": "Gate 4",
        "sectors": ["oil"], "regions": ["IQ-BA"],
        "threshold": {"pledges": 10, "orgs": 2, "deadline": now + DEADLINE_DAYS * DAY},
    }  # fmt: skip
    return base | changes


async def apply(node: ApiNode, signed: SignedEnvelope) -> None:
    async with node.sessions.begin() as session:
        await CALL_HANDLERS[signed.envelope.type](session, signed, now=node.clock.now())


async def envelopes_of(node: ApiNode, type_: str) -> list[bytes]:
    async with node.sessions() as session:
        rows = await session.scalars(select(EnvelopeRow.wire).where(EnvelopeRow.type == type_))
        return [w for w in rows if w is not None]


async def until(
    node: ApiNode, who: Who, number: int, done: Any, advance: int = 0
) -> dict[str, Any]:
    """The call once ``done(view)`` holds: a bounded loop of API calls, which give the app's
    scheduler its turn, moving the fake clock ``advance`` seconds a time; no real sleep."""
    for _ in range(300):
        answer = await node.call("GET", f"/calls/{number}", who)
        if done(answer.body):
            return dict(answer.body)
        node.clock.advance(advance)
        await asyncio.sleep(0)
    raise AssertionError(f"the scheduler did not get there: {answer.body}")


async def test_issue_pledge_tally_activate_notify(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        organiser = await node.member("organiser", via="token")
        crowd = [await node.member(via="token") for _ in range(11)]

        answer = await node.call("POST", "/calls", organiser, draft(node))
        check_documented(document, "POST", "/calls", answer)
        assert answer.status == 201, answer.body
        made = answer.body
        assert (made["own"], made["stance"], made["state"]) == (True, "own", "open")
        assert (made["meeting_point"], made["progress"]) == (
            "Gate 4", {"pledges": 0, "orgs": 0, "met": False},
        )  # fmt: skip
        number, call_id = made["id"], bytes.fromhex(made["call"])

        listed = await node.call("GET", f"/calls?call={made['call']}&own=true", crowd[0])
        check_documented(document, "GET", "/calls", listed)
        assert [c["id"] for c in listed.body["items"]] == [number]
        assert (await node.call("GET", "/calls?own=false", crowd[0])).body["items"] == []

        for who in crowd[:5]:
            answer = await node.call("PUT", f"/calls/{number}/pledge", who, {"kind": "firm"})
            check_documented(document, "PUT", "/calls/1/pledge", answer)
            assert answer.body["kind"] == "firm"
        for who in crowd[5:]:
            await node.call("PUT", f"/calls/{number}/pledge", who, {"kind": "conditional"})
        mine = await node.call("GET", f"/calls/{number}/pledge", crowd[6])
        check_documented(document, "GET", "/calls/1/pledge", mine)
        assert mine.body["kind"] == "conditional"
        view = await until(
            node, crowd[0], number, lambda v: v["tallies"] and v["tallies"][0]["seq"] == 2, 1
        )  # a tally at once, the next a minute later (debounced)
        (own_tally,) = view["tallies"]
        assert (own_tally["firm"], own_tally["conditional"]) == (5, 5)
        assert view["my_pledge"] == "firm"
        assert view["progress"] == {"pledges": 10, "orgs": 1, "met": False}

        other = remote()
        await apply(node, other.envelope(CallTally(call_id, 1, 5, 0, 5, 5), node.clock.now()))
        # the scheduler looks at least every 30 s (of the fake clock, moved on as it polls)
        view = await until(node, crowd[0], number, lambda v: v["state"] == "activated", 1)
        assert view["activation"]["pledges"] == 15
        assert view["activation"]["orgs"] == 2
        assert len(await envelopes_of(node, "call.activate")) == 1

        notes = await node.call("GET", "/notifications", crowd[0])
        check_documented(document, "GET", "/notifications", notes)
        (note,) = notes.body["items"]
        assert (note["kind"], note["call_id"], note["read"]) == ("activated", number, False)
        answer = await node.call("POST", f"/notifications/{note['id']}/read", crowd[0])
        assert answer.status == 204
        notes = await node.call("GET", "/notifications", crowd[0])
        assert notes.body["items"][0]["read"] is True
        answer = await node.call("POST", f"/notifications/{note['id']}/read", crowd[1])
        check_documented(document, "POST", "/notifications/1/read", answer)
        assert (answer.status, answer.code) == (404, "not_found")  # not theirs
        assert (await node.call("POST", "/notifications/read", crowd[1])).status == 204


async def test_amend_update_cancel_conclude_over_the_api(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        document = (await node.call("GET", "/openapi.json")).body
        member = await node.member(via="token")
        number = (await node.call("POST", "/calls", node.admin, draft(node))).body["id"]
        one = f"/calls/{number}"
        for method, path, body, status in (
            ("PATCH", one, {"title": {"en": "Strike, day two"}, "meeting_point": "Gate 5"}, 200),
            ("POST", one + "/updates", {"text": {"en": "Buses at 5"}}, 201),
            ("POST", one + "/cancel", {"reason": {"en": "Talks won"}}, 200),
            ("PATCH", one, {"text": {"en": "x"}}, 409),
            ("POST", one + "/conclude", {"outcome": "held"}, 409),
        ):
            answer = await node.call(method, path, node.admin, body)
            check_documented(document, method, path, answer)
            assert answer.status == status, answer.body
        view = (await node.call("GET", one, member)).body
        assert (view["state"], view["title"], view["meeting_point"]) == (
            "cancelled", {"en": "Strike, day two"}, "Gate 5",
        )  # fmt: skip
        assert [u["text"] for u in view["updates"]] == [{"en": "Buses at 5"}]
        assert view["evidence"] is None  # admins only
        kinds = [
            n["kind"] for n in (await node.call("GET", "/notifications", member)).body["items"]
        ]
        assert kinds == ["cancelled", "amended"]


async def test_an_officer_decides_on_another_nodes_call(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        policy = (await node.call("GET", "/policy", node.admin)).body
        policy = {k: v for k, v in policy.items() if k != "updated_at"}
        policy["endorsement_by"] = "organisers"
        assert (await node.call("PUT", "/policy", node.admin, policy)).status == 200
        organiser = await node.member("organiser", via="token")
        member = await node.member(via="token")
        deadline = node.clock.now() + DAY
        issued = remote().envelope(remote_issue(threshold=Threshold(10, 2, deadline)), 0)
        await apply(node, issued)
        listed = (await node.call("GET", "/calls?own=false&state=open", member)).body["items"]
        (theirs,) = listed
        assert (theirs["own"], theirs["stance"]) == (False, "undecided")
        one = f"/calls/{theirs['id']}"
        refused = await node.call("PUT", one + "/pledge", member, {"kind": "firm"})
        check_documented(document, "PUT", one + "/pledge", refused)
        assert (refused.status, refused.code) == (409, "not_joined")
        before = await node.snapshot()
        bad = await node.call("POST", one + "/decision", organiser, {"join": True, "note": {}})
        check_documented(document, "POST", one + "/decision", bad)
        assert (bad.status, bad.code) == (400, "invalid_field")
        assert await node.snapshot() == before
        answer = await node.call("POST", one + "/decision", organiser,
                                 {"join": True, "note": {"ar": "نحن معكم"}})  # fmt: skip
        check_documented(document, "POST", one + "/decision", answer)
        assert answer.status == 200, answer.body
        (verdict,) = answer.body["endorsements"]
        assert (verdict["verdict"], verdict["by"], verdict["turnout"]) == (
            "endorse",
            "organisers",
            1,
        )
        again = await node.call("POST", one + "/decision", organiser, {"join": False})
        check_documented(document, "POST", one + "/decision", again)
        assert (again.status, again.code) == (409, "already_decided")
        answer = await node.call("PUT", one + "/pledge", member, {"kind": "conditional"})
        assert answer.status == 200, answer.body
        withdrawn = await node.call("DELETE", one + "/pledge", member)
        assert withdrawn.status == 204
        again = await node.call("DELETE", one + "/pledge", member)
        check_documented(document, "DELETE", one + "/pledge", again)
        assert (again.status, again.code) == (404, "no_pledge")


async def test_refusals_change_nothing(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        document = (await node.call("GET", "/openapi.json")).body
        member = await node.member(via="token")
        organiser = await node.member("organiser", via="token")
        now = node.clock.now()
        number = (await node.call("POST", "/calls", node.admin, draft(node))).body["id"]
        before = await node.snapshot()
        for who, method, path, body, status, code in (
            (organiser, "POST", "/calls", draft(node, audience="coalition:" + "ab" * 32),
             400, "audience_unsupported"),
            (organiser, "POST", "/calls", draft(node, title={}), 400, "invalid_field"),
            (organiser, "POST", "/calls", draft(node, title={"ar": "ض" * 300}), 400,
             "invalid_field"),
            (organiser, "POST", "/calls", draft(node, threshold={"pledges": 1, "orgs": 1,
             "deadline": now}), 400, "invalid_field"),
            (member, "POST", "/calls", draft(node), 403, "forbidden"),
            (organiser, "PATCH", "/calls/999", {"text": {"en": "x"}}, 404, "call_not_found"),
            (organiser, "PATCH", f"/calls/{number}", {}, 400, "invalid_field"),
            (organiser, "POST", f"/calls/{number}/decision", {"join": True}, 409, "own_call"),
            (member, "PUT", f"/calls/{number}/pledge", {"kind": "maybe"}, 400, "invalid_field"),
            (member, "DELETE", f"/calls/{number}/pledge", None, 404, "no_pledge"),
            (member, "GET", "/calls/abc", None, 404, "not_found"),
            (member, "GET", "/calls?call=xyz", None, 400, "invalid_field"),
            (member, "GET", "/calls?state=asleep", None, 400, "invalid_field"),
        ):  # fmt: skip
            answer = await node.call(method, path, who, body)
            check_documented(document, method, path, answer)
            assert (answer.status, answer.code) == (status, code), (path, answer.body)
        assert await node.snapshot() == before
        node.clock.advance(DEADLINE_DAYS * DAY)
        late = await node.call("PUT", f"/calls/{number}/pledge", member, {"kind": "firm"})
        assert (late.status, late.code) == (409, "pledges_closed")


async def valid_call_bodies(node: ApiNode) -> dict[tuple[str, str], tuple[Who, Any]]:
    """For test_api_input: each call endpoint with a body, an allowed caller and a valid
    body, each on a call of its own (a valid request is sent last and changes the call)."""
    policy = (await node.call("GET", "/policy", node.admin)).body
    policy = {k: v for k, v in policy.items() if k != "updated_at"} | {"endorsement_by": "admins"}
    assert (await node.call("PUT", "/policy", node.admin, policy)).status == 200
    member = await node.member(via="token")

    async def own() -> int:
        answer = await node.call("POST", "/calls", node.admin, draft(node))
        assert answer.status == 201, answer.body
        return int(answer.body["id"])

    pledged = await own()  # with a tally just published, so a pledge's is due a minute on:
    for _ in range(5):  # the app's scheduler does nothing while the bodies are checked
        crowd = await node.member(via="token")
        await node.call("PUT", f"/calls/{pledged}/pledge", crowd, {"kind": "firm"})
    await until(node, member, pledged, lambda view: view["tallies"])
    issued = remote().envelope(remote_issue(), node.clock.now())
    await apply(node, issued)
    theirs = (await node.call("GET", "/calls?own=false", node.admin)).body["items"][0]["id"]
    everything = draft(node, title=dict.fromkeys(("ar", "ckb", "en", "kmr"), "t"))
    return {
        ("POST", "/calls"): (node.admin, everything),
        ("PATCH", f"/calls/{await own()}"): (node.admin, {
            "title": {"en": "New"}, "text": {"ckb": "دەق"}, "starts": 1, "ends": 2,
            "location": {"region": "IQ-SU", "place": "Sulaymaniyah"}, "sectors": ["education"],
            "regions": ["IQ-SU"], "meeting_point": "Azadi park",
        }),
        ("POST", f"/calls/{await own()}/cancel"): (node.admin, {"reason": {"en": "Won"}}),
        ("POST", f"/calls/{await own()}/updates"): (node.admin, {"text": {"ar": "خبر"}}),
        ("POST", f"/calls/{await own()}/conclude"): (node.admin, {
            "outcome": "partial", "text": {"en": "Two sites struck"},
        }),
        ("POST", f"/calls/{theirs}/decision"): (node.admin, {
            "join": False, "note": {"en": "Not this time"},
        }),
        ("PUT", f"/calls/{pledged}/pledge"): (member, {"kind": "conditional"}),
    }  # fmt: skip


async def test_pledges_are_exported_and_erased_with_the_account(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        member = await node.member(via="token")
        number = (await node.call("POST", "/calls", node.admin, draft(node))).body["id"]
        call = (await node.call("GET", f"/calls/{number}", member)).body["call"]
        await node.call("PUT", f"/calls/{number}/pledge", member, {"kind": "conditional"})
        await node.call("PATCH", f"/calls/{number}", node.admin, {"text": {"en": "Changed"}})
        export = (await node.call("GET", "/me/export", member)).body
        assert [(p["call"], p["kind"]) for p in export["pledges"]] == [(call, "conditional")]
        assert [(n["call"], n["kind"]) for n in export["notifications"]] == [(call, "amended")]
        assert (await node.call("DELETE", "/me", member)).status == 204
        snapshot = await node.snapshot()
        assert snapshot["pledges"] == []
        assert all(row[1] != member.member_id for row in snapshot["notifications"])


async def test_admins_see_equivocation_and_held_activations(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        member = await node.member(via="token")
        made = (await node.call("POST", "/calls", node.admin, draft(node))).body
        call_id, now = bytes.fromhex(made["call"]), node.clock.now()
        liar, other = remote(), remote()
        first = liar.envelope(CallTally(call_id, 1, 5, 0, 5, 5), now)
        second = liar.envelope(CallTally(call_id, 1, 50, 0, 5, 5), now)
        missing = other.envelope(CallTally(call_id, 1, 10, 0, 5, 5), now)
        for signed in (first, second):
            await apply(node, signed)
        proof = tuple(sorted((first.id, missing.id)))
        await apply(node, other.envelope(CallActivate(call_id, proof, 15, 2), now))
        seen = (await node.call("GET", f"/calls/{made['id']}", node.admin)).body["evidence"]
        assert {t["id"] for t in seen["equivocations"]} == {first.id.hex(), second.id.hex()}
        (held,) = seen["pending_activations"]
        assert held["missing"] == [missing.id.hex()]
        assert (await node.call("GET", f"/calls/{made['id']}", member)).body["evidence"] is None
