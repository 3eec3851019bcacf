"""Catch-up through the inbox: log pages served by audience (node.federation.logpages) and
pages received (Inbox.receive_log), withheld entries filling the chain by the rules of
SPEC §14.4; the chain walk itself (node.federation.chain) table by table."""

from __future__ import annotations

from pathlib import Path

import pytest
from inbox_support import Origin, Receiver, receiver
from sqlalchemy.ext.asyncio import AsyncEngine
from test_decisions_support import START

from node.errors import NodeError
from node.federation.chain import Link, walk
from node.federation.senders import SenderRefused
from node.federation.wire import LogEntry, decode_log_page, encode_log_page
from node.storage.db import create_engine
from node.storage.models import Alliance

OTHER = "node:" + "cd" * 32


@pytest.fixture
async def rx(engine: AsyncEngine, tmp_path: Path) -> Receiver:
    return await receiver(engine, tmp_path)


def entries(origin: Origin, withheld: set[int] = frozenset()) -> list[LogEntry]:  # type: ignore[assignment]
    return [
        LogEntry(s.envelope.seq, s.id, None if s.envelope.seq in withheld else s.to_bytes())
        for s in origin.signed
    ]


async def test_a_page_from_the_origin_itself_fills_the_chain(rx: Receiver) -> None:
    alice = Origin.new()
    await rx.peer(alice)
    for audience in ("public", OTHER, OTHER, "public", OTHER):
        alice.envelope(audience=audience)
    page = entries(alice, withheld={2, 3, 5})
    result = await rx.inbox.receive_log(alice.node_id, alice.node_id, page, [], now=rx.now())
    assert result.results == ("ok",) * 5
    rows = await rx.rows(alice)
    assert [(r.seq, r.id, r.wire is None) for r in rows] == [
        (s.envelope.seq, s.id, s.envelope.seq in {2, 3, 5}) for s in alice.signed
    ]
    assert await rx.head(alice) == 5


async def test_withheld_entries_from_a_relay_need_the_next_envelope(rx: Receiver) -> None:
    alice, bob = Origin.new(), Origin.new()
    await rx.peer(bob)
    for audience in ("public", OTHER, OTHER, "public", OTHER):
        alice.envelope(audience=audience)
    page = entries(alice, withheld={2, 3, 5})
    result = await rx.inbox.receive_log(bob.node_id, alice.node_id, page, alice.keys, now=rx.now())
    assert (result.results, result.keys) == (("ok", "ok", "ok", "ok", "unlinked"), ("ok",))
    assert await rx.head(alice) == 4
    # A withheld id that the next envelope contradicts is not taken; the envelope waits.
    alice.envelope()  # seq 6
    wrong = [LogEntry(5, b"\x09" * 32, None), LogEntry(6, alice.signed[5].id,
                                                         alice.signed[5].to_bytes())]  # fmt: skip
    result = await rx.inbox.receive_log(bob.node_id, alice.node_id, wrong, [], now=rx.now())
    assert result.results == ("unlinked", "held")
    assert await rx.head(alice) == 4
    # The right page takes both, the escrowed one included.
    result = await rx.inbox.receive_log(
        bob.node_id, alice.node_id, entries(alice, withheld={5})[4:5], [], now=rx.now()
    )
    assert result.results == ("ok",)
    assert await rx.head(alice) == 6


async def test_page_entries_are_checked_like_pushed_envelopes(rx: Receiver) -> None:
    alice, bob = Origin.new(), Origin.new()
    await rx.peer(bob)
    await rx.know(alice)
    first, second = alice.envelope(), alice.envelope()
    forged = bytearray(second.to_bytes())
    forged[-1] ^= 1
    page = [
        LogEntry(1, first.id, first.to_bytes()),
        LogEntry(2, second.id, bytes(forged)),
        LogEntry(3, second.id, second.to_bytes()),  # listed at another seq
        LogEntry(2, b"\x00" * 32, second.to_bytes()),  # listed with another id
        LogEntry(1, first.id, bob.envelope().to_bytes()),  # another origin's
    ]
    before = await rx.snapshot()
    result = await rx.inbox.receive_log(bob.node_id, alice.node_id, page, [], now=rx.now())
    assert result.results == (
        "ok", "bad_signature", "invalid_field", "invalid_field", "invalid_field",
    )  # fmt: skip
    after = await rx.snapshot()
    assert after["envelopes"] == [*before["envelopes"], *after["envelopes"][-1:]]
    with pytest.raises(SenderRefused):
        await rx.inbox.receive_log(alice.node_id, alice.node_id, page, [], now=rx.now())


async def test_the_log_serves_each_peer_what_its_audience_allows(rx: Receiver) -> None:
    ally, friend = Origin.new(), Origin.new()
    await rx.peer(ally, "allied")
    await rx.peer(friend, "introduced")
    audiences = ["public", "allies", "node:" + ally.node_id.hex(), "node:" + friend.node_id.hex()]
    async with rx.node.sessions.begin() as session:
        signed = [
            await rx.node.signer.append(
                session, type="org.example.note", body={"n": i}, audience=audience, now=START
            )
            for i, audience in enumerate(audiences)
        ]
    own = rx.node_id

    async def seen(requester: Origin, **page: int) -> list[bool]:
        got = await rx.inbox.log_page(
            requester.node_id, own, after=page.get("after", 0), limit=page.get("limit", 256),
            now=rx.now(),
        )  # fmt: skip
        assert [e.id for e in got.entries] == [s.id for s in signed][page.get("after", 0) :][
            : page.get("limit", 256)
        ]
        assert decode_log_page(encode_log_page(got), 1 << 22) == got
        return [e.env is not None for e in got.entries]

    assert await seen(ally) == [True, True, True, False]
    assert await seen(friend) == [True, False, False, True]
    assert await seen(ally, after=1, limit=2) == [True, True]
    page = await rx.inbox.log_page(ally.node_id, own, after=0, limit=2, now=rx.now())
    assert (len(page.entries), page.more) == (2, True)
    assert page.keys == (rx.node.identity.inception.to_bytes(),)
    stranger = Origin.new()
    with pytest.raises(SenderRefused):
        await rx.inbox.log_page(stranger.node_id, own, after=0, limit=5, now=rx.now())
    with pytest.raises(NodeError) as unknown:
        await rx.inbox.log_page(ally.node_id, b"\x07" * 32, after=0, limit=5, now=rx.now())
    assert (unknown.value.status, unknown.value.code) == (404, "unknown_origin")


async def test_relayed_allies_envelopes_are_served_to_the_origins_declared_allies(
    rx: Receiver,
) -> None:
    alice, ally, other = Origin.new(), Origin.new(), Origin.new()
    for peer in (alice, ally, other):
        await rx.peer(peer)
    async with rx.node.sessions.begin() as session:
        session.add(Alliance(node=alice.node_id, peer=ally.node_id, state="allied", seq=1,
                             updated_at=START))  # fmt: skip
    await rx.receive(alice, alice.wires(1, audience="allies"))
    for requester, allowed in ((ally, True), (other, False), (alice, True)):
        page = await rx.inbox.log_page(
            requester.node_id, alice.node_id, after=0, limit=10, now=rx.now()
        )
        assert [e.env is not None for e in page.entries] == [allowed]


async def test_a_page_served_by_one_node_is_taken_by_another(rx: Receiver, tmp_path: Path) -> None:
    """Catch-up end to end at the service level: B fetches A's own log."""
    other_engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'b.db'}")
    try:
        (tmp_path / "b").mkdir()
        b = await receiver(other_engine, tmp_path / "b")
        a_as_origin = Origin(rx.node.identity, rx.node.identity.operational,
                             [rx.node.identity.inception])  # fmt: skip
        b_as_origin = Origin(b.node.identity, b.node.identity.operational,
                             [b.node.identity.inception])  # fmt: skip
        await rx.peer(b_as_origin, "introduced")
        await b.peer(a_as_origin, "introduced")
        async with rx.node.sessions.begin() as session:
            for audience in ("public", "allies", OTHER, "node:" + b.node_id.hex()):
                await rx.node.signer.append(session, type="org.example.note", body={},
                                            audience=audience, now=START)  # fmt: skip
        page = await rx.inbox.log_page(b.node_id, rx.node_id, after=0, limit=256, now=START)
        result = await b.inbox.receive_log(rx.node_id, rx.node_id, page.entries, page.keys,
                                           now=START)  # fmt: skip
        assert result.results == ("ok",) * 4
        assert [r.wire is None for r in await b.rows(a_as_origin)] == [False, True, True, False]
    finally:
        await other_engine.dispose()


# --- the chain walk, pure --------------------------------------------------------------------


def real(seq: int, prev: int | None) -> Link:
    return Link(seq, bytes([seq]) * 32, None if prev is None else bytes([prev]) * 32,
                verified=True, wire=b"w")  # fmt: skip


def claim(seq: int, id_: int | None = None) -> Link:
    return Link(seq, bytes([id_ or seq]) * 32, None, verified=False, wire=None)


@pytest.mark.parametrize(
    ("head", "links", "trusted", "taken", "broken"),
    [
        (None, [real(1, None), real(2, 1), real(3, 2)], False, [1, 2, 3], None),
        (None, [real(2, 1)], False, [], None),  # a gap before it
        ((1, bytes([1]) * 32), [real(2, 9)], False, [], 2),  # names another predecessor
        ((1, bytes([1]) * 32), [claim(2), claim(3), real(4, 3)], False, [2, 3, 4], None),
        ((1, bytes([1]) * 32), [claim(2), claim(3)], False, [], None),  # nothing confirms
        ((1, bytes([1]) * 32), [claim(2), claim(3)], True, [2, 3], None),  # the origin says so
        ((1, bytes([1]) * 32), [claim(2), claim(3, 7), real(4, 3)], False, [], None),
        ((1, bytes([1]) * 32), [claim(2), real(3, 2), claim(4), real(6, 5)], False, [2, 3], None),
    ],
)
def test_walk(
    head: tuple[int, bytes] | None,
    links: list[Link],
    trusted: bool,
    taken: list[int],
    broken: int | None,
) -> None:
    result = walk(head, {link.seq: link for link in links}, trust_claims=trusted)
    assert [link.seq for link in result.accepted] == taken
    assert (result.broken.seq if result.broken else None) == broken
    if taken:
        assert result.head == (taken[-1], result.accepted[-1].id)
    else:
        assert result.head == head
