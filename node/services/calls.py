"""Calls to action this node issues (DESIGN §3, SPEC §8.5, §9.1): issue, amend, cancel, post
updates, conclude. Received calls are applied by node.services.calls_apply, and this node's
own envelopes go through the same handlers right after they are signed.

Rules:

- **Who issues** follows the governance policy's ``call_issuers``: ``admins``, or
  ``organisers`` (organisers and admins). ``vote`` (a member vote per call) is not offered
  yet, so such a node's admins issue. The same people amend, cancel, update and conclude,
  and only calls this node issued (``not_issuer`` otherwise). The operator at the command
  line (``by`` None) may do all of it.
- **What travels**: kind, titles and texts per language, times, a coarse public location
  (region, place), sectors, regions, the threshold, and the audience (``allies``,
  ``public``, or ``coalition:<id>`` of a coalition this node is a member of: else
  ``audience_unsupported``). The exact meeting point is kept in a local column and never
  signed.
- A cancelled or concluded call takes no amendment, cancel or conclusion (``call_closed``);
  updates (news) may still be posted after a cancel, to explain it.

Every function opens its own transaction, and refuses bad input with a stable code before
anything is signed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.errors import NodeError
from node.services.calls_apply import publish
from node.services.coalitions import is_member
from node.services.members import Actor, audit
from node.services.policy import defaults
from node.services.signer import Signer
from node.storage import calls as store
from node.storage.errors import NotFound
from node.storage.members import get_member
from node.storage.models import CallRow
from node.storage.policy import get_policy
from protocol import (
    CallAmend,
    CallCancel,
    CallConclude,
    CallIssue,
    CallUpdate,
    Location,
    Message,
    Threshold,
    ValidationError,
    coalition_of,
)

__all__ = [
    "AUDIENCES",
    "CallDraft",
    "CallError",
    "Code",
    "amend_call",
    "call_row",
    "cancel_call",
    "checked",
    "conclude_call",
    "issue_call",
    "update_call",
]

AUDIENCES: Final = ("allies", "public")
MAX_MEETING_POINT: Final = 1000
ISSUERS: Final = {
    "admins": frozenset({"admin"}),
    "organisers": frozenset({"organiser", "admin"}),
    "vote": frozenset({"admin"}),
}


class Code(StrEnum):
    CALL_NOT_FOUND = "call_not_found"
    INVALID_FIELD = "invalid_field"
    AUDIENCE_UNSUPPORTED = "audience_unsupported"
    NOT_ACTIVE_MEMBER = "not_an_active_member"
    NOT_ALLOWED = "not_allowed"
    NOT_ISSUER = "not_issuer"
    CALL_CLOSED = "call_closed"
    OWN_CALL = "own_call"
    DECIDED_BY_VOTE = "decided_by_vote"
    ALREADY_DECIDED = "already_decided"
    NOT_JOINED = "not_joined"
    NO_THRESHOLD = "no_threshold"
    PLEDGES_CLOSED = "pledges_closed"
    NO_PLEDGE = "no_pledge"


_STATUS: Final = {
    Code.CALL_NOT_FOUND: 404, Code.NO_PLEDGE: 404, Code.NOT_ACTIVE_MEMBER: 403,
    Code.NOT_ALLOWED: 403, Code.NOT_ISSUER: 409, Code.CALL_CLOSED: 409, Code.OWN_CALL: 409,
    Code.DECIDED_BY_VOTE: 409, Code.ALREADY_DECIDED: 409, Code.NOT_JOINED: 409,
    Code.PLEDGES_CLOSED: 409,
}  # fmt: skip


class CallError(NodeError):
    """A refused call request: a stable code, a safe message, an HTTP status."""

    def __init__(self, code: Code, message: str) -> None:
        super().__init__(_STATUS.get(code, 400), code.value, message)


@dataclass(frozen=True, slots=True)
class CallDraft:
    """A call as asked for; ``threshold`` is (pledges, orgs, deadline)."""

    kind: str
    title: Mapping[str, str]
    text: Mapping[str, str]
    audience: str = "allies"
    starts: int | None = None
    ends: int | None = None
    region: str | None = None
    place: str | None = None
    meeting_point: str | None = None
    sectors: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    threshold: tuple[int, int, int] | None = None


def checked(build: Any, **fields: Any) -> Any:
    """A protocol message, or 400 ``invalid_field`` saying which rule it breaks."""
    try:
        return build(**fields)
    except ValidationError as exc:
        raise CallError(Code.INVALID_FIELD, f"{exc.code}: {exc.detail}") from None


def _location(region: str | None, place: str | None) -> Location | None:
    if region is None:
        if place is not None:
            raise CallError(Code.INVALID_FIELD, "a place needs its region")
        return None
    location: Location = checked(Location, region=region, place=place)
    return location


def _audience(audience: str) -> str:
    if coalition_of(audience) is not None:
        return audience
    if audience not in AUDIENCES:
        raise CallError(Code.INVALID_FIELD, f"the audience is one of {', '.join(AUDIENCES)}")
    return audience


def _meeting_point(text: str | None) -> str | None:
    if text is not None and len(text) > MAX_MEETING_POINT:
        raise CallError(Code.INVALID_FIELD, f"a meeting point is at most {MAX_MEETING_POINT}")
    return text


def _issue(draft: CallDraft, now: int) -> CallIssue:
    threshold = None
    if draft.threshold is not None:
        threshold = checked(Threshold, pledges=draft.threshold[0], orgs=draft.threshold[1],
                             deadline=draft.threshold[2])  # fmt: skip
        if threshold.deadline <= now:
            raise CallError(Code.INVALID_FIELD, "the threshold's deadline must be in the future")
    issue: CallIssue = checked(
        CallIssue, kind=draft.kind, title=draft.title, text=draft.text, starts=draft.starts,
        ends=draft.ends, location=_location(draft.region, draft.place),
        sectors=draft.sectors, regions=draft.regions, threshold=threshold,
    )  # fmt: skip
    return issue


# Who acts


async def _check_issuer(session: AsyncSession, by: int | None) -> Actor:
    """The actor, if the policy lets them issue and act on this node's calls."""
    if by is None:
        return Actor.cli()
    try:
        member = await get_member(session, by)
    except NotFound:
        member = None
    if member is None or member.status != "active":
        raise CallError(Code.NOT_ACTIVE_MEMBER, "only active members may do this")
    policy = await get_policy(session) or defaults()
    if member.role not in ISSUERS[policy.call_issuers]:
        raise CallError(Code.NOT_ALLOWED, "the governance policy does not let you issue calls")
    return Actor.member(by)


async def call_row(session: AsyncSession, number: int) -> CallRow:
    try:
        return await store.get_call_by_number(session, number)
    except NotFound:
        raise CallError(Code.CALL_NOT_FOUND, "no such call") from None


async def _own_live_call(session: AsyncSession, signer: Signer, number: int) -> CallRow:
    call = await call_row(session, number)
    if call.origin != signer.node_id:
        raise CallError(Code.NOT_ISSUER, "only the issuing node may change its call")
    if call.state in ("cancelled", "concluded"):
        raise CallError(Code.CALL_CLOSED, f"the call is {call.state}")
    return call


# Issuing and acting on this node's calls


async def issue_call(
    sessions: async_sessionmaker[Any], signer: Signer, draft: CallDraft, *, by: int | None, now: int
) -> int:
    """Sign and publish a new call; its local number (the JSON API's id)."""
    issue = _issue(draft, now)
    audience = _audience(draft.audience)
    meeting_point = _meeting_point(draft.meeting_point)
    async with sessions.begin() as session:
        actor = await _check_issuer(session, by)
        if coalition_of(audience) is not None and not await is_member(
            session, audience, signer.node_id
        ):
            raise CallError(
                Code.AUDIENCE_UNSUPPORTED, "this node is not a member of that coalition"
            )
        signed = await publish(session, signer, issue, audience=audience, now=now)
        call = await store.get_call(session, signed.id)
        assert call is not None  # noqa: S101 - publish just applied it
        await store.set_call(session, call.id, meeting_point=meeting_point, created_by=by)
        await audit(session, now, actor, "call.issue", call=signed.id.hex(), kind=issue.kind)
        return call.id


async def _act(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    make: Any,
    *,
    by: int | None,
    now: int,
    local: Mapping[str, Any] | None = None,
) -> None:
    """Check, set the ``local`` (never signed) columns, then sign and apply ``make(call)``
    (a message, or None for a local change only), in one transaction."""
    async with sessions.begin() as session:
        actor = await _check_issuer(session, by)
        call = await _own_live_call(session, signer, number)
        if local:
            await store.set_call(session, call.id, **local)
        message: Message | None = make(call)
        if message is not None:
            await publish(session, signer, message, audience=call.audience, now=now)
            await audit(session, now, actor, message.TYPE, call=call.call_id.hex())


async def amend_call(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    changes: Mapping[str, Any],
    *,
    by: int | None,
    now: int,
) -> None:
    """Amend titles, texts, times, location, sectors or regions (not kind or threshold);
    ``meeting_point`` changes only the local column."""
    fields = {k: v for k, v in changes.items() if k != "meeting_point"}
    if "location" in fields:
        where = fields["location"] or {}
        fields["location"] = _location(where.get("region"), where.get("place"))
    for name in ("sectors", "regions"):
        if name in fields:
            fields[name] = tuple(fields[name])
    local = None
    if "meeting_point" in changes:
        local = {"meeting_point": _meeting_point(changes["meeting_point"])}
    elif not fields:
        raise CallError(Code.INVALID_FIELD, "an amendment changes at least one field")

    def make(call: CallRow) -> Message | None:
        if not fields:
            return None
        message: Message = checked(CallAmend, call=call.call_id, **fields)
        return message

    await _act(sessions, signer, number, make, by=by, now=now, local=local)


async def cancel_call(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    reason: Mapping[str, str] | None,
    *,
    by: int | None,
    now: int,
) -> None:
    def make(call: CallRow) -> Message:
        message: Message = checked(CallCancel, call=call.call_id, reason=reason)
        return message

    await _act(sessions, signer, number, make, by=by, now=now)


async def conclude_call(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    outcome: str,
    text: Mapping[str, str] | None,
    *,
    by: int | None,
    now: int,
) -> None:
    def make(call: CallRow) -> Message:
        message: Message = checked(CallConclude, call=call.call_id, outcome=outcome, text=text)
        return message

    await _act(sessions, signer, number, make, by=by, now=now)


async def update_call(
    sessions: async_sessionmaker[Any],
    signer: Signer,
    number: int,
    text: Mapping[str, str],
    *,
    by: int | None,
    now: int,
) -> None:
    """Post news about a call; allowed after a cancel too (to explain it), not after a
    conclusion."""
    async with sessions.begin() as session:
        actor = await _check_issuer(session, by)
        call = await call_row(session, number)
        if call.origin != signer.node_id:
            raise CallError(Code.NOT_ISSUER, "only the issuing node posts updates")
        if call.state == "concluded":
            raise CallError(Code.CALL_CLOSED, "the call is concluded")
        message = checked(CallUpdate, call=call.call_id, text=text)
        await publish(session, signer, message, audience=call.audience, now=now)
        await audit(session, now, actor, message.TYPE, call=call.call_id.hex())
