"""Internal decisions over the JSON API, on SQLite and PostgreSQL: the whole story (an
organiser proposes, members vote and change their votes, the app's own scheduler closes the
proposal when the fake clock passes closes_at, the result is signed and recomputes); secret
ballots reveal who voted and never how; open ballots show who chose what; refused
transitions and bad drafts get their stable codes and change nothing; lists filter by state
and page."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from test_api_support import (
    HOUR,
    ApiNode,
    Who,
    api_node,
    check_documented,
    close_now,
    draft,
    propose,
    sqlite_url,
)

from node.app import api_routes
from node.storage import envelopes
from node.web.schema import Schema
from protocol import DecisionOutcome, KeyState, SignedEnvelope, SignedKeyEvent, parse_body, verify

YES, NO = {"choice": "option", "option": 0}, {"choice": "option", "option": 1}


async def wait_counted(node: ApiNode, proposal: str, who: Who) -> dict[str, Any]:
    """The proposal once the app's scheduler has counted it: a bounded loop that yields to
    the event loop and moves the fake clock on a second at a time, never a real sleep."""
    for _ in range(600):
        answer = await node.call("GET", f"/proposals/{proposal}", who)
        if answer.body["result"] is not None:
            return dict(answer.body)
        node.clock.advance(1)
        await asyncio.sleep(0)
    raise AssertionError("the scheduler did not count the proposal")


def choices(value: Any) -> list[Any]:
    """Every ``choice`` field anywhere in an answer."""
    if isinstance(value, dict):
        own = [value["choice"]] if "choice" in value else []
        return own + [c for inner in value.values() for c in choices(inner)]
    if isinstance(value, list):
        return [c for inner in value for c in choices(inner)]
    return []


async def no_choice_shown(node: ApiNode, proposal: str, who: Who) -> None:
    """No GET endpoint of a proposal shows ``who`` a choice (they have not voted, or the
    ballot is closed): whatever endpoints are added later, this covers them."""
    for route in api_routes():
        if route.method == "GET" and route.path.startswith("/proposals/{proposal}"):
            path = route.path.replace("{proposal}", proposal)
            answer = await node.call("GET", path, who)
            assert answer.status in (200, 403, 409), (path, answer.body)
            assert all(choice is None for choice in choices(answer.body)), (path, answer.body)


async def key_state(node: ApiNode) -> KeyState:
    async with node.sessions() as session:
        wires = await envelopes.list_key_events(session, await envelopes.get_node_id(session))
    return KeyState.from_log([SignedKeyEvent.from_bytes(wire) for wire in wires])


async def document(node: ApiNode) -> Any:
    return (await node.call("GET", "/openapi.json")).body


async def test_the_whole_story_with_a_secret_ballot(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        doc = await document(node)
        organiser = await node.member("organiser", via="token")
        alice, bob, carol, dana = [await node.member(name=n) for n in "abcd"]
        made = await node.call("POST", "/proposals", organiser, draft(node, options=["yes", "no"]))
        assert made.status == 201, made.body
        proposal = made.body["id"]
        assert (made.body["state"], made.body["result"], made.body["ballot"]) == (
            "open", None, "secret",
        )  # fmt: skip
        path = f"/proposals/{proposal}"

        async def vote(who: Who, choice: dict[str, Any]) -> None:
            answer = await node.call("PUT", f"{path}/vote", who, choice)
            check_documented(doc, "PUT", f"{path}/vote", answer)
            assert answer.status == 200, answer.body
            assert answer.body == {"voted": True, "option": None} | choice

        await vote(alice, NO)
        await vote(bob, NO)
        await vote(carol, {"choice": "abstain"})
        await vote(alice, YES)  # a second vote replaces the first
        await vote(bob, YES)
        await vote(bob, YES)  # and the same vote again changes nothing
        mine = await node.call("GET", f"{path}/vote", alice)
        assert mine.body == {"voted": True, "choice": "option", "option": 0}
        assert (await node.call("GET", f"{path}/vote", dana)).body == {
            "voted": False, "choice": None, "option": None,
        }  # fmt: skip

        # Who voted is shown, never how: no endpoint gives another member's choice.
        voters = await node.call("GET", f"{path}/voters", dana)
        check_documented(doc, "GET", f"{path}/voters", voters)
        ids = [alice.member_id, bob.member_id, carol.member_id]
        assert [v["member_id"] for v in voters.body["items"]] == sorted(i or 0 for i in ids)
        assert all(set(v) == {"member_id", "pseudonym"} for v in voters.body["items"])
        secret = await node.call("GET", f"{path}/votes", node.admin)
        assert (secret.status, secret.code) == (403, "ballot_secret")
        for who in (dana, node.admin):  # neither has voted
            await no_choice_shown(node, proposal, who)
        for step in ("result", "recompute"):
            early = await node.call("GET", f"{path}/{step}", organiser)
            assert (early.status, early.code) == (409, "not_closed")
            check_documented(doc, "GET", f"{path}/{step}", early)

        # The fake clock passes closes_at; the app's running scheduler counts and signs.
        node.clock.advance(HOUR)
        late = await node.call("PUT", f"{path}/vote", dana, YES)
        assert (late.status, late.code) == (409, "voting_closed")
        counted = await wait_counted(node, proposal, dana)
        assert counted["state"] == "closed"
        assert counted["result"] | {"proposal": proposal} == counted["result"]
        summary = counted["result"]
        assert (summary["counts"], summary["abstain"], summary["turnout"]) == ([2, 0], 1, 3)
        assert (summary["outcome"], summary["winner"]) == ("adopted", 0)
        assert summary["electorate"] == 6  # the founder, the organiser and four members

        result = await node.call("GET", f"{path}/result", dana)
        check_documented(doc, "GET", f"{path}/result", result)
        signed = SignedEnvelope.from_bytes(base64.b64decode(result.body["envelope"]))
        verify(signed, await key_state(node), now=node.clock.now())
        assert signed.id.hex() == result.body["envelope_id"]
        outcome = parse_body(signed.envelope.type, signed.envelope.body)
        assert isinstance(outcome, DecisionOutcome)
        assert outcome.proposal.hex() == proposal
        assert result.body["summary"] == summary

        check = await node.call("GET", f"{path}/recompute", carol)
        check_documented(doc, "GET", f"{path}/recompute", check)
        assert (check.body["matches"], check.body["signature_valid"]) == (True, True)
        assert check.body["recomputed"] == check.body["signed"] == summary

        # After close not even the voter's own ballot can be joined to them.
        for who in (alice, bob, carol):
            answer = await node.call("GET", f"{path}/vote", who)
            assert answer.body == {"voted": True, "choice": None, "option": None}
            await no_choice_shown(node, proposal, who)
        for method, step, who, body in (("PUT", "vote", alice, YES),
                                        ("POST", "cancel", organiser, None)):  # fmt: skip
            answer = await node.call(method, f"{path}/{step}", who, body)
            assert (answer.status, answer.code) == (409, "voting_closed"), step


async def test_an_open_ballot_shows_who_chose_what(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        doc = await document(node)
        alice, bob = await node.member(name="alice"), await node.member(name="bob")
        proposal = await propose(
            node, ballot="open", method="consent", options=["agree", "disagree"]
        )
        path = f"/proposals/{proposal}"
        for who, choice in ((alice, YES), (bob, {"choice": "block"}), (alice, NO)):
            assert (await node.call("PUT", f"{path}/vote", who, choice)).status == 200
        names = [(await node.call("GET", "/me", who)).body["pseudonym"] for who in (alice, bob)]
        votes = await node.call("GET", f"{path}/votes?limit=1", bob)
        check_documented(doc, "GET", f"{path}/votes", votes)
        assert votes.body["items"] == [{"member_id": alice.member_id, "pseudonym": names[0], **NO}]
        rest = await node.call("GET", f"{path}/votes?cursor={votes.body['next']}", bob)
        assert rest.body == {
            "items": [{"member_id": bob.member_id, "pseudonym": names[1], "choice": "block",
                       "option": None}],
            "next": None,
        }  # fmt: skip
        node.clock.advance(HOUR)
        counted = await wait_counted(node, proposal, bob)
        assert (counted["result"]["outcome"], counted["result"]["blocks"]) == ("rejected", 1)
        # an open ballot keeps who chose what after close, as its members agreed to
        after = await node.call("GET", f"{path}/votes", node.admin)
        assert [item["choice"] for item in after.body["items"]] == ["option", "block"]


async def test_refused_transitions_change_nothing(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        doc = await document(node)
        member = await node.member(via="token")
        organiser = await node.member("organiser", via="token")
        upcoming = await propose(node, opens_at=node.clock.now() + HOUR,
                                 closes_at=node.clock.now() + 2 * HOUR)  # fmt: skip
        cancelled = await propose(node, organiser)
        assert (await node.call("POST", f"/proposals/{cancelled}/cancel", organiser)).status == 200
        majority = await propose(node)
        cases = [
            ("PUT", f"/proposals/{upcoming}/vote", member, YES, 409, "voting_not_open"),
            ("PUT", f"/proposals/{cancelled}/vote", member, YES, 409, "proposal_cancelled"),
            ("POST", f"/proposals/{cancelled}/cancel", organiser, None, 409, "proposal_cancelled"),
            ("POST", f"/proposals/{majority}/cancel", organiser, None, 403, "not_allowed"),
            ("POST", f"/proposals/{majority}/cancel", member, None, 403, "not_allowed"),
            ("PUT", f"/proposals/{majority}/vote", member, {"choice": "option", "option": 2},
             400, "invalid_choice"),
            ("PUT", f"/proposals/{majority}/vote", member, {"choice": "block"}, 400,
             "invalid_choice"),
            ("PUT", f"/proposals/{majority}/vote", member, {"choice": "option"}, 400,
             "invalid_choice"),
            ("PUT", f"/proposals/{majority}/vote", member, {"choice": "option", "option": None},
             400, "invalid_choice"),
            ("PUT", f"/proposals/{majority}/vote", member, {"choice": "abstain", "option": 0},
             400, "invalid_choice"),
            ("GET", f"/proposals/{cancelled}/result", member, None, 409, "not_closed"),
            ("GET", f"/proposals/{cancelled}/voters", member, None, 200, None),
            ("GET", f"/proposals/{'0' * 32}", member, None, 404, "proposal_not_found"),
            ("PUT", f"/proposals/{'0' * 32}/vote", member, YES, 404, "proposal_not_found"),
            ("GET", f"/proposals/{upcoming.upper()}", member, None, 404, "not_found"),
            ("GET", f"/proposals/{upcoming[:-1]}", member, None, 404, "not_found"),
            ("GET", f"/proposals/{upcoming}0", member, None, 404, "not_found"),
            ("GET", "/proposals/1", member, None, 404, "not_found"),
            ("GET", f"/proposals/{'g' * 32}/vote", member, None, 404, "not_found"),
        ]  # fmt: skip
        before = await node.snapshot()
        for method, path, who, body, status, code in cases:
            answer = await node.call(method, path, who, body)
            assert (answer.status, answer.code) == (status, code), (method, path, answer.body)
            check_documented(doc, method, path, answer)
        assert await node.snapshot() == before
        # an admin may cancel what someone else proposed, before voting ends
        answer = await node.call("POST", f"/proposals/{upcoming}/cancel", node.admin)
        assert (answer.status, answer.body["state"]) == (200, "cancelled")


BAD_DRAFTS: list[tuple[dict[str, Any], str]] = [
    ({"title": "   "}, "invalid_title"),
    ({"title": "ض" * 300}, "invalid_title"),  # 300 characters, 600 bytes
    ({"body": "carriage\rreturn"}, "invalid_body"),
    ({"options": ["yes", "yes"]}, "invalid_options"),
    ({"options": ["yes", " "]}, "invalid_options"),
    ({"options": ["ن" * 300, "no"]}, "invalid_options"),
    ({"fraction": {"num": 2, "den": 3}}, "invalid_fraction"),
    ({"method": "supermajority"}, "invalid_fraction"),
    ({"method": "supermajority", "fraction": {"num": 1, "den": 2}}, "invalid_fraction"),
    ({"method": "supermajority", "fraction": {"num": 4, "den": 3}}, "invalid_fraction"),
    ({"quorum": {"num": 5, "den": 4}}, "invalid_quorum"),
    ({"opens_at": 1}, "invalid_window"),
    ({"closes_at": 1}, "invalid_window"),
    ({"opens_at": "now+30s", "closes_at": "now+60s"}, "invalid_window"),  # 30 s: too short
    ({"opens_at": "now+2y", "closes_at": "now+2y+1h"}, "invalid_window"),
    ({"closes_at": "now+91d"}, "invalid_window"),
]
OFFSETS = {"now+30s": 30, "now+60s": 60, "now+2y": 2 * 365 * 86_400,
           "now+2y+1h": 2 * 365 * 86_400 + HOUR, "now+91d": 91 * 86_400}  # fmt: skip


async def test_bad_drafts_get_the_services_codes(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        doc = await document(node)
        organiser = await node.member("organiser", via="token")
        before = await node.snapshot()
        for bad, code in BAD_DRAFTS:
            changes = {
                key: node.clock.now() + OFFSETS[value] if str(value) in OFFSETS else value
                for key, value in bad.items()
            }
            answer = await node.call("POST", "/proposals", organiser, draft(node, **changes))
            assert (answer.status, answer.code) == (400, code), (changes, answer.body)
            check_documented(doc, "POST", "/proposals", answer)
        assert await node.snapshot() == before


async def test_lists_filter_by_state_and_page(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        member = await node.member(via="token")
        now = node.clock.now()
        closing = await propose(node, closes_at=now + 60)
        cancelled = await propose(node)
        await node.call("POST", f"/proposals/{cancelled}/cancel", node.admin)
        upcoming = await propose(node, opens_at=now + 2 * HOUR, closes_at=now + 3 * HOUR)
        opened = [await propose(node, closes_at=now + HOUR) for _ in range(3)]
        node.clock.advance(60)  # voting on `closing` has ended, counted or not yet
        expected = {
            "open": opened[::-1], "upcoming": [upcoming], "closed": [closing],
            "cancelled": [cancelled],
        }  # fmt: skip
        for state, ids in expected.items():
            answer = await node.call("GET", f"/proposals?state={state}", member)
            assert [item["id"] for item in answer.body["items"]] == ids, state
            assert {item["state"] for item in answer.body["items"]} == {state}
        everything = [*opened[::-1], upcoming, cancelled, closing]  # newest first
        seen: list[str] = []
        cursor = ""
        for _ in range(4):
            answer = await node.call("GET", f"/proposals?limit=2{cursor}", member)
            seen += [item["id"] for item in answer.body["items"]]
            if answer.body["next"] is None:
                break
            cursor = f"&cursor={answer.body['next']}"
        assert seen == everything
        await close_now(node)
        counted = await node.call("GET", "/proposals?state=closed", member)
        assert counted.body["items"][0]["result"]["outcome"] == "no_quorum"


async def test_bad_list_queries(tmp_path: Path) -> None:
    async with api_node(tmp_path, sqlite_url(tmp_path)) as node:
        doc = await document(node)
        proposal = await propose(node, ballot="open")
        for path in ("/proposals", f"/proposals/{proposal}/voters", f"/proposals/{proposal}/votes"):
            for query, problem in (("state=asleep", "invalid_field"), ("limit=0", "invalid_field"),
                                   ("limit=101", "invalid_field"), ("cursor=bad", "invalid_cursor"),
                                   ("colour=red", "unknown_field")):  # fmt: skip
                unknown = query.startswith("state") and path != "/proposals"
                code = "unknown_field" if unknown else problem
                answer = await node.call("GET", f"{path}?{query}", node.admin)
                assert (answer.status, answer.code) == (400, code), (path, query, answer.body)
                check_documented(doc, "GET", path, answer)


def test_schema_names_are_unique() -> None:
    """The OpenAPI document names each schema once: two schemas of one name would make one
    of them silently document the other."""
    seen: dict[str, Schema] = {}

    def walk(schema: Schema) -> None:
        if schema.name in seen:
            assert seen[schema.name] == schema, schema.name
            return
        seen[schema.name] = schema
        for spec in schema.fields.values():
            inner = spec.items if spec.items is not None else spec
            if inner.fields is not None:
                walk(inner.fields)

    for route in api_routes():
        for schema in (route.body, route.query, route.returns):
            if schema is not None:
                walk(schema)
