"""Coalitions on one node (SPEC §15), on SQLite and PostgreSQL: the service (found, invite,
join, leave, with its refusals and the audit log), envelopes of other nodes through the real
inbox (an invite naming this node, joins, calls to the coalition: accepted from and through
members only, refused as ``not_for_us`` otherwise), the outbox (members and invitees among
the allies, never others) and the log endpoint's entitlement (members read, invitees read
only coalition.* envelopes, others see them withheld)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inbox_support import Origin, Receiver, receiver
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from test_calls_support import draft

from node.errors import NodeError
from node.federation.outbox import recipients
from node.services.calls import issue_call
from node.services.coalitions import Coalitions
from node.services.members import Actor
from node.storage.models import AuditEntry, CallRow, CoalitionMember, EnvelopeRow
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
    made = await service(rx).found(CLI, NAME, {"en": "Strike together."})
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
        (Member(rx.node_id, 1), Member(b.node_id, b.seq)),
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
