"""When another node's call arrives, the node follows its governance policy (DESIGN §3): if
``endorsement_by`` is ``vote``, a member proposal "do we join?" opens at once, with the call
attached (``proposals.call_id``), options yes and no, a secret ballot, and the policy's rule
and hours (closing no later than halfway to the call's pledge deadline, so its members can
still pledge once it is joined: :func:`closing_time`); otherwise the call waits
for its admins' or organisers' decision (node.services.call_votes). A call whose deadline
leaves less than a minute to vote stays undecided. Cancelling a call cancels its live vote.

Proposals hold one title without a language: the call's title in the first of Arabic,
Sorani Kurdish, English present (else any), cleaned of control characters.
"""

from __future__ import annotations

import logging
from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from node.services.decisions import (
    MAX_BODY,
    MAX_TITLE,
    MIN_WINDOW,
    DecisionError,
    Draft,
    put_call_proposal,
)
from node.services.policy import defaults
from node.storage import calls as store
from node.storage import decisions
from node.storage.models import CallRow, GovernancePolicy
from node.storage.policy import get_policy

__all__ = ["OPTIONS", "cancel_votes", "closing_time", "consider", "pick_text"]

log = logging.getLogger(__name__)

OPTIONS: Final = ("yes", "no")  # index 0 adopted: the node endorses the call
PREFERRED: Final = ("ar", "ckb", "en")
FALLBACK_TITLE: Final = "Call to action"
_CONTROL_OK: Final = "\n\t"


def pick_text(texts: dict[str, str]) -> str:
    """The text in the first preferred language present, else in any."""
    for lang in PREFERRED:
        if lang in texts:
            return texts[lang]
    return next(iter(texts.values()), "")


def _clean(text: str, limit: int, keep: str = "") -> str:
    cleaned = "".join(c if c.isprintable() or c in keep else " " for c in text).strip()
    return cleaned.encode()[:limit].decode("utf-8", "ignore")


def closing_time(call: CallRow, policy: GovernancePolicy, now: int) -> int:
    """When the vote on ``call`` closes: after the policy's hours, but with a pledge deadline
    no later than halfway to it (at least a minute after opening, never past the deadline),
    so that members of an organisation that votes to join still have time to pledge."""
    closes = now + policy.vote_hours * 3600
    if call.deadline is not None:
        halfway = now + max((call.deadline - now) // 2, MIN_WINDOW)
        closes = min(closes, halfway, call.deadline)
    return closes


def _draft(call: CallRow, policy: GovernancePolicy, now: int) -> Draft | None:
    closes = closing_time(call, policy, now)
    if closes - now < MIN_WINDOW:
        return None
    fraction = None
    if policy.vote_fraction_num is not None and policy.vote_fraction_den is not None:
        fraction = (policy.vote_fraction_num, policy.vote_fraction_den)
    return Draft(
        title=_clean(pick_text(call.title), MAX_TITLE) or FALLBACK_TITLE,
        body=_clean(pick_text(call.text), MAX_BODY, _CONTROL_OK), options=OPTIONS,
        method=policy.vote_method, quorum=(policy.vote_quorum_num, policy.vote_quorum_den),
        ballot="secret", opens_at=now, closes_at=closes, fraction=fraction,
    )  # fmt: skip


async def consider(session: AsyncSession, call: CallRow, now: int) -> None:
    """Start this node's decision on another node's call, as the policy says."""
    policy = await get_policy(session) or defaults()
    if policy.endorsement_by != "vote":
        return
    draft = _draft(call, policy, now)
    if draft is None:
        log.info("call %s: too little time left to vote on it", call.call_id.hex())
        return
    try:
        await put_call_proposal(session, draft, call.call_id, now=now)
    except DecisionError as exc:  # raised before anything is written
        log.warning("call %s: no vote opened: %s", call.call_id.hex(), exc)
        return
    await store.set_call(session, call.id, stance="voting")


async def cancel_votes(session: AsyncSession, call_id: bytes, now: int) -> None:
    """Cancel the live "do we join?" votes of a cancelled call; their ballots are deleted."""
    for proposal in await store.live_proposals(session, call_id):
        if await decisions.claim_for_cancel(session, proposal.id, now):
            await decisions.delete_ballots(session, proposal.id)
            await decisions.delete_voters(session, proposal.id)
