"""The node's governance policy: whether new members wait for approval, who may issue calls
to action, who decides endorsements, and the rule of a member vote. Admins edit it; every
active member may read it. Until an admin first saves it, the defaults below apply."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.clock import Clock
from node.errors import invalid_field
from node.services.members import Actor, audit
from node.storage.models import GovernancePolicy
from node.storage.policy import get_policy, put_policy

__all__ = [
    "DECIDERS",
    "VOTE_METHODS",
    "PolicyService",
    "approval_required",
    "defaults",
    "policy_view",
]

DECIDERS: Final = ("admins", "organisers", "vote")
VOTE_METHODS: Final = ("majority", "supermajority", "consent")


def defaults() -> GovernancePolicy:
    """The policy of a node whose admins have not saved one (``updated_at`` 0: never)."""
    return GovernancePolicy(
        approval_required=False, call_issuers="organisers", endorsement_by="vote",
        vote_method="majority", vote_fraction_num=None, vote_fraction_den=None,
        vote_quorum_num=1, vote_quorum_den=4, vote_hours=72, updated_at=0,
    )  # fmt: skip


def policy_view(row: GovernancePolicy) -> dict[str, Any]:
    fraction = None
    if row.vote_fraction_num is not None and row.vote_fraction_den is not None:
        fraction = {"num": row.vote_fraction_num, "den": row.vote_fraction_den}
    return {
        "approval_required": row.approval_required,
        "call_issuers": row.call_issuers,
        "endorsement_by": row.endorsement_by,
        "vote": {
            "method": row.vote_method,
            "fraction": fraction,
            "quorum": {"num": row.vote_quorum_num, "den": row.vote_quorum_den},
            "hours": row.vote_hours,
        },
        "updated_at": row.updated_at or None,
    }


async def approval_required(session: AsyncSession) -> bool:
    row = await get_policy(session)
    return bool((row or defaults()).approval_required)


def _columns(policy: dict[str, Any]) -> dict[str, Any]:
    """Check the rules a schema cannot express; the policy's column values."""
    vote = policy["vote"]
    fraction, quorum = vote["fraction"], vote["quorum"]
    if vote["method"] == "supermajority":
        if fraction is None or not fraction["den"] < 2 * fraction["num"] <= 2 * fraction["den"]:
            raise invalid_field("vote.fraction", "a supermajority needs a fraction above 1/2")
    elif fraction is not None:
        raise invalid_field("vote.fraction", "is only for a supermajority; send null")
    if quorum["num"] > quorum["den"]:
        raise invalid_field("vote.quorum", "must be at most 1 (num <= den)")
    return {
        "approval_required": policy["approval_required"],
        "call_issuers": policy["call_issuers"],
        "endorsement_by": policy["endorsement_by"],
        "vote_method": vote["method"],
        "vote_fraction_num": fraction and fraction["num"],
        "vote_fraction_den": fraction and fraction["den"],
        "vote_quorum_num": quorum["num"],
        "vote_quorum_den": quorum["den"],
        "vote_hours": vote["hours"],
    }


@dataclass(frozen=True, slots=True)
class PolicyService:
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock

    async def get(self) -> dict[str, Any]:
        async with self.sessions() as session:
            return policy_view(await get_policy(session) or defaults())

    async def put(self, actor: Actor, policy: dict[str, Any]) -> dict[str, Any]:
        """Replace the policy (validated by the API schema; cross-field rules here)."""
        columns = _columns(policy)
        now = self.clock.now()
        async with self.sessions.begin() as session:
            row = await put_policy(session, columns, now)
            await audit(session, now, actor, "policy.update", **columns)
            return policy_view(row)
