"""Counting rules (node.services.counting): a table of cases for every method and boundary,
then Hypothesis properties over random tallies and ballots."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.services.counting import (
    ABSTAIN,
    ADOPTED,
    BLOCK,
    NO_QUORUM,
    REJECTED,
    Choice,
    Result,
    Rule,
    Tally,
    decide,
    leader,
    quorum_met,
    tally,
)
from protocol import Ratio

NO_Q = Ratio(0, 1)  # no quorum requirement
MAJ = Rule("majority", NO_Q)
CONSENT = Rule("consent", NO_Q)


def sup(num: int, den: int, quorum: Ratio = NO_Q) -> Rule:
    return Rule("supermajority", quorum, Ratio(num, den))


# (rule, counts, abstain, blocks, electorate, expected)
CASES = [
    # majority: more than half of the votes cast for options
    (MAJ, (3, 2), 0, 0, 5, Result(ADOPTED, 0)),
    (MAJ, (2, 3), 0, 0, 5, Result(ADOPTED, 1)),  # "no" can be the adopted option
    (MAJ, (2, 2), 0, 0, 4, Result(REJECTED)),  # a tie
    (MAJ, (0, 0), 0, 0, 4, Result(REJECTED)),  # nobody voted
    (MAJ, (0, 0), 4, 0, 4, Result(REJECTED)),  # everybody abstained
    (MAJ, (1, 0), 9, 0, 10, Result(ADOPTED, 0)),  # abstentions are not votes for an option
    (MAJ, (4, 3, 2), 0, 0, 9, Result(REJECTED)),  # a plurality is not a majority
    (MAJ, (5, 3, 1), 0, 0, 9, Result(ADOPTED, 0)),
    (MAJ, (1,), 0, 0, 1, Result(ADOPTED, 0)),
    # supermajority: share >= fraction, exactly at the boundary adopts
    (sup(2, 3), (4, 2), 0, 0, 6, Result(ADOPTED, 0)),  # 4/6 = 2/3
    (sup(2, 3), (4, 3), 0, 0, 7, Result(REJECTED)),  # 4/7 < 2/3
    (sup(2, 3), (5, 2), 0, 0, 7, Result(ADOPTED, 0)),
    (sup(2, 3), (2, 4), 0, 0, 6, Result(ADOPTED, 1)),
    (sup(3, 4), (3, 1), 5, 0, 9, Result(ADOPTED, 0)),  # abstentions do not dilute
    (sup(3, 4), (2, 1), 0, 0, 3, Result(REJECTED)),
    (sup(1, 1), (5, 0), 0, 0, 5, Result(ADOPTED, 0)),  # unanimity
    (sup(1, 1), (5, 1), 0, 0, 6, Result(REJECTED)),
    (sup(2, 3), (0, 0), 3, 0, 3, Result(REJECTED)),
    (sup(1, 3), (3, 3), 0, 0, 6, Result(REJECTED)),  # a low fraction still needs a leader
    # consent: any block fails; otherwise the leader, which has at least one vote
    (CONSENT, (5, 0), 0, 1, 6, Result(REJECTED)),
    (CONSENT, (5, 0), 0, 0, 6, Result(ADOPTED, 0)),
    (CONSENT, (1, 0), 5, 0, 6, Result(ADOPTED, 0)),  # one in favour, the rest stand aside
    (CONSENT, (0, 0), 6, 0, 6, Result(REJECTED)),  # nobody in favour
    (CONSENT, (2, 3), 0, 0, 5, Result(ADOPTED, 1)),  # agree/disagree: "disagree" leads
    (CONSENT, (3, 3), 0, 0, 6, Result(REJECTED)),  # tie
    (CONSENT, (4, 1, 1), 0, 0, 6, Result(ADOPTED, 0)),  # multi-option: plurality, no block
    (CONSENT, (0, 0), 0, 1, 1, Result(REJECTED)),
    # quorum: turnout * den >= num * electorate, with every ballot counted as turnout
    (Rule("majority", Ratio(1, 2)), (2, 1), 0, 0, 6, Result(ADOPTED, 0)),  # 3/6 = 1/2
    (Rule("majority", Ratio(1, 2)), (2, 0), 0, 0, 5, Result(NO_QUORUM)),  # 2/5 < 1/2
    (Rule("majority", Ratio(1, 2)), (2, 0), 1, 0, 6, Result(ADOPTED, 0)),  # abstain counts
    (Rule("consent", Ratio(1, 2)), (2, 0), 0, 1, 6, Result(REJECTED)),  # blocks count too
    (Rule("majority", Ratio(1, 1)), (5, 0), 0, 0, 6, Result(NO_QUORUM)),
    (sup(2, 3, Ratio(1, 4)), (1, 0), 0, 0, 5, Result(NO_QUORUM)),
    (Rule("majority", Ratio(1, 4)), (0, 0), 0, 0, 0, Result(REJECTED)),  # empty electorate
]


@pytest.mark.parametrize(("rule", "counts", "abstain", "blocks", "electorate", "expected"), CASES)
def test_decide(
    rule: Rule,
    counts: tuple[int, ...],
    abstain: int,
    blocks: int,
    electorate: int,
    expected: Result,
) -> None:
    assert decide(rule, Tally(counts, abstain, blocks), electorate) == expected


@pytest.mark.parametrize(
    ("num", "den", "turnout", "electorate", "met"),
    [
        (1, 4, 25, 100, True), (1, 4, 24, 100, False), (0, 1, 0, 100, True),
        (1, 1, 100, 100, True), (1, 1, 99, 100, False), (2, 3, 2, 3, True), (2, 3, 1, 3, False),
        (1, 3, 333_334, 1_000_000, True), (1, 3, 333_333, 1_000_000, False),
        (1, 2, 0, 0, True),
    ],
)  # fmt: skip
def test_quorum_boundary(num: int, den: int, turnout: int, electorate: int, met: bool) -> None:
    assert quorum_met(Ratio(num, den), turnout, electorate) is met


@pytest.mark.parametrize(
    ("counts", "expected"),
    [((), None), ((0, 0), None), ((1, 0), 0), ((0, 1), 1), ((2, 2, 1), None), ((1, 3, 3), None),
     ((1, 3, 2), 1), ((7,), 0)],
)  # fmt: skip
def test_leader(counts: tuple[int, ...], expected: int | None) -> None:
    assert leader(counts) == expected


def test_tally_counts_ballots() -> None:
    choices: list[Choice] = [0, 1, 1, ABSTAIN, BLOCK, 2, 1, ABSTAIN]
    counted = tally(choices, 3)
    assert counted == Tally((1, 3, 1), abstain=2, blocks=1)
    assert (counted.cast, counted.turnout) == (5, 8)


@pytest.mark.parametrize("bad", [3, -1, True, "yes", None, 1.0])
def test_tally_refuses_what_is_not_a_choice(bad: object) -> None:
    with pytest.raises(ValueError, match="not a choice"):
        tally([0, bad], 3)  # type: ignore[list-item]


def test_rules_and_tallies_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown method"):
        Rule("plurality", NO_Q)
    with pytest.raises(ValueError, match="fraction"):
        Rule("supermajority", NO_Q)
    with pytest.raises(ValueError, match="fraction"):
        Rule("majority", NO_Q, Ratio(2, 3))
    with pytest.raises(ValueError, match="negative"):
        Tally((1, -1))


# Properties

counts_st = st.lists(st.integers(0, 50), min_size=1, max_size=8).map(tuple)
ratio_st = st.integers(1, 1000).flatmap(
    lambda den: st.builds(Ratio, st.integers(0, den), st.just(den))
)
super_st = st.integers(1, 1000).flatmap(
    lambda den: st.builds(Ratio, st.integers(den // 2 + 1, den), st.just(den))
)
rule_st = st.one_of(
    st.builds(Rule, st.just("majority"), ratio_st),
    st.builds(Rule, st.just("consent"), ratio_st),
    st.builds(Rule, st.just("supermajority"), ratio_st, super_st),
)


@st.composite
def tallies(draw: st.DrawFn) -> tuple[Tally, int]:
    counts = draw(counts_st)
    counted = Tally(counts, draw(st.integers(0, 20)), draw(st.integers(0, 3)))
    return counted, counted.turnout + draw(st.integers(0, 100))


@given(rule_st, tallies(), st.integers(1, 30))
def test_abstentions_never_change_the_winner(
    rule: Rule, case: tuple[Tally, int], more: int
) -> None:
    counted, electorate = case
    before = decide(rule, counted, electorate)
    after = decide(rule, Tally(counted.counts, counted.abstain + more, counted.blocks), electorate)
    if before.outcome != NO_QUORUM:  # more abstentions can only help turnout reach quorum
        assert after == before
    assert after.outcome != NO_QUORUM or before.outcome == NO_QUORUM


@given(rule_st, st.lists(st.sampled_from([0, 1, 2, ABSTAIN, BLOCK]), max_size=60), st.randoms())
def test_ballot_order_does_not_matter(rule: Rule, choices: list[Choice], rng: Random) -> None:
    shuffled = list(choices)
    rng.shuffle(shuffled)
    electorate = len(choices) + 3
    assert decide(rule, tally(shuffled, 3), electorate) == decide(
        rule, tally(choices, 3), electorate
    )


@given(rule_st, tallies(), st.permutations(range(8)))
def test_option_order_does_not_matter(rule: Rule, case: tuple[Tally, int], perm: list[int]) -> None:
    counted, electorate = case
    order = [p for p in perm if p < len(counted.counts)]
    moved = Tally(tuple(counted.counts[i] for i in order), counted.abstain, counted.blocks)
    before, after = decide(rule, counted, electorate), decide(rule, moved, electorate)
    assert after.outcome == before.outcome
    assert (after.winner is None) == (before.winner is None)
    if before.winner is not None and after.winner is not None:
        assert order[after.winner] == before.winner


@given(ratio_st, st.integers(0, 10_000), st.integers(0, 10_000), st.integers(0, 100))
def test_quorum_is_monotonic_in_turnout(
    quorum: Ratio, turnout: int, electorate: int, more: int
) -> None:
    if quorum_met(quorum, turnout, electorate):
        assert quorum_met(quorum, turnout + more, electorate)
    if quorum_met(quorum, turnout, electorate + more):  # and a larger electorate only hurts
        assert quorum_met(quorum, turnout, electorate)


@given(rule_st, tallies())
def test_winner_exactly_when_adopted(rule: Rule, case: tuple[Tally, int]) -> None:
    result = decide(rule, *case)
    assert (result.outcome == ADOPTED) == (result.winner is not None)
    if result.winner is not None:
        assert case[0].counts[result.winner] > 0


@given(super_st, ratio_st, tallies())
def test_a_supermajority_is_a_majority(
    fraction: Ratio, quorum: Ratio, case: tuple[Tally, int]
) -> None:
    counted, electorate = case
    strict = decide(Rule("supermajority", quorum, fraction), counted, electorate)
    if strict.outcome == ADOPTED:
        assert decide(Rule("majority", quorum), counted, electorate) == strict


@given(ratio_st, tallies(), st.integers(1, 5))
def test_any_block_fails_consent(quorum: Ratio, case: tuple[Tally, int], blocks: int) -> None:
    counted, electorate = case
    blocked = Tally(counted.counts, counted.abstain, counted.blocks + blocks)
    assert decide(Rule("consent", quorum), blocked, electorate + blocks).outcome != ADOPTED


@given(rule_st, tallies(), st.integers(1, 10))
def test_more_votes_for_the_winner_keep_it(rule: Rule, case: tuple[Tally, int], more: int) -> None:
    counted, electorate = case
    result = decide(rule, counted, electorate)
    if result.winner is None:
        return
    counts = list(counted.counts)
    counts[result.winner] += more
    boosted = Tally(tuple(counts), counted.abstain, counted.blocks)
    assert decide(rule, boosted, electorate + more) == result
