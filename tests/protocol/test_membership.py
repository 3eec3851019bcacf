"""Coalitions (SPEC.md §15): the envelope checks a body alone cannot make, and membership as
one node computes it from the envelopes it holds and its seed. Hypothesis plays random
histories (found, invite, join, leave, a join with a used or stale invite) and checks that the
computed membership is what really happened, from the founder's seed and from a snapshot
taken in the middle, whatever order the envelopes are given in."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    CoalitionEvent,
    CoalitionFound,
    CoalitionInvite,
    CoalitionJoin,
    CoalitionLeave,
    CoalitionSeed,
    ErrorCode,
    Message,
    Standing,
    UnknownMessageType,
    ValidationError,
    build_envelope,
    check_coalition_envelope,
    coalition_audience,
    coalition_id,
    coalition_of,
    membership,
    seed_event,
)
from protocol.coalitions import Member, OpenInvite
from protocol.membership import INVITED, LEFT, MEMBER, open_invites

T0 = 1_800_000_000


def node(label: str) -> bytes:
    return hashlib.sha256(b"tadamun-coalitions:" + label.encode()).digest()


A, B, C, D = node("a"), node("b"), node("c"), node("d")
SALT = node("salt")
ID = coalition_id(A, SALT)


def envelope(origin: bytes, seq: int, message: Message, audience: str | None = None) -> Any:
    return build_envelope(
        type=message.TYPE, origin=origin, kpos=0, seq=seq, prev=None if seq == 1 else bytes(32),
        created=T0 + seq, body=message.to_body(), audience=audience or coalition_audience(ID),
    )  # fmt: skip


def invite(invitee: bytes, members: tuple[Member, ...] = (Member(A, 1),)) -> CoalitionInvite:
    return CoalitionInvite(ID, invitee, A, SALT, {"en": "South"}, members)


# ------------------------------------------------------------------ ids and audiences


def test_coalition_id_binds_founder_and_salt() -> None:
    assert hashlib.sha256(b"TADAMUN-COALITION-V1\x00" + A + SALT).digest() == ID
    assert coalition_id(B, SALT) != ID
    assert coalition_of(coalition_audience(ID)) == ID
    for audience in ("allies", "node:" + ID.hex(), "coalition:" + ID.hex()[:-2], "coalition:zz"):
        assert coalition_of(audience) is None


def test_valid_envelopes_pass_the_checks() -> None:
    assert isinstance(
        check_coalition_envelope(envelope(A, 1, CoalitionFound(ID, SALT, {"en": "S"}))),
        CoalitionFound,
    )
    assert check_coalition_envelope(envelope(A, 2, invite(B))) == invite(B)
    join = CoalitionJoin(ID, node("i"))
    assert check_coalition_envelope(envelope(B, 9, join)) == join
    assert isinstance(check_coalition_envelope(envelope(B, 10, CoalitionLeave(ID))), CoalitionLeave)


@pytest.mark.parametrize(
    ("origin", "seq", "message", "audience"),
    [
        pytest.param(B, 1, CoalitionFound(ID, SALT, {"en": "S"}), None, id="found by another node"),
        pytest.param(A, 1, CoalitionLeave(ID), "allies", id="audience not the coalition"),
        pytest.param(A, 1, CoalitionLeave(ID), coalition_audience(node("x")), id="other coalition"),
        pytest.param(B, 5, invite(C), None, id="inviter not in its snapshot"),
        pytest.param(A, 1, invite(C), None, id="inviter a member only from its invite on"),
    ],
)
def test_envelope_checks_refuse(
    origin: bytes, seq: int, message: Message, audience: str | None
) -> None:
    with pytest.raises(ValidationError) as caught:
        check_coalition_envelope(envelope(origin, seq, message, audience))
    assert caught.value.code == ErrorCode.INVALID_FIELD


def test_a_coalition_body_in_another_type_is_unknown() -> None:
    signed = build_envelope(type="coalition.rename", origin=A, kpos=0, seq=1, prev=None,
                            created=T0, body={}, audience=coalition_audience(ID))  # fmt: skip
    with pytest.raises(UnknownMessageType):
        check_coalition_envelope(signed)


# ------------------------------------------------------------------ membership, by hand


def ev(
    origin: bytes, seq: int, kind: str, subject: bytes | None = None, created: int | None = None
) -> CoalitionEvent:
    ident = hashlib.sha256(origin + seq.to_bytes(8, "big")).digest()
    return CoalitionEvent(
        ident, origin, seq, T0 + seq if created is None else created, kind, subject
    )


FOUND_A = ev(A, 1, "found")
INV_B = ev(A, 2, "invite", B)
INV_C = ev(A, 3, "invite", C)


def states(result: dict[bytes, Standing]) -> dict[bytes, str]:
    return {n: s.state for n, s in result.items()}


def test_founder_invites_and_members_join() -> None:
    join_b = ev(B, 4, "join", INV_B.id)
    events = [FOUND_A, INV_B, INV_C, join_b]
    result = membership(CoalitionSeed.founded(FOUND_A), events)
    assert states(result) == {A: MEMBER, B: MEMBER, C: INVITED}
    assert result[B] == Standing(MEMBER, since=4, invite=INV_B.id, join=join_b.id)
    assert result[C].invite == INV_C.id


def test_join_before_its_invite_waits_for_it() -> None:
    join_b = ev(B, 4, "join", INV_B.id)
    without = membership(CoalitionSeed.founded(FOUND_A), [FOUND_A, join_b])
    assert states(without) == {A: MEMBER}
    assert states(membership(CoalitionSeed.founded(FOUND_A), [join_b, INV_B, FOUND_A]))[B] == MEMBER


def test_an_invite_counts_once_its_inviter_is_in() -> None:
    join_b = ev(B, 4, "join", INV_B.id)
    inv_d = ev(B, 5, "invite", D)  # B invites D after joining
    join_d = ev(D, 1, "join", inv_d.id)
    seed = CoalitionSeed.founded(FOUND_A)
    assert states(membership(seed, [FOUND_A, inv_d, join_d])) == {A: MEMBER}
    assert states(membership(seed, [FOUND_A, inv_d, join_d, join_b, INV_B]))[D] == MEMBER


def test_an_invite_from_a_node_before_it_joined_does_not_count() -> None:
    inv_d = ev(B, 3, "invite", D)  # B invites D *before* its own join at seq 4
    join_b, join_d = ev(B, 4, "join", INV_B.id), ev(D, 1, "join", inv_d.id)
    result = membership(CoalitionSeed.founded(FOUND_A), [FOUND_A, INV_B, inv_d, join_b, join_d])
    assert states(result) == {A: MEMBER, B: MEMBER}


def test_leave_ends_membership_and_rejoining_needs_a_newer_invite() -> None:
    join_b = ev(B, 4, "join", INV_B.id)
    leave_b = ev(B, 5, "leave", created=T0 + 100)
    again_old = ev(B, 6, "join", INV_B.id, created=T0 + 101)  # the used invite again
    old_open = ev(A, 4, "invite", B, created=T0 + 50)  # created before the leave
    again_stale = ev(B, 7, "join", old_open.id, created=T0 + 102)
    seed = CoalitionSeed.founded(FOUND_A)
    events = [FOUND_A, INV_B, join_b, leave_b, again_old, old_open, again_stale]
    result = membership(seed, events)
    assert result[B] == Standing(LEFT, leave=leave_b.id)
    fresh = ev(A, 5, "invite", B, created=T0 + 200)
    assert states(membership(seed, [*events, fresh]))[B] == INVITED
    rejoin = ev(B, 8, "join", fresh.id, created=T0 + 201)
    assert states(membership(seed, [*events, fresh, rejoin]))[B] == MEMBER


def test_leave_declines_an_open_invite_and_a_join_by_another_node_burns_nothing() -> None:
    thief = ev(D, 1, "join", INV_C.id)  # D uses C's invite
    decline = ev(C, 1, "leave", created=T0 + 50)
    seed = CoalitionSeed.founded(FOUND_A)
    assert states(membership(seed, [FOUND_A, INV_C, thief])) == {A: MEMBER, C: INVITED}
    assert states(membership(seed, [FOUND_A, INV_C, decline]))[C] == LEFT


def test_snapshot_seed_members_and_open_invites() -> None:
    snapshot = CoalitionInvite(ID, D, A, SALT, {"en": "S"}, (Member(A, 1), Member(B, 4)),
                               (OpenInvite(INV_C.id, C, T0 + 3),))  # fmt: skip
    seed = CoalitionSeed.invited(snapshot)
    stale_leave = ev(B, 3, "leave")  # before B's since: not looked at
    join_c = ev(C, 2, "join", INV_C.id)  # C joins with the open invite D never held
    result = membership(seed, [stale_leave, join_c])
    assert states(result) == {A: MEMBER, B: MEMBER, C: MEMBER}
    assert result[B].since == 4


def test_seed_event_choice() -> None:
    inv1 = ev(A, 2, "invite", D, created=T0 + 10)
    inv2 = ev(B, 7, "invite", D, created=T0 + 20)
    assert seed_event(D, []) is None
    assert seed_event(D, [inv2, inv1]) == inv1  # the oldest: a newer one changes nothing
    join = ev(D, 1, "join", inv2.id)
    assert seed_event(D, [inv1, inv2, join]) == inv2  # the invite it joined by
    assert seed_event(A, [FOUND_A, INV_B]) == FOUND_A
    declined = ev(D, 1, "leave", created=T0 + 15)  # declines inv1, not inv2
    assert seed_event(D, [inv1, inv2, declined]) == inv2
    late = ev(D, 1, "leave", created=T0 + 30)  # declines both: the newest, as before
    assert seed_event(D, [inv1, inv2, late]) == inv2


def test_a_leave_of_a_node_never_named_lists_nothing() -> None:
    stranger = ev(D, 1, "leave")  # D was never a member nor invited
    assert states(membership(CoalitionSeed.founded(FOUND_A), [FOUND_A, stranger])) == {A: MEMBER}
    named = ev(C, 1, "leave", created=T0 - 1)  # invited, then left before the invite
    result = membership(CoalitionSeed.founded(FOUND_A), [FOUND_A, INV_C, named])
    assert states(result) == {A: MEMBER, C: INVITED}


def test_open_invites_of_a_node_oldest_first() -> None:
    seed = CoalitionSeed.founded(FOUND_A)
    again = ev(A, 4, "invite", C)
    assert open_invites(seed, [FOUND_A, again, INV_C], C) == [
        (INV_C.id, INV_C.created), (again.id, again.created),
    ]  # fmt: skip
    used = ev(C, 1, "join", INV_C.id)
    assert open_invites(seed, [FOUND_A, INV_C, used], C) == []  # used
    stray = ev(D, 1, "invite", C)  # from a node that is not in: does not count
    assert open_invites(seed, [FOUND_A, stray], C) == []


# ------------------------------------------------------------------ random histories


@dataclass
class History:
    """A coalition's real history, played one action at a time, and its envelopes."""

    nodes: list[bytes]
    events: list[CoalitionEvent] = field(default_factory=list)
    seqs: dict[bytes, int] = field(default_factory=dict)
    members: dict[bytes, int] = field(default_factory=dict)  # node -> since
    open: dict[bytes, CoalitionEvent] = field(default_factory=dict)  # invite id -> invite
    used: set[bytes] = field(default_factory=set)
    clock: int = T0
    snap_at: int = 0  # the invite whose invitee's view is checked too (0: the first one)
    snapshot: tuple[bytes, CoalitionSeed, int] | None = None  # (invitee, seed, events before)

    def add(self, origin: bytes, kind: str, subject: bytes | None = None) -> CoalitionEvent:
        seq = self.seqs.get(origin, 0) + 1
        self.seqs[origin] = seq
        self.clock += 1
        event = CoalitionEvent(
            node(f"{origin.hex()}/{seq}"), origin, seq, self.clock, kind, subject
        )
        self.events.append(event)
        return event

    def step(self, action: int, who: int, whom: int) -> None:
        actor = self.nodes[who % len(self.nodes)]
        target = self.nodes[whom % len(self.nodes)]
        if action == 0 and actor in self.members and target not in self.members and target != actor:
            made = self.add(actor, "invite", target)
            self.open[made.id] = made
            invites = sum(e.kind == "invite" for e in self.events)
            if self.snapshot is None and invites > self.snap_at:
                self._snapshot(target, made)
        elif action == 1:
            mine = [i for i in self.open.values() if i.subject == actor and i.id not in self.used]
            if mine and actor not in self.members:
                used = mine[-1]
                self.used.add(used.id)
                self.members[actor] = self.add(actor, "join", used.id).seq
        elif action == 2 and actor in self.members and actor != self.nodes[0]:
            self.add(actor, "leave")
            del self.members[actor]
            for invite in self.open.values():
                if invite.subject == actor:
                    self.used.add(invite.id)  # a leave declines what was open
        elif action == 3 and self.open:  # a join with an invite already used or declined
            stale = next(iter(self.open.values()))
            if stale.id in self.used and stale.subject == actor and actor not in self.members:
                self.add(actor, "join", stale.id)

    def _snapshot(self, invitee: bytes, made: CoalitionEvent) -> None:
        open_ = {i.id: (i.subject or b"", i.created) for i in self.open.values()
                 if i.id not in self.used and i.id != made.id}  # fmt: skip
        seed = CoalitionSeed(dict(self.members), open_)
        self.snapshot = (invitee, seed, len(self.events))

    def truth(self) -> dict[bytes, str]:
        out = dict.fromkeys(self.members, MEMBER)
        for invite in self.open.values():
            if invite.id not in self.used and invite.subject not in self.members:
                out[invite.subject or b""] = INVITED
        for event in self.events:
            if event.kind == "leave" and event.origin not in out:
                out[event.origin] = LEFT
        return out


ACTIONS = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 5)), max_size=40)


@settings(max_examples=200, deadline=None)
@given(actions=ACTIONS, snap_at=st.integers(0, 8), order=st.randoms(use_true_random=False))
def test_membership_is_what_happened_in_any_order(
    actions: list[tuple[int, int, int]], snap_at: int, order: Any
) -> None:
    history = History([node(f"n{i}") for i in range(6)], snap_at=snap_at)
    founder = history.nodes[0]
    found = history.add(founder, "found")
    history.members[founder] = found.seq
    for action in actions:
        history.step(*action)
    shuffled = list(history.events)
    order.shuffle(shuffled)
    computed = membership(CoalitionSeed.founded(found), shuffled)
    assert states(computed) == history.truth()
    if history.snapshot is not None:  # an invitee that holds the snapshot, what followed it
        invitee, seed, before = history.snapshot  # and its own envelopes: who is in or invited
        held = history.events[before - 1 :] + [
            e for e in history.events[: before - 1] if e.origin == invitee
        ]
        order.shuffle(held)
        seen = {n: state for n, state in states(membership(seed, held)).items() if state != LEFT}
        assert seen == {n: state for n, state in history.truth().items() if state != LEFT}
