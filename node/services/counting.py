"""Counting an internal vote: pure functions from ballots to an outcome (DESIGN §3, SPEC §8.4).

No database and no clock. The decisions service counts the stored ballots with :func:`tally`
and asks :func:`decide` for the outcome, at close and again when recomputing. Integers only:
shares are compared by cross-multiplication, never as floats.

The rules, precisely. ``n`` is the number of votes cast *for options* (the sum of ``counts``);
abstentions and blocks are ballots, and count towards turnout, but are not votes for an option.

- **Quorum** is met when ``turnout * quorum.den >= quorum.num * electorate``; turnout counts
  every ballot (option votes, abstentions, blocks). Not met: ``no_quorum``, whatever the votes.
- **Leader**: the option with strictly more votes than every other option. There is none when
  two or more options tie for the most votes, or when ``n = 0``.
- **majority**: the leader is adopted when it has more than half of ``n`` (``2 * v > n``);
  otherwise ``rejected``. With two options a tie is rejected; with more, a plurality short of
  a majority is rejected too (there is no runoff).
- **supermajority** with fraction ``f = num/den``: the leader is adopted when its share of
  ``n`` is at least ``f`` (``v * den >= num * n``); exactly at the fraction is adopted.
- **consent**: any block fails the proposal (``rejected``). Otherwise the leader is adopted:
  it has at least one vote, so at least one member was in favour and nobody objected. No
  leader (no vote for any option, or a tie for the most) is ``rejected``. For a two-option
  "agree / disagree" proposal: no block and more "agree" than "disagree" adopts "agree"; more
  "disagree" adopts "disagree" (the members chose not to); a tie, or only abstentions,
  is rejected.

``adopted`` means the vote chose an option, named by ``winner``: for a yes/no question "no"
can be the adopted option. ``rejected`` means no option had the support the rule requires,
and the status quo stands. ``winner`` is set exactly when the outcome is ``adopted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

from protocol import Ratio

__all__ = [
    "ABSTAIN",
    "ADOPTED",
    "BLOCK",
    "METHODS",
    "NO_QUORUM",
    "REJECTED",
    "Choice",
    "Result",
    "Rule",
    "Tally",
    "decide",
    "leader",
    "quorum_met",
    "tally",
]

ABSTAIN: Final = "abstain"
BLOCK: Final = "block"
ADOPTED: Final = "adopted"
REJECTED: Final = "rejected"
NO_QUORUM: Final = "no_quorum"
METHODS: Final = frozenset({"majority", "supermajority", "consent"})

# A ballot's choice: the index of an option, or an abstention, or (under consent) a block.
Choice = int | Literal["abstain", "block"]


@dataclass(frozen=True, slots=True)
class Rule:
    """How a proposal is decided: the method, its fraction (supermajority only), the quorum."""

    method: str
    quorum: Ratio
    fraction: Ratio | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}")
        if (self.method == "supermajority") != (self.fraction is not None):
            raise ValueError("a fraction is given exactly for a supermajority")


@dataclass(frozen=True, slots=True)
class Tally:
    """Ballots counted: votes per option (in option order), abstentions and blocks."""

    counts: tuple[int, ...]
    abstain: int = 0
    blocks: int = 0

    def __post_init__(self) -> None:
        if min((*self.counts, self.abstain, self.blocks), default=0) < 0:
            raise ValueError("counts are never negative")

    @property
    def cast(self) -> int:
        """Votes cast for options: the ``n`` of the rules above."""
        return sum(self.counts)

    @property
    def turnout(self) -> int:
        return self.cast + self.abstain + self.blocks


@dataclass(frozen=True, slots=True)
class Result:
    outcome: str  # adopted | rejected | no_quorum
    winner: int | None = None


def tally(choices: Iterable[Choice], options: int) -> Tally:
    """Count ballots; a choice outside ``0 .. options - 1``, abstain and block is a ValueError."""
    counts = [0] * options
    abstain = blocks = 0
    for choice in choices:
        if choice == ABSTAIN:
            abstain += 1
        elif choice == BLOCK:
            blocks += 1
        elif type(choice) is int and 0 <= choice < options:
            counts[choice] += 1
        else:
            raise ValueError(f"not a choice among {options} options: {choice!r}")
    return Tally(tuple(counts), abstain, blocks)


def quorum_met(quorum: Ratio, turnout: int, electorate: int) -> bool:
    """``turnout / electorate >= quorum``, in integers (an empty electorate meets any quorum)."""
    return turnout * quorum.den >= quorum.num * electorate


def leader(counts: tuple[int, ...]) -> int | None:
    """The option with strictly the most votes, or None on a tie for the most or no votes."""
    if not counts or max(counts) == 0:
        return None
    top = max(counts)
    return counts.index(top) if counts.count(top) == 1 else None


def decide(rule: Rule, counted: Tally, electorate: int) -> Result:
    """The outcome of a closed vote under ``rule`` (see the module docstring)."""
    if not quorum_met(rule.quorum, counted.turnout, electorate):
        return Result(NO_QUORUM)
    best = leader(counted.counts)
    if best is None or not _enough(rule, counted, counted.counts[best]):
        return Result(REJECTED)
    return Result(ADOPTED, best)


def _enough(rule: Rule, counted: Tally, votes: int) -> bool:
    """Whether the leader's ``votes`` carry the proposal under the rule's method."""
    if rule.method == "majority":
        return 2 * votes > counted.cast
    if rule.fraction is not None:  # a supermajority, and only it, has a fraction (Rule)
        return votes * rule.fraction.den >= rule.fraction.num * counted.cast
    return counted.blocks == 0  # consent: the leader has at least one vote
