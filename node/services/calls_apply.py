"""Applying ``call.*`` envelopes (SPEC §8.5, §9): the handlers the inbox calls for verified
envelopes of other nodes, and that this node runs on its own right after signing them, so
both take one path.

Each handler is ``async def (session, signed, *, now) -> None``, in the caller's
transaction; :data:`CALL_HANDLERS` maps type to handler. The envelope is already verified and
stored by the caller. A handler parses the body (``ValidationError``, e.g. a tally count
below ``k``), and raises :class:`CallIgnored` for a valid envelope that has no effect here;
both are raised before anything is written, so the caller may go on with the session.

The rules (SPEC §9.1-§9.3):

- Only the issuer (the ``origin`` of the ``call.issue``) amends, cancels, updates or
  concludes a call; others are ignored (``not_issuer``). Amendments and conclusions after a
  cancel or a conclusion are ignored (``call_closed``); amendments apply in ``seq`` order,
  and one older than an amendment already applied is ignored (``stale_amendment``; the inbox
  applies each origin's envelopes in order, so this only happens to a replayed one).
- A cancel for a call not held is kept; when the call arrives from the same origin it is
  cancelled at once (and its "do we join?" vote is never opened). A cancel wins over any
  amendment; a cancel of a concluded call is ignored (``call_closed``).
- Endorsements, tallies and activations may arrive before their call: they are kept by call
  id. An origin's later verdict replaces its earlier one. Two different tallies of one origin
  with one ``seq`` are equivocation: both kept, both flagged.
- An activation is checked with :func:`protocol.check_activation` against the tallies held.
  While its call or some named tally is missing it is held (``pending``) and checked again
  when tallies or the call arrive; a proof that does not add up is refused
  (``activation_unproven``). A valid one activates an open (or void) call. Holding one
  notes, under :data:`WANTED_LOGS` in ``session.info``, the origins whose logs should hold
  the missing tallies (its origin, the issuer, and those with a verdict or tally on the
  call), so that catch-up pulls them once the transaction commits (node.federation.catchup).
- Cancellations, amendments and activations notify members: every active member when this
  node issued, endorsed or is voting on the call, otherwise those who pledged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Final, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from node.services.call_proposals import cancel_votes, consider
from node.services.signer import Signer
from node.storage import calls as store
from node.storage import envelopes, wakeups
from node.storage.models import (
    ActivationRow,
    CallRow,
    CallUpdateRow,
    EarlyCancel,
    Endorsement,
    TallyRow,
)
from node.storage.pledges import notify
from protocol import (
    CallActivate,
    CallAmend,
    CallCancel,
    CallConclude,
    CallDecline,
    CallEndorse,
    CallIssue,
    CallTally,
    CallUpdate,
    ErrorCode,
    Message,
    SignedEnvelope,
    TallyRecord,
    Threshold,
    ValidationError,
    check_activation,
)

__all__ = [
    "CALL_HANDLERS",
    "ENGAGED",
    "WANTED_LOGS",
    "CallIgnored",
    "IgnoredCode",
    "apply_call_activate",
    "apply_call_amend",
    "apply_call_cancel",
    "apply_call_conclude",
    "apply_call_issue",
    "apply_call_tally",
    "apply_call_update",
    "apply_call_verdict",
    "publish",
    "split_ids",
]

log = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]
M = TypeVar("M", bound=Message)
ENGAGED: Final = frozenset({"own", "endorsed", "voting"})  # stances whose members all hear
CLOSED: Final = frozenset({"cancelled", "concluded"})
WANTED_LOGS: Final = "tadamun.calls.wanted_logs"  # session.info: origins to pull after commit


class IgnoredCode:
    NOT_ISSUER: Final = "not_issuer"
    CALL_CLOSED: Final = "call_closed"
    UNKNOWN_CALL: Final = "unknown_call"
    STALE_AMENDMENT: Final = "stale_amendment"


class CallIgnored(Exception):
    """A valid ``call.*`` envelope that has no effect here; ``code`` is stable (SPEC §12)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


def _parse(signed: SignedEnvelope, cls: type[M]) -> M:
    if signed.envelope.type != cls.TYPE:
        raise TypeError(f"a {cls.TYPE} handler got {signed.envelope.type}")
    return cls.from_body(signed.envelope.body)


async def _issued(session: AsyncSession, signed: SignedEnvelope, call_id: bytes) -> CallRow:
    """The call an issuer-only message names, or CallIgnored."""
    call = await store.get_call(session, call_id)
    if call is None:
        raise CallIgnored(IgnoredCode.UNKNOWN_CALL, f"no call {call_id.hex()} is held")
    if signed.envelope.origin != call.origin:
        raise CallIgnored(IgnoredCode.NOT_ISSUER, "only the issuing node may do this")
    return call


async def _notify(session: AsyncSession, call: CallRow, kind: str, now: int) -> None:
    await notify(session, call.id, kind, now, everyone=call.stance in ENGAGED)


# call.issue


def _call_row(signed: SignedEnvelope, issue: CallIssue, self_id: bytes, now: int) -> CallRow:
    env, where, threshold = signed.envelope, issue.location, issue.threshold
    return CallRow(
        call_id=signed.id, origin=env.origin, seq=env.seq, kind=issue.kind,
        audience=env.audience, title=dict(issue.title), text=dict(issue.text),
        starts=issue.starts, ends=issue.ends, region=where and where.region,
        place=where and where.place, sectors=list(issue.sectors), regions=list(issue.regions),
        pledges_needed=threshold and threshold.pledges, orgs_needed=threshold and threshold.orgs,
        deadline=threshold and threshold.deadline, state="open",
        stance="own" if env.origin == self_id else "undecided", created_at=env.created,
        received_at=now, tally_seq=0, tally_firm=0, tally_conditional=0, recheck=False,
    )  # fmt: skip


async def apply_call_issue(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    issue = _parse(signed, CallIssue)
    if await store.get_call(session, signed.id) is not None:
        return
    row = _call_row(signed, issue, await envelopes.get_node_id(session), now)
    for early in await store.pop_early_cancels(session, signed.id):
        if early.origin == row.origin:  # a non-issuer's cancel is dropped here
            row.state, row.note = "cancelled", early.reason
    call = await store.put_call(session, row)
    if call.state == "open" and call.stance == "undecided":
        await consider(session, call, now)
    if await store.list_tallies(session, signed.id):  # tallies came first: check activation
        await store.set_call(session, call.id, recheck=True)
        wakeups.note(session, wakeups.CALLS)
    await _settle_pending(session, signed.id, now)


# call.amend, call.cancel, call.update, call.conclude: the issuer's


def _amended(amend: CallAmend) -> dict[str, object]:
    values: dict[str, object] = {}
    for name in ("title", "text"):
        if getattr(amend, name) is not None:
            values[name] = dict(getattr(amend, name))
    for name in ("starts", "ends"):
        if getattr(amend, name) is not None:
            values[name] = getattr(amend, name)
    for name in ("sectors", "regions"):
        if getattr(amend, name) is not None:
            values[name] = list(getattr(amend, name))
    if amend.location is not None:
        values |= {"region": amend.location.region, "place": amend.location.place}
    return values


async def apply_call_amend(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    amend = _parse(signed, CallAmend)
    call = await _issued(session, signed, amend.call)
    seq = signed.envelope.seq
    if call.state in CLOSED:
        raise CallIgnored(IgnoredCode.CALL_CLOSED, f"the call is {call.state}")
    if call.amended_seq is not None and seq <= call.amended_seq:
        raise CallIgnored(IgnoredCode.STALE_AMENDMENT, f"amendment {call.amended_seq} applied")
    await store.set_call(session, call.id, amended_seq=seq, **_amended(amend))
    await _notify(session, call, "amended", now)


async def apply_call_cancel(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    cancel = _parse(signed, CallCancel)
    reason = None if cancel.reason is None else dict(cancel.reason)
    if await store.get_call(session, cancel.call) is None:
        early = EarlyCancel(
            call_id=cancel.call, origin=signed.envelope.origin, envelope=signed.id,
            reason=reason, received_at=now,
        )  # fmt: skip
        await store.put_early_cancel(session, early)
        return
    call = await _issued(session, signed, cancel.call)
    if call.state == "cancelled":
        return
    if call.state == "concluded":
        raise CallIgnored(IgnoredCode.CALL_CLOSED, "the call was concluded")
    await store.set_call(session, call.id, state="cancelled", note=reason, tally_due_at=None)
    await cancel_votes(session, call.call_id, now)
    await _notify(session, call, "cancelled", now)


async def apply_call_update(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    news = _parse(signed, CallUpdate)
    call = await _issued(session, signed, news.call)
    row = CallUpdateRow(
        call=call.id, envelope=signed.id, text=dict(news.text), created_at=signed.envelope.created
    )
    await store.put_update(session, row)


async def apply_call_conclude(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    done = _parse(signed, CallConclude)
    call = await _issued(session, signed, done.call)
    if call.state in CLOSED:
        raise CallIgnored(IgnoredCode.CALL_CLOSED, f"the call is {call.state}")
    note = None if done.text is None else dict(done.text)
    await store.set_call(
        session, call.id, state="concluded", outcome=done.outcome, note=note, tally_due_at=None
    )


# call.endorse, call.decline: any organisation's verdict


async def apply_call_verdict(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    env = signed.envelope
    verdict = _parse(signed, CallEndorse if env.type == CallEndorse.TYPE else CallDecline)
    held = await store.get_endorsement(session, verdict.call, env.origin)
    if held is not None and held.seq >= env.seq:
        return
    summary = verdict.decision
    await store.put_endorsement(
        session,
        Endorsement(
            call_id=verdict.call, origin=env.origin, verdict=env.type.removeprefix("call."),
            envelope=signed.id, seq=env.seq, by=summary.by, method=summary.method,
            electorate=summary.electorate, turnout=summary.turnout, yes=summary.yes,
            no=summary.no, abstain=summary.abstain, blocks=summary.blocks,
            decision=summary.decision, note=None if verdict.note is None else dict(verdict.note),
            created_at=env.created,
        ),
    )  # fmt: skip


# call.tally


async def apply_call_tally(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    tally = _parse(signed, CallTally)  # a count below k or off the bucket: ValidationError
    if await store.get_tally(session, signed.id) is not None:
        return
    env = signed.envelope
    row = TallyRow(
        id=signed.id, call_id=tally.call, origin=env.origin, seq=tally.seq, firm=tally.firm,
        conditional=tally.conditional, bucket=tally.bucket, k=tally.k, created_at=env.created,
        equivocation=False,
    )  # fmt: skip
    await store.put_tally(session, row)
    siblings = await store.tally_siblings(session, row)
    if siblings:
        log.warning("tally equivocation by %s, seq %d", env.origin.hex(), tally.seq)
        for held in (row, *siblings):
            held.equivocation = True
        await session.flush()
    call = await store.get_call(session, tally.call)
    if call is not None:
        await store.set_call(session, call.id, recheck=True)
        wakeups.note(session, wakeups.CALLS)
    await _settle_pending(session, tally.call, now)


# call.activate


def split_ids(joined: bytes) -> tuple[bytes, ...]:
    return tuple(joined[i : i + 32] for i in range(0, len(joined), 32))


def _record(row: TallyRow) -> TallyRecord:
    tally = CallTally(
        call=row.call_id, seq=row.seq, firm=row.firm, conditional=row.conditional,
        bucket=row.bucket, k=row.k,
    )  # fmt: skip
    return TallyRecord(row.id, row.origin, row.created_at, tally)


async def _proven(session: AsyncSession, call: CallRow, activate: CallActivate) -> bool:
    """Whether the proof holds (ValidationError if it does not add up); False while a named
    tally is not held."""
    if call.pledges_needed is None or call.orgs_needed is None or call.deadline is None:
        raise ValidationError(ErrorCode.ACTIVATION_UNPROVEN, "the call has no threshold to meet")
    rows = await store.list_tallies_by_id(session, activate.tallies)
    if len(rows) < len(activate.tallies):
        return False
    threshold = Threshold(call.pledges_needed, call.orgs_needed, call.deadline)
    check_activation(call.call_id, threshold, activate, [_record(row) for row in rows])
    return True


async def _activate(session: AsyncSession, call: CallRow, activation: bytes, now: int) -> None:
    if call.activation is not None:
        return
    if call.state in ("open", "void"):
        await store.set_call(session, call.id, state="activated", activation=activation)
        await _notify(session, call, "activated", now)
    else:
        await store.set_call(session, call.id, activation=activation)


async def apply_call_activate(session: AsyncSession, signed: SignedEnvelope, *, now: int) -> None:
    activate = _parse(signed, CallActivate)
    if await store.get_activation(session, signed.id) is not None:
        return
    call = await store.get_call(session, activate.call)
    proven = call is not None and await _proven(session, call, activate)
    env = signed.envelope
    await store.put_activation(
        session,
        ActivationRow(
            id=signed.id, call_id=activate.call, origin=env.origin,
            tallies=b"".join(activate.tallies), pledges=activate.pledges, orgs=activate.orgs,
            state="valid" if proven else "pending", created_at=env.created, received_at=now,
        ),
    )  # fmt: skip
    if call is not None and proven:
        await _activate(session, call, signed.id, now)
    elif not proven:
        log.info("activation %s held: its call or tallies are not here yet", signed.id.hex())
        await _want_logs(session, activate.call, env.origin)


async def _want_logs(session: AsyncSession, call_id: bytes, origin: bytes) -> None:
    """Note whose logs should hold what a held activation lacks (SPEC §9.3: fetch them)."""
    call = await store.get_call(session, call_id)
    origins = {origin} if call is None else {origin, call.origin}
    origins.update(row.origin for row in await store.list_endorsements(session, call_id))
    origins.update(row.origin for row in await store.list_tallies(session, call_id))
    origins.discard(await envelopes.get_node_id(session))
    session.info.setdefault(WANTED_LOGS, set()).update(origins)


async def _settle_pending(session: AsyncSession, call_id: bytes, now: int) -> None:
    """Check again the activations held for ``call_id`` now that more is known."""
    pending = await store.list_activations(session, call_id, "pending")
    call = await store.get_call(session, call_id) if pending else None
    for row in pending:
        if call is None:
            return
        activate = CallActivate(call_id, split_ids(row.tallies), row.pledges, row.orgs)
        try:
            if not await _proven(session, call, activate):
                continue
        except ValidationError as exc:
            log.warning("held activation %s refused: %s", row.id.hex(), exc)
            await store.delete_activation(session, row.id)
            continue
        row.state = "valid"
        await session.flush()
        await _activate(session, call, row.id, now)
        call = await store.get_call(session, call_id)


CALL_HANDLERS: Final[Mapping[str, Handler]] = {
    CallIssue.TYPE: apply_call_issue,
    CallAmend.TYPE: apply_call_amend,
    CallCancel.TYPE: apply_call_cancel,
    CallUpdate.TYPE: apply_call_update,
    CallConclude.TYPE: apply_call_conclude,
    CallEndorse.TYPE: apply_call_verdict,
    CallDecline.TYPE: apply_call_verdict,
    CallTally.TYPE: apply_call_tally,
    CallActivate.TYPE: apply_call_activate,
}


async def publish(
    session: AsyncSession, signer: Signer, message: Message, *, audience: str, now: int
) -> SignedEnvelope:
    """Sign ``message`` as this node's next envelope and apply it here, in one transaction."""
    signed = await signer.append(
        session, type=message.TYPE, body=message.to_body(), audience=audience, now=now
    )
    await CALL_HANDLERS[message.TYPE](session, signed, now=now)
    return signed
