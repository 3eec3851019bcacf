"""The inbox service (node.federation.inbox) with real signed envelopes from several node
identities, on SQLite and PostgreSQL: accepted, duplicate and refused items, each refusal
changing nothing; sender admission; ordering through escrow; forks; key events pushed with
the batch (delegation, seals, rollback, duplicity); handlers; relaying."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from inbox_support import NOTE, Origin, Receiver, receiver, tamper
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from test_decisions_support import START

from node.federation import batchwrite
from node.federation.inbox import Inbox
from node.federation.keylogs import KeyLogs
from node.federation.senders import SenderRefused
from node.federation.wire import LogEntry
from node.storage import contact_log
from node.storage.db import create_engine, session_factory
from node.storage.models import Alliance, ContactLogEntry, EscrowEntry, ForkEvidence, OutboxEntry
from node.storage.models import Peer as PeerRow
from protocol import Limits, encode

BIG = Limits(max_size=1 << 20, max_str=1 << 20)


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


@pytest.fixture
async def alice(rx: Receiver) -> Origin:
    """An allied peer that sends its own envelopes."""
    origin = Origin.new()
    await rx.peer(origin)
    return origin


async def test_a_valid_batch_is_stored_in_order_and_acknowledged(
    rx: Receiver, alice: Origin
) -> None:
    wires = alice.wires(3)
    result = await rx.receive(alice, wires, alice.keys)
    assert result.results == ("ok", "ok", "ok")
    assert result.keys == ("duplicate",)
    rows = await rx.rows(alice)
    assert [(r.seq, r.id, r.wire, r.type) for r in rows] == [
        (s.envelope.seq, s.id, w, NOTE) for s, w in zip(alice.signed, wires, strict=True)
    ]
    assert await rx.head(alice) == 3
    async with rx.node.sessions() as session:
        peer = await session.get(PeerRow, alice.node_id)
        assert peer is not None
        assert peer.last_contact_at == rx.now()


async def test_duplicates_are_answered_and_change_nothing(rx: Receiver, alice: Origin) -> None:
    wires = alice.wires(2)
    await rx.receive(alice, wires)
    before = await rx.snapshot()
    result = await rx.receive(alice, [*wires, wires[0]])
    assert result.results == ("duplicate", "duplicate", "duplicate")
    assert await rx.snapshot() == before
    fresh = alice.envelope().to_bytes()  # twice in one batch: the second is the duplicate
    assert (await rx.receive(alice, [fresh, fresh])).results == ("ok", "duplicate")


def _bad_items(alice: Origin, rx: Receiver) -> dict[str, bytes]:
    """One bad item per way of being bad, each at alice's next place in the chain."""
    seq, prev = alice.seq + 1, alice.prev
    good = alice.envelope(seq=seq, prev=prev)
    forged = bytearray(good.to_bytes())
    forged[-1] ^= 1
    noncanonical = bytearray(good.to_bytes())
    noncanonical[0:1] = b"\xde\x00\x02"  # map16 header for a 2-entry map: not the shortest
    other = Origin.new()
    return {
        "bad_signature": bytes(forged),
        "tampered": tamper(good, body={"text": "changed"}),
        "noncanonical": bytes(noncanonical),
        "from_future": alice.envelope(seq=seq, prev=prev, created=rx.now() + 301).to_bytes(),
        "unknown_origin": other.envelope().to_bytes(),
        "not_yet_signed_key": alice.envelope(seq=seq, prev=prev, kpos=5).to_bytes(),
        "garbage": b"\xc1",
        "empty": b"",
        "too_large": encode({"env": {"x": "y" * 70_000}, "sig": b"s" * 64}, BIG),
    }


EXPECTED = {
    "bad_signature": "bad_signature",
    "tampered": "bad_signature",
    "noncanonical": "noncanonical",
    "from_future": "from_future",
    "unknown_origin": "unknown_origin",
    "not_yet_signed_key": "key_position_unknown",
    "garbage": "malformed",
    "empty": "truncated",
    "too_large": "too_large",
}


async def test_each_bad_item_is_refused_with_its_code_and_changes_nothing(
    rx: Receiver, alice: Origin
) -> None:
    await rx.receive(alice, alice.wires(1))
    bad = _bad_items(alice, rx)
    before = await rx.snapshot()
    for name, wire in bad.items():
        result = await rx.receive(alice, [wire])
        assert result.results == (EXPECTED[name],), name
        assert await rx.snapshot() == before, name


async def test_one_bad_item_among_good_ones_fails_only_itself(rx: Receiver, alice: Origin) -> None:
    first, second = alice.envelope(), alice.envelope()
    forged = bytearray(second.to_bytes())
    forged[-5] ^= 0xFF
    third = alice.envelope(seq=9, prev=b"\x00" * 32)  # far ahead: held in escrow
    result = await rx.receive(alice, [first.to_bytes(), bytes(forged), b"\xc1", third.to_bytes()])
    assert result.results == ("ok", "bad_signature", "malformed", "held")
    assert [r.seq for r in await rx.rows(alice)] == [1]
    assert (await rx.receive(alice, [second.to_bytes()])).results == ("ok",)


async def test_unknown_and_blocked_senders_are_refused_and_only_logged(rx: Receiver) -> None:
    stranger, blocked, removed = Origin.new(), Origin.new(), Origin.new()
    await rx.know(stranger)  # its key log is known (a relayed origin), but it is no peer
    await rx.peer(blocked, "blocked")
    await rx.peer(removed, "removed")
    before = await rx.snapshot()
    for sender, code in ((stranger, "unknown_sender"), (blocked, "blocked"),
                         (removed, "unknown_sender")):  # fmt: skip
        with pytest.raises(SenderRefused) as refused:
            await rx.receive(sender, sender.wires(1), sender.keys)
        assert (refused.value.status, refused.value.code) == (403, code)
    after = await rx.snapshot()
    logged = after.pop("contact_log")
    before.pop("contact_log")
    assert after == before
    assert [(row[2], row[3]) for row in sorted(logged)] == [
        (stranger.node_id, "unknown_sender"), (blocked.node_id, "blocked"),
        (removed.node_id, "unknown_sender"),
    ]  # fmt: skip


async def test_the_contact_log_keeps_only_the_newest(rx: Receiver) -> None:
    async with rx.node.sessions.begin() as session:
        for number in range(12):
            await contact_log.put_contact(session, bytes([number]) * 32, "x", number, keep=5)
    async with rx.node.sessions() as session:
        rows = await session.scalars(select(ContactLogEntry.at).order_by(ContactLogEntry.at))
        assert list(rows) == [7, 8, 9, 10, 11]


async def test_blocked_origin_relayed_by_a_peer_is_refused(rx: Receiver, alice: Origin) -> None:
    mallory = Origin.new()
    await rx.peer(mallory, "blocked")
    await rx.receive(alice, [])  # alice's contact is recorded before the snapshot
    before = await rx.snapshot()
    result = await rx.receive(alice, mallory.wires(1))
    assert result.results == ("blocked",)
    assert await rx.snapshot() == before


async def test_unknown_origin_is_accepted_once_its_keys_come_along(
    rx: Receiver, alice: Origin
) -> None:
    carol = Origin.new()  # relayed by alice; never peered here
    wire = carol.envelope().to_bytes()
    assert (await rx.receive(alice, [wire])).results == ("unknown_origin",)
    result = await rx.receive(alice, [wire], carol.keys)
    assert (result.results, result.keys) == (("ok",), ("ok",))
    assert await rx.head(carol) == 1


async def test_audience_not_for_us(rx: Receiver, alice: Origin) -> None:
    other = "node:" + "cd" * 32
    await rx.receive(alice, alice.wires(1))
    ahead = alice.envelope(seq=5, prev=b"\x01" * 32, audience=other).to_bytes()
    before = await rx.snapshot()
    assert (await rx.receive(alice, [ahead])).results == ("not_for_us",)
    assert await rx.snapshot() == before  # not escrowed, not stored
    # At the next place in the chain it keeps the place, as a withheld row: no bytes kept.
    here = alice.envelope(audience=other)
    assert (await rx.receive(alice, [here.to_bytes()])).results == ("not_for_us",)
    rows = await rx.rows(alice)
    assert [(r.seq, r.id, r.wire) for r in rows][-1] == (2, here.id, None)
    assert (await rx.receive(alice, alice.wires(1))).results == ("ok",)
    mine = alice.envelope(audience="node:" + rx.node_id.hex()).to_bytes()
    assert (await rx.receive(alice, [mine])).results == ("ok",)
    assert await rx.head(alice) == 4


async def test_allies_audience_needs_a_peer_or_a_declaration(rx: Receiver, alice: Origin) -> None:
    carol = Origin.new()  # not a peer: her allies envelopes are not for this node ...
    wire = carol.envelope(audience="allies").to_bytes()
    assert (await rx.receive(alice, [wire], carol.keys)).results == ("not_for_us",)
    async with rx.node.sessions.begin() as session:  # ... until she declares it allied
        session.add(Alliance(node=carol.node_id, peer=rx.node_id, state="allied", seq=1,
                             updated_at=START))  # fmt: skip
    assert (await rx.receive(alice, [carol.envelope(audience="allies").to_bytes()])).results == (
        "ok",
    )
    assert (await rx.receive(alice, alice.wires(1, audience="allies"))).results == ("ok",)


async def test_expired_is_refused_but_keeps_its_place(rx: Receiver, alice: Origin) -> None:
    expired = alice.envelope(created=START - 10, expires=rx.now())
    assert (await rx.receive(alice, [expired.to_bytes()])).results == ("expired",)
    assert [(r.seq, r.wire) for r in await rx.rows(alice)] == [(1, None)]
    forged = alice.envelope(seq=5, prev=b"\x02" * 32, created=START - 10, expires=rx.now() - 1)
    wire = bytearray(forged.to_bytes())
    wire[-1] ^= 1  # an expired envelope whose signature fails is a bad signature
    assert (await rx.receive(alice, [bytes(wire)])).results == ("bad_signature",)
    assert (await rx.receive(alice, alice.wires(1))).results == ("ok",)


async def test_out_of_order_envelopes_wait_in_escrow_then_drain(
    rx: Receiver, alice: Origin
) -> None:
    wires = alice.wires(5)
    assert (await rx.receive(alice, [wires[3], wires[2]])).results == ("held", "held")
    assert await rx.head(alice) == 0
    assert await rx.inbox.gaps() == [(alice.node_id, 0, alice.node_id, 3)]
    assert (await rx.receive(alice, [wires[3]])).results == ("held",)
    result = await rx.receive(alice, [wires[4], wires[0], wires[1]])
    assert result.results == ("ok", "ok", "ok")  # seq 5 joins the chain the batch completes
    assert [r.seq for r in await rx.rows(alice)] == [1, 2, 3, 4, 5]
    assert await rx.head(alice) == 5
    assert await rx.inbox.gaps() == []
    async with rx.node.sessions() as session:
        assert list(await session.scalars(select(EscrowEntry.seq))) == []


async def test_escrow_is_bounded(
    rx: Receiver, alice: Origin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batchwrite, "ESCROW_PER_ORIGIN", 3)
    monkeypatch.setattr(batchwrite, "ESCROW_TOTAL", 5)
    wires = alice.wires(6)
    result = await rx.receive(alice, wires[1:])
    assert result.results == ("held", "held", "held", "escrow_full", "escrow_full")
    bob = Origin.new()
    await rx.peer(bob)
    bob_wires = bob.wires(5)
    result = await rx.receive(bob, bob_wires[1:])
    assert result.results == ("held", "held", "escrow_full", "escrow_full")
    result = await rx.receive(alice, [wires[0]])  # drains alice's three
    assert result.results == ("ok",)
    assert await rx.head(alice) == 4
    assert (await rx.receive(alice, wires[4:])).results == ("ok", "ok")


async def test_a_second_envelope_for_a_held_place_is_a_fork(rx: Receiver, alice: Origin) -> None:
    first = alice.envelope()
    await rx.receive(alice, [first.to_bytes(), alice.envelope().to_bytes()])
    rival = alice.envelope(seq=2, prev=first.id, body={"text": "another second"})
    result = await rx.receive(alice, [rival.to_bytes()])
    assert result.results == ("fork",)
    async with rx.node.sessions() as session:
        evidence = list(await session.scalars(select(ForkEvidence)))
    assert [(e.id, e.kind, e.origin, e.seq, e.wire) for e in evidence] == [
        (rival.id, "envelope", alice.node_id, 2, rival.to_bytes())
    ]
    # A forged rival (bad signature) is no evidence.
    forged = bytearray(alice.envelope(seq=1, prev=None, body={"text": "x"}).to_bytes())
    forged[-1] ^= 1
    assert (await rx.receive(alice, [bytes(forged)])).results == ("bad_signature",)
    # The next place after a rival chain: its prev names another seq 2.
    after_rival = alice.envelope(seq=3, prev=rival.id)
    assert (await rx.receive(alice, [after_rival.to_bytes()])).results == ("fork",)
    async with rx.node.sessions() as session:
        assert len(list(await session.scalars(select(ForkEvidence)))) == 2


async def test_envelopes_of_this_node_that_it_did_not_sign_are_forks(rx: Receiver) -> None:
    own = Origin(rx.node.identity, rx.node.identity.operational, [rx.node.identity.inception])
    sender = Origin.new()
    await rx.peer(sender)
    result = await rx.receive(sender, [own.envelope().to_bytes()])
    assert result.results == ("fork",)
    async with rx.node.sessions() as session:
        assert [e.kind for e in await session.scalars(select(ForkEvidence))] == ["envelope"]


async def test_a_delegation_pushed_with_the_batch_revokes_the_old_key_after_its_seal(
    rx: Receiver, alice: Origin
) -> None:
    await rx.receive(alice, alice.wires(2))
    old_key = alice.key
    alice.delegate(seal=2)
    stolen = alice.envelope(seq=3, prev=alice.prev, key=old_key, kpos=0)
    result = await rx.receive(alice, [stolen.to_bytes()], alice.keys)
    assert (result.results, result.keys) == (("key_revoked",), ("duplicate", "ok"))
    assert (await rx.receive(alice, alice.wires(1))).results == ("ok",)
    assert [r.seq for r in await rx.rows(alice)] == [1, 2, 3]


async def test_a_seal_cuts_off_what_a_thief_signed_before_it_was_known(
    rx: Receiver, alice: Origin
) -> None:
    await rx.receive(alice, alice.wires(2))
    thief_key = alice.key
    thief = [alice.envelope(key=thief_key) for _ in range(2)]  # seq 3, 4 with the old key
    assert (await rx.receive(alice, [s.to_bytes() for s in thief])).results == ("ok", "ok")
    alice.seq, alice.prev = 2, alice.signed[1].id  # the officers seal at 2 and go on from it
    alice.delegate(seal=2)
    legit = alice.envelope()
    result = await rx.receive(alice, [legit.to_bytes()], alice.keys)
    assert (result.results, result.keys) == (("ok",), ("duplicate", "ok"))
    rows = await rx.rows(alice)
    assert [(r.seq, r.id) for r in rows][-1] == (3, legit.id)
    assert await rx.head(alice) == 3
    async with rx.node.sessions() as session:
        evidence = list(await session.scalars(select(ForkEvidence).order_by(ForkEvidence.seq)))
    assert [(e.kind, e.seq, e.id) for e in evidence] == [
        ("revoked", 3, thief[0].id), ("revoked", 4, thief[1].id)
    ]  # fmt: skip


async def test_rolled_back_and_forked_key_logs_are_refused_and_reported(
    rx: Receiver, alice: Origin
) -> None:
    alice.delegate(seal=0)
    assert (await rx.receive(alice, alice.wires(1), alice.keys)).keys == ("duplicate", "ok")
    before = await rx.snapshot()
    rolled_back = await rx.receive(alice, alice.wires(1, kpos=1), alice.keys[:1])
    assert rolled_back.keys == ("keylog_rollback",)
    assert rolled_back.results == ("ok",)  # the envelopes are checked against what is held
    # A fork: another delegation at position 1, validly signed by the officers.
    fork = Origin(alice.identity, alice.identity.operational, [alice.log[0]])
    fork.delegate(seal=0)
    snapshot = await rx.snapshot()
    result = await rx.receive(alice, [], [*fork.keys])
    assert result.keys == ("duplicate", "keylog_duplicity")
    after = await rx.snapshot()
    assert {k: v for k, v in after.items() if k != "fork_evidence"} == {
        k: v for k, v in snapshot.items() if k != "fork_evidence"
    }
    async with rx.node.sessions() as session:
        kinds = [(e.kind, e.seq) for e in await session.scalars(select(ForkEvidence))]
    assert kinds == [("key_event", 1)]
    assert before != after


async def test_key_events_of_a_bad_kind_get_their_code(rx: Receiver, alice: Origin) -> None:
    carol = Origin.new()
    carol.delegate(seal=0)
    result = await rx.receive(alice, [], [b"junk", carol.keys[1], carol.keys[0]])
    # junk; a delegation of an unknown node without its inception; the inception alone is fine
    assert result.keys == ("trailing_bytes", "keylog_bad_position", "keylog_bad_position")


async def test_descriptors_and_alliances_are_applied(rx: Receiver, alice: Origin) -> None:
    descriptor = alice.envelope(
        type="node.descriptor",
        body={"name": {"en": "Dockers"}, "endpoints": ["https://dock.example"]},
    )
    alliance = alice.envelope(type="peer.alliance", body={"peer": rx.node_id, "state": "allied"})
    bad = alice.envelope(type="peer.alliance", body={"peer": b"short", "state": "allied"})
    result = await rx.receive(alice, [descriptor.to_bytes(), alliance.to_bytes(), bad.to_bytes()])
    assert result.results == ("ok", "ok", "invalid_field")
    async with rx.node.sessions() as session:
        peer = await session.get(PeerRow, alice.node_id)
        assert peer is not None
        assert (peer.name, peer.endpoint, peer.they_allied) == (
            "Dockers", "https://dock.example", True,
        )  # fmt: skip
        declared = await session.get(Alliance, (alice.node_id, rx.node_id))
        assert declared is not None
        assert (declared.state, declared.seq) == ("allied", 2)
    assert await rx.head(alice) == 3  # the unparseable one keeps its place, unapplied


async def test_stored_envelopes_are_relayed_to_other_allies(rx: Receiver, alice: Origin) -> None:
    bob, carol = Origin.new(), Origin.new()
    await rx.peer(bob)
    await rx.peer(carol, "introduced")
    public = alice.envelope()
    private = alice.envelope(audience="node:" + rx.node_id.hex())
    await rx.receive(alice, [public.to_bytes(), private.to_bytes()])
    async with rx.node.sessions() as session:
        rows = (await session.execute(select(OutboxEntry.peer, OutboxEntry.envelope_id))).all()
    assert [tuple(r) for r in rows] == [(bob.node_id, public.id)]


async def test_an_escrowed_envelope_that_names_another_predecessor_is_a_fork(
    rx: Receiver, alice: Origin
) -> None:
    first, second = alice.envelope(), alice.envelope()
    rival_third = alice.envelope(seq=3, prev=b"\x05" * 32)  # waits for seq 2, names another
    assert (await rx.receive(alice, [rival_third.to_bytes()])).results == ("held",)
    result = await rx.receive(alice, [first.to_bytes(), second.to_bytes()])
    assert result.results == ("ok", "ok")
    assert await rx.head(alice) == 2
    async with rx.node.sessions() as session:
        assert list(await session.scalars(select(EscrowEntry.seq))) == []
        evidence = list(await session.scalars(select(ForkEvidence)))
    assert [(e.id, e.seq) for e in evidence] == [(rival_third.id, 3)]
    assert (await rx.receive(alice, alice.wires(1))).results == ("ok",)


async def test_two_processes_taking_one_batch_store_it_once(
    rx: Receiver, alice: Origin, database_url: str
) -> None:
    """Two inboxes on two engines (two node processes on one database) race for the same
    envelopes: the primary keys decide, the loser plans again and answers duplicates."""
    other_engine = create_engine(database_url)
    try:
        other = Inbox(session_factory(other_engine), KeyLogs(), rx.node_id)
        wires = alice.wires(40)
        results = await asyncio.gather(
            rx.inbox.receive(alice.node_id, wires, [], now=rx.now()),
            other.receive(alice.node_id, list(reversed(wires)), [], now=rx.now()),
        )
    finally:
        await other_engine.dispose()
    assert [r.seq for r in await rx.rows(alice)] == list(range(1, 41))
    assert await rx.head(alice) == 40
    for result in results:
        assert set(result.results) <= {"ok", "duplicate", "held"}
    async with rx.node.sessions() as session:
        assert list(await session.scalars(select(EscrowEntry.seq))) == []


async def test_a_sender_blocked_while_its_batch_was_verified_is_refused(
    rx: Receiver, alice: Origin
) -> None:
    """The sender's state is read again in the batch's turn: a block committed after the
    batch was read (here, in the turn's first statement) refuses it, and nothing is stored."""

    async def blocked_meanwhile(session: AsyncSession) -> None:
        await session.execute(
            update(PeerRow).where(PeerRow.node_id == alice.node_id).values(state="blocked")
        )

    with pytest.raises(SenderRefused) as refused:
        await rx.inbox.receive(alice.node_id, alice.wires(2), [], now=rx.now(),
                               first_write=blocked_meanwhile)  # fmt: skip
    assert refused.value.code == "blocked"
    assert await rx.rows(alice) == []


async def test_a_blocked_origins_escrow_is_never_released(rx: Receiver, alice: Origin) -> None:
    """Envelopes of an origin escrowed before it was blocked are never applied: a withheld
    entry that would fill the gap (in another peer's log page) is refused."""
    mallory = Origin.new()
    await rx.peer(mallory)
    first, second = mallory.envelope(), mallory.envelope()
    assert (await rx.receive(mallory, [second.to_bytes()])).results == ("held",)
    async with rx.node.sessions.begin() as session:
        await session.execute(
            update(PeerRow).where(PeerRow.node_id == mallory.node_id).values(state="blocked")
        )
    page = [LogEntry(1, first.id, None), LogEntry(2, second.id, second.to_bytes())]
    result = await rx.inbox.receive_log(alice.node_id, mallory.node_id, page, [], now=rx.now())
    assert result.results == ("blocked", "held")
    assert await rx.rows(mallory) == []
