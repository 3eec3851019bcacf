"""The peers pages over HTTP, on SQLite and PostgreSQL: who may see and use them; a peering
invite made on a page (its string, QR code and the node's fingerprint) and revoked; the bad
input each form refuses with a visible message, changing nothing; two real nodes peered
through their admins' pages (the joiner compares the fingerprint first, both then see each
other allied with the same fingerprints), then block, unblock and remove; and a name for
every audit action the services write."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from pages_support import Page, Visitor, admin_visitor, member_visitor
from peering_support import FedNode, MakeDatabase, fed_nodes, make_database
from test_api_support import ApiNode, api_node
from test_pages_forms import refused

from node.federation.invite_codes import InviteCode, decode_invite, encode_invite
from node.web.keys import PEERING
from node.web.pages.labels import LABELS
from node.web.pages.peers import qr_svg
from protocol import fingerprint

__all__ = ["make_database"]  # the fixture, imported so pytest finds it

NODE_DIR = Path(__file__).resolve().parents[2] / "node"
INVITE = re.compile(r'id="peer-invite"[^>]*value="(tadamun-peer:[^"]+)"')
OWN = re.compile(r'id="own-fingerprint">([0-9 ]+)<')
THEIRS = re.compile(r'id="their-fingerprint">([0-9 ]+)<')
PEER_FP = re.compile(r'id="peer-fingerprint">([0-9 ]+)<')
STATE = re.compile(r'id="peer-state">([^<]+)<')
YES = {"compared": "yes"}


@dataclass
class Site:
    """A node served by peering_support, as a visitor's pages see it."""

    client: aiohttp.ClientSession


@asynccontextmanager
async def site_admin(node: FedNode) -> AsyncIterator[Visitor]:
    """The founder of ``node`` (registered now), logged in to its pages."""
    await node.admin_headers()
    async with aiohttp.ClientSession(
        base_url=node.url, cookie_jar=aiohttp.DummyCookieJar()
    ) as client:
        visitor = Visitor(Site(client))
        await visitor.login("founder")
        page = await visitor.post("/language", {"language": "en", "next": "/"})
        assert page.status == 303, page.text
        yield visitor


def node_id(node: ApiNode) -> bytes:
    return node.client.app[PEERING].node_id


def own_fingerprint(page: Page) -> str:
    found = OWN.search(page.text)
    assert found, page.text
    return found.group(1)


async def make_invite(admin: Visitor, hours: str = "24") -> tuple[Page, str]:
    await admin.get("/admin/peers")
    page = await admin.post("/admin/peers/invites", {"expires_hours": hours})
    assert page.status == 201, (page.status, page.alert, page.field_errors)
    found = INVITE.search(page.text)
    assert found, page.text
    return page, found.group(1)


# --- who may use the pages ------------------------------------------------------------------


async def test_only_admins_see_and_use_the_peers_pages(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        anonymous = Visitor(node)
        page = await anonymous.get("/admin/peers")
        assert page.status == 303
        assert page.location == "/login?next=/admin/peers"
        zero = "0" * 64
        for role in ("member", "organiser"):
            visitor = await member_visitor(node, role)
            home = await visitor.get("/")
            assert 'href="/admin/peers"' not in home.text
            for path in ("/admin/peers", f"/admin/peers/{zero}"):
                page = await visitor.get(path)
                assert page.status == 403, (role, path)
            await visitor.get("/")
            before = await node.snapshot()
            for path, fields in (
                ("/admin/peers/invites", {"expires_hours": "24"}),
                ("/admin/peers/check", {"invite": "tadamun-peer:x"}),
                ("/admin/peers/join", {"invite": "tadamun-peer:x", "compared": "yes"}),
                (f"/admin/peers/{zero}/block", {"confirm": "yes"}),
                (f"/admin/peers/invites/{'0' * 32}/revoke", {}),
            ):
                page = await visitor.post(path, fields)
                assert page.status == 403, (role, path, page.status)
                assert "You do not have the role this page needs." in page.text
            assert await node.snapshot() == before

        admin = await admin_visitor(node)
        page = await admin.get("/admin/peers")
        assert page.status == 200, page.text
        assert '<a href="/admin/peers" aria-current="page">Peers</a>' in page.text
        assert own_fingerprint(page) == fingerprint(node_id(node))
        assert "There are no peers yet." in page.text
        assert len(page.text.encode()) < 20_000
        for path in (f"/admin/peers/{zero}", "/admin/peers/ABC", "/admin/peers/invites"):
            page = await admin.get(path)
            assert page.status == 404, path
            assert "There is nothing here." in page.text


# --- invites --------------------------------------------------------------------------------


async def test_an_invite_made_on_the_page(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        page, text = await make_invite(admin, "48")
        own = own_fingerprint(page)
        code = decode_invite(text)
        assert code.node == node_id(node)
        assert code.endpoint == node.origin
        assert page.text.count(f">{own}<") == 2  # on top, and beside the invite to read aloud
        assert '<svg role="img" aria-label="The invite as a QR code"' in page.text
        assert "<script" not in page.text
        assert "style=" not in page.text
        size = len(page.text.encode())
        print(f"page size /admin/peers with an invite and its QR code: {size} bytes")
        assert size < 30_000
        listed = await node.call("GET", "/peer-invites", node.admin)
        (invite,) = listed.body["items"]
        assert invite["expires_at"] - invite["created_at"] == 48 * 3600
        assert invite["state"] == "usable"

        page = await admin.get("/admin/peers")
        assert text not in page.text  # shown once
        assert f'action="/admin/peers/invites/{invite["id"]}/revoke"' in page.text
        page = await admin.post(f"/admin/peers/invites/{invite['id']}/revoke")
        assert page.status == 303
        assert page.location == "/admin/peers?notice=invite_revoked"
        page = await admin.get(page.location)
        assert page.notice == "The peering invite is revoked."
        assert "There are no peering invites." in page.text
        page = await admin.post(f"/admin/peers/invites/{invite['id']}/revoke")
        assert page.status == 404

        audit = await admin.get("/admin/audit")
        assert "peering invite made" in audit.text
        assert "peering invite revoked" in audit.text


async def test_bad_input_is_refused_visibly(tmp_path: Path, database_url: str) -> None:
    async with api_node(tmp_path, database_url) as node:
        admin = await admin_visitor(node)
        _, own_invite = await make_invite(admin)
        await admin.get("/admin/peers")
        before = await node.snapshot()
        for hours, message in (
            ("0", "Enter a whole number from 1 to 2,160."),
            ("2161", "Enter a whole number from 1 to 2,160."),
            ("a week", "Enter a whole number from 1 to 2,160."),
        ):
            page = await admin.post("/admin/peers/invites", {"expires_hours": hours})
            refused(page, 400, "expires_hours", message)
            assert page.value_of("expires_hours") == hours
        for invite, message in (
            ("", "This field is required."),
            ("not an invite", "This is not a peering invite this node can use."),
            ("tadamun-peer:AAAA", "This is not a peering invite this node can use."),
            ("tadamun-peer:" + "A" * 2100, "Enter 1 to 2,048 characters."),
            (own_invite, "This is this node's own invite"),
        ):
            for path, extra in (("/admin/peers/check", {}), ("/admin/peers/join", YES)):
                page = await admin.post(path, {"invite": invite} | extra)
                refused(page, 400, "invite", message)
        # A well-formed invite of a node this one may not reach (no allow_networks here).
        elsewhere = _other_node_invite(own_invite)
        page = await admin.post("/admin/peers/check", {"invite": elsewhere})
        assert page.status == 200, page.alert
        assert THEIRS.search(page.text)
        assert 'name="invite" value="' in page.text
        page = await admin.post("/admin/peers/join", {"invite": elsewhere})
        refused(page, 400, "compared", "Tick the box once you have compared the fingerprints.")
        page = await admin.post("/admin/peers/join", {"invite": elsewhere, "compared": "yes"})
        refused(page, 400, None, "This node may not connect to the address in the invite.")
        assert page.value_of("invite") == elsewhere  # kept, to try again
        # Forms our pages never send, and forged ones.
        page = await admin.post("/admin/peers/invites", {"expires_hours": "24"}, csrf="forged")
        refused(page, 403, None, "This form has expired")
        page = await admin.post("/admin/peers/check", {"invite": elsewhere, "extra": "1"})
        refused(page, 400, None, "The form is not one these pages send.")
        await admin.get("/admin/peers")
        page = await admin.post(f"/admin/peers/invites/{'z' * 32}/revoke")
        assert page.status == 404
        assert await node.snapshot() == before


def _other_node_invite(own: str) -> str:
    """An invite of the same shape for another node id (its address is this node's)."""
    code = decode_invite(own)
    return encode_invite(InviteCode(code.endpoint, bytes(32), code.invite, code.secret))


# --- two nodes peered through their pages ---------------------------------------------------


async def test_two_nodes_peer_through_the_pages(
    tmp_path: Path, make_database: MakeDatabase
) -> None:
    async with (
        fed_nodes(tmp_path, make_database, "Oil workers", "Teachers") as (a, b),
        site_admin(a) as admin_a,
        site_admin(b) as admin_b,
    ):
        page, invite = await make_invite(admin_a)
        a_fingerprint = own_fingerprint(page)
        assert a_fingerprint == fingerprint(a.node_id)

        page = await admin_b.get("/admin/peers")
        b_fingerprint = own_fingerprint(page)
        page = await admin_b.post("/admin/peers/check", {"invite": invite})
        assert page.status == 200, (page.alert, page.field_errors)
        shown = THEIRS.search(page.text)
        assert shown
        assert shown.group(1) == a_fingerprint  # compared before anything is sent
        assert await b.peer(a.node_id) is None
        page = await admin_b.post("/admin/peers/join", {"invite": invite, "compared": "yes"})
        assert page.status == 303, (page.alert, page.text)
        assert page.location == f"/admin/peers/{a.node_id.hex()}?notice=joined"
        page = await admin_b.get(page.location)
        assert "The two nodes are allied." in (page.notice or "")
        assert "<bdi>Oil workers</bdi>" in page.text
        assert _match(PEER_FP, page) == a_fingerprint
        assert _match(STATE, page) == "allied"

        page = await admin_a.get("/admin/peers")
        assert "<bdi>Teachers</bdi>" in page.text
        assert f">{b_fingerprint}<" in page.text
        assert "<td>used</td>" in page.text  # the invite
        page = await admin_a.get(f"/admin/peers/{b.node_id.hex()}")
        assert _match(PEER_FP, page) == b_fingerprint
        assert _match(STATE, page) == "allied"

        path = f"/admin/peers/{b.node_id.hex()}"
        page = await admin_a.post(f"{path}/block")
        refused(page, 400, "confirm", "Tick the box to confirm.")
        assert (await a.peer(b.node_id)).state == "allied"  # type: ignore[union-attr]
        page = await admin_a.post(f"{path}/block", {"confirm": "yes"})
        assert page.status == 303
        page = await admin_a.get(page.location)
        assert page.notice == "The peer is blocked: nothing is accepted from it or sent to it."
        assert _match(STATE, page) == "blocked"
        assert f'action="{path}/unblock"' in page.text
        assert f'action="{path}/block"' not in page.text
        page = await admin_a.post(f"{path}/block", {"confirm": "yes"})
        refused(page, 409, None, "This peer's state does not allow that.")
        page = await admin_a.post(f"{path}/launch", {"confirm": "yes"})
        assert page.status == 404
        page = await admin_a.post(f"{path}/unblock", {"confirm": "yes"})
        assert page.status == 303
        assert _match(STATE, await admin_a.get(page.location)) == "allied"
        page = await admin_a.post(f"{path}/remove", {"confirm": "yes"})
        assert page.status == 303
        page = await admin_a.get(page.location)
        assert page.notice == "The peer is removed. Only a new invite brings it back."
        assert _match(STATE, page) == "removed"
        assert "/remove" not in page.text

        audit = await admin_a.get("/admin/audit")
        for shown_label in ("another node joined our invite", "peer blocked", "peer unblocked",
                            "peer removed"):  # fmt: skip
            assert shown_label in audit.text
        audit = await admin_b.get("/admin/audit")
        assert "joined another node&#39;s invite" in audit.text


def _match(pattern: re.Pattern[str], page: Page) -> str:
    found = pattern.search(page.text)
    assert found, page.text
    return found.group(1)


# --- audit actions --------------------------------------------------------------------------

AUDIT_CALL = re.compile(r"audit\(\s*session,[^,]+,[^,]+,\s*(f?)\"([a-z_.{}]+)\"", re.S)
# Actions written from a template or a message type, spelled out.
DYNAMIC = {
    "member.{action}": ("member.approve", "member.suspend", "member.reinstate"),
    "peer.{action}": ("peer.block", "peer.unblock", "peer.remove"),
    "call.{stance}": ("call.endorsed", "call.declined"),
}
BY_TYPE = ("call.amend", "call.cancel", "call.update", "call.conclude")  # message.TYPE
BY_VARIABLE = ("member.leave", "member.delete", "member.register", "node.init")


def test_every_audit_action_has_a_label() -> None:
    written: set[str] = set(BY_TYPE) | set(BY_VARIABLE)
    for source in NODE_DIR.rglob("*.py"):
        for is_template, action in AUDIT_CALL.findall(source.read_text()):
            if is_template:
                assert action in DYNAMIC, f"{source}: spell out {action!r} here"
                written |= set(DYNAMIC[action])
            else:
                written.add(action)
    assert {"call.issue", "peer.join", "peer.accept", "peer.invite.create"} <= written
    missing = written - set(LABELS["action"])
    assert not missing, missing


def test_the_qr_code_is_an_inline_image_without_script_or_style() -> None:
    svg = qr_svg("tadamun-peer:" + "A" * 150, 'a "label" <here>')
    assert svg.startswith('<svg role="img" aria-label="a &#34;label&#34; &lt;here&gt;" ')
    assert "<script" not in svg
    assert "style" not in svg
    assert len(svg) < 6_000
