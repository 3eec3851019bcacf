"""Coalitions on one node (SPEC §15), on SQLite and PostgreSQL: the service (found, invite,
join, leave, with its refusals and the audit log), envelopes of other nodes through the real
inbox (an invite naming this node, joins, calls to the coalition: accepted from and through
members only, refused as ``not_for_us`` otherwise), the outbox (members and invitees among
the allies, never others), the log endpoint's entitlement (members read, invitees read
only coalition.* envelopes, others see them withheld), and trust: invites naming this node
from allies only, the oldest invite's view until the admins choose, the founder's found
confirming it and overruling a renaming invite, and nothing kept of nodes never named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inbox_support import Origin, Receiver, receiver
from peering_support import START
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_calls_support import draft

from node.errors import NodeError
from node.federation.outbox import recipients
from node.services.calls import issue_call
from node.services.coalitions import Coalitions
from node.services.members import Actor
from node.storage.models import (
    AuditEntry,
    CallRow,
    CoalitionEventRow,
    CoalitionMember,
    CoalitionRow,
    EnvelopeRow,
)
from protocol import (
    CallIssue,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionLeave,
    Message,
    SignedEnvelope,
    coalition_audience,
    coalition_id,
)
from protocol.coalitions import Member

CLI = Actor.cli()
NAME = {"en": "Southern unions", "ar": "نقابات الجنوب"}
PURPOSE = {"en": "Strike together."}


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


def service(rx: Receiver) -> Coalitions:
    return Coalitions(rx.node.sessions, rx.node.clock, rx.node.signer)


def send(origin: Origin, message: Message, audience: str | None = None) -> bytes:
    """``origin``'s next envelope carrying ``message``, to its coalition by default."""
    aud = audience or coalition_audience(message.coalition)  # type: ignore[attr-defined]
    return origin.envelope(type=message.TYPE, body=message.to_body(), audience=aud).to_bytes()


def call_issue(origin: Origin, coalition: bytes, title: str = "Strike") -> bytes:
    issue = CallIssue(kind="strike", title={"en": title}, text={"en": "Stop."})
    return send(origin, issue, coalition_audience(coalition))


async def own(rx: Receiver, type_: str) -> list[SignedEnvelope]:
    async with rx.node.sessions() as session:
        wires = await session.scalars(
            select(EnvelopeRow.wire).where(
                EnvelopeRow.origin == rx.node_id, EnvelopeRow.type == type_
            ).order_by(EnvelopeRow.seq)
        )  # fmt: skip
        return [SignedEnvelope.from_bytes(w) for w in wires if w is not None]


async def targets(rx: Receiver, signed: SignedEnvelope) -> list[bytes]:
    async with rx.node.sessions() as session:
        row = await session.scalar(select(EnvelopeRow).where(EnvelopeRow.id == signed.id))
        assert row is not None
        return await recipients(session, row)


async def states(rx: Receiver, coalition: bytes) -> dict[bytes, str]:
    async with rx.node.sessions() as session:
        rows = await session.scalars(
            select(CoalitionMember).where(CoalitionMember.coalition == coalition)
        )
        return {row.node: row.state for row in rows}


async def refusal(rx: Receiver, call: Any) -> str:
    with pytest.raises(NodeError) as caught:
        await call
    return caught.value.code


async def founded_with(rx: Receiver, *allies: Origin) -> tuple[dict[str, Any], list[bytes]]:
    """This node founds a coalition and invites ``allies`` (allied peers), who join; the
    coalition and the ids of the invites."""
    made = await service(rx).found(CLI, NAME, PURPOSE)
    coalition = bytes.fromhex(made["coalition"])
    invites = []
    for ally in allies:
        await rx.peer(ally)
        await service(rx).invite(CLI, made["id"], ally.node_id.hex())
        invites.append((await own(rx, CoalitionInvite.TYPE))[-1].id)
        result = await rx.receive(ally, [send(ally, CoalitionJoin(coalition, invites[-1]))])
        assert result.results == ("ok",)
    return made, invites


# ------------------------------------------------------------------ the service


async def test_found_invite_and_the_audit_log(rx: Receiver) -> None:
    ally = Origin.new()
    made = await service(rx).found(CLI, NAME)
    coalition = bytes.fromhex(made["coalition"])
    (found,) = await own(rx, "coalition.found")
    assert found.envelope.audience == coalition_audience(coalition) == made["audience"]
    assert coalition == coalition_id(rx.node_id, found.envelope.body["salt"])
    assert made["standing"] == "member"
    assert made["name"] == NAME
    assert [m["state"] for m in made["members"]] == ["member"]
    assert await targets(rx, found) == []  # no other member yet
    await rx.peer(ally)
    after = await service(rx).invite(CLI, made["id"], ally.node_id.hex()[:12])
    assert [(m["node"], m["state"]) for m in after["members"]] == [
        (rx.node_id.hex(), "member"), (ally.node_id.hex(), "invited"),
    ]  # fmt: skip
    (invite,) = await own(rx, CoalitionInvite.TYPE)
    body = CoalitionInvite.from_body(invite.envelope.body)
    assert body.members == (Member(rx.node_id, found.envelope.seq),)
    assert (body.name, body.invitee) == (NAME, ally.node_id)
    assert await targets(rx, invite) == [ally.node_id]
    async with rx.node.sessions() as session:
        actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions[-2:] == ["coalition.found", "coalition.invite"]
    assert await service(rx).list() == [await service(rx).get(made["id"])]


async def test_invite_refusals(rx: Receiver) -> None:
    made, _ = await founded_with(rx, member := Origin.new())
    blocked, stranger = Origin.new(), Origin.new()
    await rx.peer(blocked, "blocked")
    number, svc = made["id"], service(rx)
    assert await refusal(rx, svc.invite(CLI, number, member.node_id.hex())) == "already_member"
    assert await refusal(rx, svc.invite(CLI, number, rx.node_id.hex())) == "own_node"
    assert await refusal(rx, svc.invite(CLI, number, blocked.node_id.hex())) == "blocked_node"
    assert await refusal(rx, svc.invite(CLI, number, "zz")) == "unknown_node"
    assert await refusal(rx, svc.invite(CLI, number, "")) == "unknown_node"
    assert await refusal(rx, svc.invite(CLI, 99, stranger.node_id.hex())) == "not_found"
    await svc.invite(CLI, number, stranger.node_id.hex())  # not a peer: by its full id
    assert await refusal(rx, svc.invite(CLI, number, stranger.node_id.hex())) == "already_invited"
    assert await refusal(rx, svc.join(CLI, number)) == "already_member"
    assert await refusal(rx, svc.found(CLI, {})) == "invalid_field"
    assert await refusal(rx, svc.found(CLI, {"EN": "x"})) == "invalid_field"
    await svc.leave(CLI, number)
    assert await refusal(rx, svc.leave(CLI, number)) == "not_in_coalition"
    assert await refusal(rx, svc.join(CLI, number)) == "not_invited"
    assert await refusal(rx, svc.invite(CLI, number, Origin.new().node_id.hex())) == "not_a_member"


# ------------------------------------------------------------------ being invited, joining


async def test_an_invite_naming_this_node_then_join_and_a_call(rx: Receiver) -> None:
    founder, outsider = Origin.new(), Origin.new()
    await rx.peer(founder)
    await rx.peer(outsider)
    coalition = coalition_id(founder.node_id, b"s" * 32)
    found_body = {"coalition": coalition, "salt": b"s" * 32, "name": NAME}
    found = founder.envelope(
        type="coalition.found", audience=coalition_audience(coalition), body=found_body
    )
    invite = CoalitionInvite(coalition, rx.node_id, founder.node_id, b"s" * 32, NAME,
                             (Member(founder.node_id, 1),))  # fmt: skip
    result = await rx.receive(founder, [found.to_bytes(), send(founder, invite)])
    assert result.results == ("not_for_us", "ok")  # the found came before this node knew
    (listed,) = await service(rx).list()
    assert (listed["standing"], listed["name"], listed["founder"]) == (
        "invited", NAME, founder.node_id.hex(),
    )  # fmt: skip
    early = call_issue(founder, coalition)  # only members get calls
    assert (await rx.receive(founder, [early])).results == ("not_for_us",)
    joined = await service(rx).join(CLI, listed["id"])
    assert joined["standing"] == "member"
    (join,) = await own(rx, CoalitionJoin.TYPE)
    assert await targets(rx, join) == [founder.node_id]
    assert (await rx.receive(founder, [call_issue(founder, coalition, "Now")])).results == ("ok",)
    async with rx.node.sessions() as session:
        titles = [c.title for c in await session.scalars(select(CallRow))]
    assert titles == [{"en": "Now"}]
    stranger_call = call_issue(outsider, coalition)  # from a node that is not in it
    assert (await rx.receive(outsider, [stranger_call])).results == ("not_for_us",)
    relayed = SignedEnvelope.from_bytes(call_issue(founder, coalition)).relayed_by(outsider.node_id)
    assert (await rx.receive(outsider, [relayed.to_bytes()])).results == ("not_for_us",)


async def test_unknown_coalitions_and_bad_envelopes(rx: Receiver) -> None:
    made, _ = await founded_with(rx, member := Origin.new())
    coalition = bytes.fromhex(made["coalition"])
    other = coalition_id(member.node_id, b"o" * 32)
    assert (await rx.receive(member, [call_issue(member, other)])).results == ("not_for_us",)
    assert (await rx.receive(member, [send(member, CoalitionLeave(other))])).results == (
        "not_for_us",
    )
    wrong_aud = send(member, CoalitionLeave(coalition), coalition_audience(other))
    assert (await rx.receive(member, [wrong_aud])).results == ("not_for_us",)
    thief_body = {"coalition": coalition, "salt": b"x" * 32, "name": NAME}
    thief = member.envelope(type="coalition.found", audience=made["audience"], body=thief_body)
    mismatch = member.envelope(type="coalition.leave", audience=made["audience"],
                               body={"coalition": other})  # fmt: skip
    bad_body = member.envelope(type="coalition.join", audience=made["audience"],
                               body={"coalition": coalition})  # fmt: skip
    result = await rx.receive(member, [thief.to_bytes(), mismatch.to_bytes(), bad_body.to_bytes()])
    assert result.results == ("invalid_field", "invalid_field", "missing_field")
    assert await states(rx, coalition) == {rx.node_id: "member", member.node_id: "member"}


async def test_a_join_that_arrives_before_its_invite_counts_once_the_invite_does(
    rx: Receiver,
) -> None:
    made, _ = await founded_with(rx, b := Origin.new(), c := Origin.new())
    coalition = bytes.fromhex(made["coalition"])
    d = Origin.new()
    body = CoalitionInvite(
        coalition, d.node_id, rx.node_id, await salt(rx), NAME,
        (Member(rx.node_id, 1), Member(b.node_id, b.seq)), purpose=PURPOSE,
    )  # fmt: skip
    signed_invite = SignedEnvelope.from_bytes(send(b, body))
    await rx.know(d)
    join = send(d, CoalitionJoin(coalition, signed_invite.id))
    assert (await rx.receive(c, [join])).results == ("ok",)  # relayed by c, before the invite
    assert d.node_id not in await states(rx, coalition)
    assert (await rx.receive(b, [signed_invite.to_bytes()])).results == ("ok",)
    assert (await states(rx, coalition))[d.node_id] == "member"


async def salt(rx: Receiver) -> bytes:
    (found,) = await own(rx, "coalition.found")
    return bytes(found.envelope.body["salt"])


# ------------------------------------------------------------------ routing and relaying


async def test_calls_go_to_members_among_the_allies_and_are_relayed_only_among_them(
    rx: Receiver,
) -> None:
    b, c = Origin.new(), Origin.new()
    made, _ = await founded_with(rx, b, c)
    ally = Origin.new()  # allied with this node, never in the coalition
    await rx.peer(ally)
    number = await issue_call(rx.node.sessions, rx.node.signer,
                              draft(audience=made["audience"]), by=None, now=rx.now())  # fmt: skip
    (issue,) = await own(rx, CallIssue.TYPE)
    assert sorted(await targets(rx, issue)) == sorted([b.node_id, c.node_id])
    assert number == 1
    from_b = SignedEnvelope.from_bytes(call_issue(b, bytes.fromhex(made["coalition"])))
    assert (await rx.receive(b, [from_b.to_bytes()])).results == ("ok",)
    assert await targets(rx, from_b) == [c.node_id]  # not back to b, never to the ally
    await service(rx).leave(CLI, made["id"])
    with pytest.raises(NodeError) as caught:
        await issue_call(rx.node.sessions, rx.node.signer, draft(audience=made["audience"]),
                         by=None, now=rx.now())  # fmt: skip
    assert caught.value.code == "audience_unsupported"
    (leave,) = await own(rx, CoalitionLeave.TYPE)
    assert sorted(await targets(rx, leave)) == sorted([b.node_id, c.node_id])
    later = SignedEnvelope.from_bytes(call_issue(b, bytes.fromhex(made["coalition"]), "Later"))
    assert (await rx.receive(b, [later.to_bytes()])).results == ("not_for_us",)


async def test_a_member_that_left_is_refused_and_gets_nothing(rx: Receiver) -> None:
    b, c = Origin.new(), Origin.new()
    made, _ = await founded_with(rx, b, c)
    coalition = bytes.fromhex(made["coalition"])
    assert (await rx.receive(c, [send(c, CoalitionLeave(coalition))])).results == ("ok",)
    assert (await states(rx, coalition))[c.node_id] == "left"
    assert (await rx.receive(c, [call_issue(c, coalition)])).results == ("not_for_us",)
    await issue_call(rx.node.sessions, rx.node.signer, draft(audience=made["audience"]),
                     by=None, now=rx.now())  # fmt: skip
    (issue,) = await own(rx, CallIssue.TYPE)
    assert await targets(rx, issue) == [b.node_id]


# ------------------------------------------------------------------ the log endpoint


async def test_the_log_serves_coalition_envelopes_to_members_only(rx: Receiver) -> None:
    b, invitee, ally = Origin.new(), Origin.new(), Origin.new()
    made, _ = await founded_with(rx, b)
    await rx.peer(invitee)
    await rx.peer(ally)
    await service(rx).invite(CLI, made["id"], invitee.node_id.hex())
    await issue_call(rx.node.sessions, rx.node.signer, draft(audience=made["audience"]),
                     by=None, now=rx.now())  # fmt: skip

    async def readable(requester: Origin) -> list[str]:
        page = await rx.inbox.log_page(requester.node_id, rx.node_id, after=0, limit=256,
                                       now=rx.now())  # fmt: skip
        kinds = []
        for entry in page.entries:
            if entry.env is not None:
                envelope = SignedEnvelope.from_bytes(entry.env).envelope
                if envelope.audience == made["audience"]:
                    kinds.append(envelope.type)
        return kinds

    everything = ["coalition.found", "coalition.invite", "coalition.invite", "call.issue"]
    assert await readable(b) == everything
    assert await readable(invitee) == everything[:3]
    assert await readable(ally) == []


# ------------------------------------------------------------------ trust and storage


def found_of(founder: Origin, coalition: bytes, salt_: bytes, name: dict[str, str]) -> bytes:
    body = {"coalition": coalition, "salt": salt_, "name": name}
    return founder.envelope(
        type="coalition.found", audience=coalition_audience(coalition), body=body
    ).to_bytes()


def invite_of(inviter: Origin, invitee: bytes, founder: bytes, salt_: bytes, **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "coalition": coalition_id(founder, salt_), "invitee": invitee, "founder": founder,
        "salt": salt_, "name": NAME, "members": (Member(inviter.node_id, 1),),
    } | changes  # fmt: skip
    return CoalitionInvite(**fields)


async def events_of(rx: Receiver, coalition: bytes) -> int:
    async with rx.node.sessions() as session:
        rows = await session.scalars(
            select(CoalitionEventRow.id).where(CoalitionEventRow.coalition == coalition)
        )
        return len(list(rows))


def at(origin: Origin, message: Message, created: int) -> bytes:
    """``origin``'s next envelope carrying ``message`` to its coalition, made at ``created``."""
    aud = coalition_audience(message.coalition)  # type: ignore[attr-defined]
    return origin.envelope(
        type=message.TYPE, body=message.to_body(), audience=aud, created=created
    ).to_bytes()


async def warm(rx: Receiver, origin: Origin, coalition: bytes) -> None:
    """``origin``'s seq 1, which this node may not keep: its later envelopes follow it."""
    (status,) = (await rx.receive(origin, [send(origin, CoalitionLeave(coalition))])).results
    assert status == "not_for_us"


async def test_an_invite_naming_this_node_only_from_an_allied_peer(rx: Receiver) -> None:
    founder, stranger = Origin.new(), Origin.new()
    await rx.peer(founder)
    await rx.peer(stranger, "introduced")  # a peer, not an ally: it learnt founder and salt
    salt_ = b"s" * 32
    coalition = coalition_id(founder.node_id, salt_)
    await warm(rx, stranger, coalition)
    forged = invite_of(stranger, rx.node_id, founder.node_id, salt_, name={"en": "Renamed"})
    assert (await rx.receive(stranger, [send(stranger, forged)])).results == ("not_for_us",)
    assert await service(rx).list() == []
    found = found_of(founder, coalition, salt_, NAME)
    invite = send(founder, invite_of(founder, rx.node_id, founder.node_id, salt_))
    assert (await rx.receive(founder, [found, invite])).results == ("not_for_us", "ok")
    (listed,) = await service(rx).list()
    assert (listed["name"], listed["standing"]) == (NAME, "invited")
    assert [i["inviter"] for i in listed["invitations"]] == [founder.node_id.hex()]
    assert listed["founder_verified"] is False  # its found came before this node knew


async def test_a_newer_invite_never_replaces_the_view_and_join_takes_the_chosen_one(
    rx: Receiver,
) -> None:
    founder, other = Origin.new(), Origin.new()  # both allied; other is not in the coalition
    await rx.peer(founder)
    await rx.peer(other)
    salt_ = b"s" * 32
    coalition = coalition_id(founder.node_id, salt_)
    await warm(rx, founder, coalition)
    await warm(rx, other, coalition)
    mine = invite_of(founder, rx.node_id, founder.node_id, salt_)
    first = at(founder, mine, START - 100)
    renamed = invite_of(other, rx.node_id, founder.node_id, salt_, name={"en": "Renamed"})
    second = at(founder, mine, START - 50)
    batch = [at(other, renamed, START - 10), second, first]
    assert (await rx.receive(founder, batch)).results == ("ok", "ok", "ok")
    (view,) = await service(rx).list()
    assert view["name"] == NAME  # the oldest invite's view, not the newest one's
    assert await states(rx, coalition) == {founder.node_id: "member", rx.node_id: "invited"}
    ids = [SignedEnvelope.from_bytes(w).id for w in (first, second)]
    assert [i["invite"] for i in view["invitations"]] == [i.hex() for i in ids]
    assert {i["inviter"] for i in view["invitations"]} == {founder.node_id.hex()}
    (forged,) = await own_invites_to(rx, other)
    assert await refusal(rx, service(rx).join(CLI, view["id"], forged.hex())) == "not_invited"
    joined = await service(rx).join(CLI, view["id"], ids[1].hex()[:10])
    assert joined["standing"] == "member"
    (join,) = await own(rx, CoalitionJoin.TYPE)
    assert join.envelope.body["invite"] == ids[1]
    assert joined["name"] == NAME


async def own_invites_to(rx: Receiver, origin: Origin) -> list[bytes]:
    """The ids of ``origin``'s invites held here."""
    return [row.id for row in await rx.rows(origin) if row.type == CoalitionInvite.TYPE]


async def test_the_founders_found_confirms_it_and_overrules_a_renaming_invite(
    rx: Receiver,
) -> None:
    founder, member = Origin.new(), Origin.new()
    await rx.peer(founder)
    await rx.peer(member)
    salt_ = b"s" * 32
    coalition = coalition_id(founder.node_id, salt_)
    found = found_of(founder, coalition, salt_, NAME)  # the founder's seq 1
    await warm(rx, member, coalition)
    members = (Member(founder.node_id, 1), Member(member.node_id, 1))
    invite = invite_of(member, rx.node_id, founder.node_id, salt_, members=members)
    assert (await rx.receive(member, [at(member, invite, START - 100)])).results == ("ok",)
    (view,) = await service(rx).list()
    assert (view["founder_verified"], view["name"]) == (False, NAME)  # the invite's word
    renamed = invite_of(member, rx.node_id, founder.node_id, salt_, members=members,
                        name={"en": "Renamed"})  # fmt: skip
    assert (await rx.receive(member, [at(member, renamed, START - 50)])).results == ("ok",)
    assert len((await service(rx).get(view["id"]))["invitations"]) == 2
    assert (await rx.receive(founder, [found])).results == ("ok",)  # the founder's own found
    view = await service(rx).get(view["id"])
    assert (view["founder_verified"], view["name"]) == (True, NAME)
    assert len(view["invitations"]) == 1  # the renaming invite no longer counts
    again = at(member, renamed, START - 10)
    assert (await rx.receive(member, [again])).results == ("invalid_field",)
    assert len((await service(rx).get(view["id"]))["invitations"]) == 1


async def test_an_invite_failing_the_checks_marks_nothing_for_the_batch(rx: Receiver) -> None:
    founder, someone = Origin.new(), Origin.new()
    await rx.peer(founder)
    salt_ = b"s" * 32
    coalition = coalition_id(founder.node_id, salt_)
    bad = invite_of(
        founder, rx.node_id, founder.node_id, salt_, members=(Member(someone.node_id, 1),)
    )  # the inviter not in its snapshot
    after = found_of(founder, coalition, salt_, NAME)  # its founder's: for an invitee
    result = await rx.receive(founder, [send(founder, bad), after])
    assert result.results == ("invalid_field", "not_for_us")
    assert await service(rx).list() == []


async def test_coalition_envelopes_of_nodes_it_never_named_are_not_kept(rx: Receiver) -> None:
    made, invites = await founded_with(rx, b := Origin.new())
    coalition = bytes.fromhex(made["coalition"])
    junk = Origin.new()  # a throwaway identity that knows the coalition's id
    await rx.peer(junk, "introduced")
    before = await events_of(rx, coalition)
    items = [
        send(junk, CoalitionLeave(coalition)),
        send(junk, CoalitionJoin(coalition, invites[0])),  # b's invite, not junk's
        send(junk, invite_of(junk, b.node_id, rx.node_id, await salt(rx), purpose=PURPOSE)),
    ]
    assert (await rx.receive(junk, items)).results == ("not_for_us",) * 3
    assert await events_of(rx, coalition) == before
    assert all(row.wire is None for row in await rx.rows(junk))  # withheld, not stored
    assert junk.node_id not in await states(rx, coalition)  # never listed as "left"


async def test_resolve_reads_a_number_only_if_it_is_one_here(rx: Receiver) -> None:
    made = await service(rx).found(CLI, NAME)
    async with rx.node.sessions.begin() as session:
        row = CoalitionRow(coalition_id=bytes.fromhex("123" + "a" * 61), founder=rx.node_id,
                           salt=b"s" * 32, name=NAME, purpose=None, seed=b"x" * 32,
                           created_at=0, updated_at=0)  # fmt: skip
        session.add(row)
        await session.flush()
        number = row.id
    assert number != 123
    assert await service(rx).resolve(str(made["id"])) == made["id"]
    assert await service(rx).resolve("123") == number  # no coalition 123 here: a prefix
    with pytest.raises(NodeError):
        await service(rx).resolve("999")
