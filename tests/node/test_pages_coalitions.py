"""The coalitions pages over HTTP, on SQLite and PostgreSQL: who may see and use them; a
coalition founded on the page; the bad input each form refuses with a visible message,
changing nothing; an invite from another node declined; and two real nodes through their
admins' pages: A founds a coalition and invites B (an allied peer, from a list), B accepts on
its page, both list each other as members, a call from A to the coalition is offered and
issued through the new-call form and reaches B, whose call page names the coalition; then B
leaves."""

from __future__ import annotations

import re
from pathlib import Path

from delivery_support import eventually
from pages_support import Page, Visitor, admin_visitor, member_visitor
from peering_support import FedNode, MakeDatabase, fed_nodes, make_database, peer_up
from sqlalchemy import select
from test_api_coalitions import invited_by
from test_api_support import api_node
from test_calls_support import remote
from test_pages_forms import refused
from test_pages_peers import site_admin

from node.storage.models import CallRow
from node.web.keys import COALITIONS
from node.web.pages.labels import LABELS
from protocol import coalition_audience, fingerprint

__all__ = ["make_database"]  # the fixture, imported so pytest finds it

LIST = "/admin/coalitions"
NAMES = {"name_ar": "نقابات الجنوب", "name_ckb": "یەکێتییەکانی باشوور",
         "name_en": "Southern unions"}  # fmt: skip
PURPOSE = {"purpose_ar": "", "purpose_ckb": "", "purpose_en": "Strike together.\r\nWin."}
YES = {"confirm": "yes"}
STANDING = re.compile(r'id="standing">([^<]+)<')


def found_form(**changes: str) -> dict[str, str]:
    return NAMES | PURPOSE | changes


async def founded(admin: Visitor, **changes: str) -> int:
    """Found a coalition through the list page's form; its number here."""
    await admin.get(LIST)
    page = await admin.post(LIST, found_form(**changes))
    assert page.status == 303, (page.status, page.alert, page.field_errors)
    path, _, notice = page.location.partition("?")
    assert notice == "notice=founded"
    return int(path.rsplit("/", 1)[1])


def state_of(page: Page, node: bytes) -> str:
    """The state the members table shows for ``node``."""
    found = re.search(rf'id="member-{node.hex()}">.*?<td class="state">([^<]+)<', page.text, re.S)
    assert found, page.text
    return found.group(1)


def standing(page: Page) -> str:
    found = STANDING.search(page.text)
    assert found, page.text
    return found.group(1)


# --- who may use the pages ------------------------------------------------------------------


async def test_only_admins_see_and_use_the_coalition_pages(
    tmp_path: Path, database_url: str
) -> None:
    async with api_node(tmp_path, database_url) as node:
        page = await Visitor(node).get(LIST)
        assert (page.status, page.location) == (303, "/login?next=/admin/coalitions")
        for role in ("member", "organiser"):
            visitor = await member_visitor(node, role)
            home = await visitor.get("/")
            assert 'href="/admin/coalitions"' not in home.text
            for path in (LIST, f"{LIST}/1"):
                assert (await visitor.get(path)).status == 403, (role, path)
            await visitor.get("/")
            before = await node.snapshot()
            for path, fields in ((LIST, found_form()), (f"{LIST}/1/invite", {"node": "ab" * 32}),
                                 (f"{LIST}/1/join", {}), (f"{LIST}/1/leave", YES)):  # fmt: skip
                page = await visitor.post(path, fields)
                assert page.status == 403, (role, path, page.status)
                assert "You do not have the role this page needs." in page.text
            assert await node.snapshot() == before

        admin = await admin_visitor(node)
        page = await admin.get(LIST)
        assert page.status == 200, page.text
        assert '<a href="/admin/coalitions" aria-current="page">Coalitions</a>' in page.text
        assert "No coalition is waiting for this node's answer." in page.text
        assert "This node is in no coalition yet." in page.text
        assert "<script" not in page.text
        assert "style=" not in page.text
        assert len(page.text.encode()) < 20_000
        for path in (f"{LIST}/1", f"{LIST}/0", f"{LIST}/abc", f"{LIST}/1/invite"):
            page = await admin.get(path)
            assert page.status in (404, 405), path
            assert "There is nothing here." in page.text


# --- founding, and bad input --------------------------------------------------------------------


async def test_found_a_coalition_on_the_page(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        number = await founded(admin)
        (made,) = await node.client.app[COALITIONS].list()
        assert made["id"] == number
        assert made["name"] == {"ar": NAMES["name_ar"], "ckb": NAMES["name_ckb"],
                                "en": NAMES["name_en"]}  # fmt: skip
        assert made["purpose"] == {"en": "Strike together.\nWin."}
        page = await admin.get(f"{LIST}/{number}?notice=founded")
        assert page.notice
        assert page.notice.startswith("The coalition is founded")
        assert '<bdi lang="en">Southern unions</bdi>' in page.text
        assert standing(page) == "a member"
        assert "founder-unconfirmed" not in page.text  # its own found
        self_id = bytes.fromhex(made["founder"])
        assert state_of(page, self_id) == "member"
        assert fingerprint(self_id) in page.text
        assert "</bdi> (this node)</th>" in page.text
        assert "Macro" not in page.text
        assert "Every allied node is in the coalition or invited already." in page.text
        assert 'action="/admin/coalitions/1/leave"' in page.text
        assert 'action="/admin/coalitions/1/join"' not in page.text
        size = len(page.text.encode())
        print(f"page size {LIST}/{number}: {size} bytes")
        assert size < 20_000

        arabic = await admin_visitor(node, "ar")  # the founder again, in Arabic
        page = await arabic.get(LIST)
        assert '<bdi lang="ar">نقابات الجنوب</bdi>' in page.text  # in the reader's language
        assert "عضو" in page.text
        page = await arabic.get("/calls/new")
        assert f'value="{made["audience"]}"' in page.text
        assert 'التحالف: <bdi lang="ar">نقابات الجنوب</bdi>' in page.text
        audit = await arabic.get("/admin/audit")  # the founder reads Arabic now
        assert "تأسيس تحالف" in audit.text


async def test_bad_input_is_refused_visibly(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        number = await founded(admin)
        path = f"{LIST}/{number}"
        await admin.get(LIST)
        before = await node.snapshot()
        empty = dict.fromkeys(NAMES, "")
        for changes, field, message in (
            (empty, "name", "Write it in at least one language."),
            ({"name_ar": "ب" * 300}, "name_ar", "This is too long: at most 512 bytes"),
            ({"name_en": "x" * 513}, "name_en", "Enter at most 512 characters."),
            ({"name_en": "a\x07b"}, "name_en", "Use ordinary text, without control characters."),
            ({"purpose_ckb": "ب" * 9000}, "purpose_ckb", "at most 16,384 bytes"),
        ):
            page = await admin.post(LIST, found_form(**changes))
            refused(page, 400, field, message)
        page = await admin.post(LIST, found_form(name_en="Kept <b>", name_ar="ب" * 300))
        assert 'value="Kept &lt;b&gt;"' in page.text  # what was typed is kept, escaped

        await admin.get(path)
        page = await admin.post(f"{path}/invite", {"node": "ab" * 32})  # not an allied peer
        refused(page, 400, "node", "Choose one of the options.")
        page = await admin.post(f"{path}/invite", {"node": "<b>"})
        refused(page, 400, "node", "Choose one of the options.")
        page = await admin.post(f"{path}/leave")
        refused(page, 400, "confirm", "Tick the box to confirm.")
        page = await admin.post(f"{path}/leave", {"confirm": "no"})
        refused(page, 400, "confirm", "Tick the box to confirm.")
        page = await admin.post(f"{path}/join")
        refused(page, 409, None, "This node is a member of the coalition already.")
        assert standing(page) == "a member"
        # Forms our pages never send, forged ones, and coalitions that do not exist.
        page = await admin.post(LIST, found_form(), csrf="forged")
        refused(page, 403, None, "This form has expired")
        page = await admin.post(LIST, found_form(), csrf="")
        assert page.status == 403
        page = await admin.post(LIST, found_form(extra="1"))
        refused(page, 400, None, "The form is not one these pages send.")
        page = await admin.post(LIST, found_form(purpose_en="x" * 400 * 1024))
        assert page.status == 413
        page = await admin.post(f"{path}/leave", YES | {"confirm2": "yes"})
        refused(page, 400, None, "The form is not one these pages send.")
        for bad in (f"{LIST}/99/join", f"{LIST}/0/leave", f"{LIST}/x/invite", f"{path}/launch"):
            page = await admin.post(bad, YES if bad.endswith("leave") else {})
            assert page.status in (404, 405), bad
        assert (await admin.get(f"{LIST}?x=1")).status == 400
        assert await node.snapshot() == before
        sorani = await admin_visitor(node, "ckb")  # refusals are shown translated
        await sorani.get(path)
        page = await sorani.post(f"{path}/join")
        refused(page, 409, None, "ئەم گرێیە پێشتر ئەندامی هاوپەیمانییەکەیە.")
        page = await sorani.post(f"{path}/leave")
        refused(page, 400, "confirm", "بۆ دڵنیاکردنەوە نیشانە لە چوارگۆشەکە بدە.")


async def test_an_invite_from_another_node_is_declined(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        founder = remote()
        coalition = await invited_by(node, founder)
        admin = await admin_visitor(node)
        page = await admin.get(LIST)
        assert 'id="invitation-1"' in page.text
        assert 'action="/admin/coalitions/1/join"' in page.text
        assert fingerprint(founder.node_id) in page.text
        assert "a node that is not a peer of this one" in page.text
        page = await admin.get(f"{LIST}/1")
        assert standing(page) == "invited, not joined yet"
        assert "(founder not yet confirmed)" in page.text  # only the invite's word for it
        assert "Invited by" in page.text
        assert "Accepting uses the oldest" in page.text
        assert "Decline the invite" in page.text
        assert 'action="/admin/coalitions/1/invite"' not in page.text
        page = await admin.get("/calls/new")  # only a member calls the coalition
        assert coalition_audience(coalition) not in page.text

        page = await admin.post(f"{LIST}/1/leave")
        refused(page, 400, "confirm", "Tick the box to confirm.")
        page = await admin.post(f"{LIST}/1/leave", YES)
        assert (page.status, page.location) == (303, f"{LIST}/1?notice=declined")
        page = await admin.get(page.location)
        assert page.notice == "The invite is declined."
        assert standing(page) == "left it"
        assert "Only a new invite from a member brings it back." in page.text
        for action in ("join", "leave"):
            page = await admin.post(f"{LIST}/1/{action}", YES if action == "leave" else {})
            message = ("No open invite names this node." if action == "join"
                       else "This node is not in the coalition.")  # fmt: skip
            refused(page, 409, None, message)
        page = await admin.get(LIST)
        assert "No coalition is waiting for this node's answer." in page.text
        audit = await admin.get("/admin/audit")
        assert "left a coalition or declined its invite" in audit.text


def test_every_coalition_action_has_a_label() -> None:
    for action in ("found", "invite", "join", "leave"):
        assert f"coalition.{action}" in LABELS["action"]


# --- two nodes, through their admins' pages -----------------------------------------------------


def call_fields(audience: str) -> dict[str, str]:
    """The new-call form, filled in as little as it may be."""
    texts = {f"{p}_{c}": "" for p in ("title", "text") for c in ("ar", "ckb", "en")}
    empty = ("starts", "ends", "region", "place", "meeting_point", "sectors", "pledges", "orgs",
             "deadline")  # fmt: skip
    return texts | dict.fromkeys(empty, "") | {
        "kind": "strike", "title_en": "Coalition strike", "text_en": "Stop work together.",
        "audience": audience,
    }  # fmt: skip


async def calls_at(node: FedNode) -> list[tuple[int, str]]:
    """The calls ``node`` holds: (number, audience)."""
    async with node.sessions() as session:
        rows = await session.execute(select(CallRow.id, CallRow.audience).order_by(CallRow.id))
        return [(number, audience) for number, audience in rows.all()]


async def standings(node: FedNode) -> dict[str, str]:
    """Who is in this node's (only) coalition, as it computes it: node hex -> state."""
    items = await node.app[COALITIONS].list()
    return {m["node"]: m["state"] for item in items for m in item["members"]}


async def test_two_nodes_through_their_pages(tmp_path: Path, make_database: MakeDatabase) -> None:
    async with (
        fed_nodes(tmp_path, make_database, "Oil workers", "Teachers") as (a, b),
        site_admin(a) as admin_a,
        site_admin(b) as admin_b,
    ):
        await peer_up(a, b)
        number = await founded(admin_a)
        path = f"{LIST}/{number}"
        page = await admin_a.get(path)
        assert f'<option value="{b.node_id.hex()}" data-user>Teachers (' in page.text
        assert 'name="node" type="text"' not in page.text  # a list of allies, not free text
        page = await admin_a.post(f"{path}/invite", {"node": b.node_id.hex()})
        assert (page.status, page.location) == (303, f"{path}?notice=invited")
        page = await admin_a.get(page.location)
        assert state_of(page, b.node_id) == "invited"
        assert "<bdi>Teachers</bdi>" in page.text
        assert "<bdi>Oil workers</bdi> (this node)" in page.text
        assert fingerprint(b.node_id) in page.text
        page = await admin_a.post(f"{path}/invite", {"node": b.node_id.hex()})  # a stale form
        refused(page, 409, "node", "That node has an open invite to the coalition already.")

        async def b_invited() -> bool:
            return (await standings(b)).get(b.node_id.hex()) == "invited"

        await eventually(b_invited)
        page = await admin_b.get(LIST)
        found = re.search(r'id="invitation-(\d+)"', page.text)
        assert found, page.text
        there = f"{LIST}/{found.group(1)}"
        assert "Southern unions" in page.text
        assert "<bdi>Oil workers</bdi>" in page.text  # the founder, a peer of B
        page = await admin_b.post(f"{there}/join")
        assert (page.status, page.location) == (303, f"{there}?notice=joined")
        page = await admin_b.get(page.location)
        assert page.notice == "This node is a member of the coalition now. Calls can be sent to it."
        assert state_of(page, a.node_id) == state_of(page, b.node_id) == "member"
        page = await admin_b.post(f"{there}/join")
        refused(page, 409, None, "This node is a member of the coalition already.")
        both = {a.node_id.hex(): "member", b.node_id.hex(): "member"}

        async def a_sees_b() -> bool:
            return await standings(a) == both

        await eventually(a_sees_b)
        page = await admin_a.get(path)
        assert state_of(page, b.node_id) == "member"
        assert "Every allied node is in the coalition or invited already." in page.text

        # A's admin calls the coalition through the new-call form; it reaches B.
        audience = (await a.app[COALITIONS].get(number))["audience"]
        page = await admin_a.get("/calls/new")
        assert f'value="{audience}"' in page.text
        assert 'coalition: <bdi lang="en">Southern unions</bdi>' in page.text
        page = await admin_a.post("/calls/new", call_fields(audience))
        assert page.status == 303, (page.alert, page.field_errors)
        page = await admin_a.get(page.location.partition("?")[0])
        shown = '<dd id="audience">coalition: <bdi lang="en">Southern unions</bdi></dd>'
        assert shown in page.text

        async def b_holds_the_call() -> bool:
            return await calls_at(b) != []

        await eventually(b_holds_the_call)
        ((call, held_audience),) = await calls_at(b)
        assert held_audience == audience
        page = await admin_b.get(f"/calls/{call}")
        assert shown in page.text

        # B leaves through its page; A hears of it.
        page = await admin_b.post(f"{there}/leave", YES)
        assert (page.status, page.location) == (303, f"{there}?notice=left")
        page = await admin_b.get(page.location)
        assert standing(page) == "left it"
        page = await admin_b.post(f"{there}/invite", {"node": a.node_id.hex()})
        refused(page, 409, None, "Only a member of the coalition can invite")

        async def a_sees_b_left() -> bool:
            return (await standings(a)).get(b.node_id.hex()) == "left"

        await eventually(a_sees_b_left)
        page = await admin_a.get(path)
        assert f'<option value="{b.node_id.hex()}"' in page.text  # invitable again
        audit = await admin_a.get("/admin/audit")
        for label in ("coalition founded", "node invited to a coalition"):
            assert label in audit.text
        audit = await admin_b.get("/admin/audit")
        for label in ("joined a coalition", "left a coalition or declined its invite"):
            assert label in audit.text
