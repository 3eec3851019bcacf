"""What the decision pages show, made from the services' views: a proposal with its state in
time, a member's own vote, and a closed proposal's result read from its signed outcome."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from node.services.counting import Choice
from node.services.decisions import MyVote, ProposalView
from protocol import DecisionOutcome, SignedEnvelope

__all__ = ["PUBLIC_ID", "Proposal", "Result", "proposal_of", "result_of"]

PUBLIC_ID: Final = r"[0-9a-f]{32}"


@dataclass(frozen=True, slots=True)
class Proposal:
    view: ProposalView
    now: int
    vote: MyVote | None = None

    @property
    def id(self) -> str:
        return self.view.public_id.hex()

    @property
    def status(self) -> str:
        """scheduled, open, closed or cancelled, by the clock (the scheduler may lag)."""
        view = self.view
        if view.status in ("closed", "cancelled"):
            return view.status
        if self.now >= view.closes_at:
            return "closed"
        return "open" if self.now >= view.opens_at else "scheduled"

    @property
    def live(self) -> bool:
        return self.status == "open"

    @property
    def time_left(self) -> int:
        return max(self.view.closes_at - self.now, 0)

    @property
    def time_to_open(self) -> int:
        return max(self.view.opens_at - self.now, 0)

    @property
    def my_choice(self) -> str | None:
        """The form value of the member's own choice, if it can be shown."""
        if self.vote is None or self.vote.choice is None:
            return None
        return _form_value(self.vote.choice)


def _form_value(choice: Choice) -> str:
    """An option's index, "abstain" or "block": as the vote form sends it."""
    return str(choice)


def proposal_of(view: ProposalView, now: int, vote: MyVote | None = None) -> Proposal:
    return Proposal(view, now, vote)


@dataclass(frozen=True, slots=True)
class Row:
    label: str
    count: int
    winner: bool = False


@dataclass(frozen=True, slots=True)
class Result:
    outcome: DecisionOutcome

    @property
    def rows(self) -> list[Row]:
        o = self.outcome
        return [
            Row(label, count, o.winner == i)
            for i, (label, count) in enumerate(zip(o.options, o.counts, strict=True))
        ]

    @property
    def cast(self) -> int:
        return sum(self.outcome.counts)

    @property
    def quorum_met(self) -> bool:
        o = self.outcome
        return o.turnout * o.quorum.den >= o.quorum.num * o.electorate

    @property
    def winner_label(self) -> str | None:
        o = self.outcome
        return None if o.winner is None else o.options[o.winner]


def result_of(signed: bytes | None) -> Result | None:
    """The result in a proposal's signed ``decision.outcome``, if it has one."""
    if signed is None:
        return None
    envelope = SignedEnvelope.from_bytes(signed).envelope
    return Result(DecisionOutcome.from_body(envelope.body))
