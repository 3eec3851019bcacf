"""Coordinators' pages of calls to action: issue a call (``/calls/new``), amend one
(``/calls/{call}/amend``), and from a call's page post news, cancel or conclude it; decide
whether the organisation joins another node's call.

Who may is the governance policy's: ``call_issuers`` for this node's own calls,
``endorsement_by`` (admins, or organisers and admins) for a decision; under a member vote
the "do we join?" proposal decides instead. The services check it again
(node.services.calls, call_votes) and their refusals are shown next to the form.

Times are typed in ``datetime-local`` fields and read as UTC (the footer says so). Titles
and texts come in Arabic, Sorani and English fields, at least one of each; an amendment
keeps a call's texts in other languages. Only what changed is amended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, NamedTuple

from aiohttp import web

from node.errors import NodeError, forbidden
from node.services import call_views
from node.services.call_votes import decide
from node.services.calls import (
    AUDIENCES,
    CallError,
    Code,
    amend_call,
    cancel_call,
    conclude_call,
    issue_call,
    update_call,
)
from node.services.members import Caller
from node.web.keys import CALL_SCHEDULER, CLOCK, COALITIONS, SESSIONS, SIGNER
from node.web.pages import call_forms
from node.web.pages.calls import WORDS, call_response, in_language, may_issue
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import LARGE_FORM, Form
from node.web.pages.i18n import N_
from node.web.pages.labels import LABELS
from node.web.pages.messages import Msg
from node.web.pages.routes import PageRoute, path_id, query

__all__ = ["ROUTES", "Audience", "audience_choices"]


class Audience(NamedTuple):
    """One choice of who a new call goes to: ``allies``, ``public``, or ``coalition:<id>``
    with the coalition's ``name`` (text, language) to show."""

    value: str
    text: str
    name: tuple[str, str] | None = None


async def audience_choices(request: web.Request) -> list[Audience]:
    """Who a new call may go to: allies, everyone, and each coalition this node is a member
    of, named in the reader's language (node.services.calls refuses any other)."""
    lang = state_of(request).lang
    names = WORDS["audience"]
    fixed = [Audience(value, lang.gettext(names[value])) for value in AUDIENCES]
    coalitions = [
        Audience(item["audience"], "", in_language(item["name"], lang.code))
        for item in await request.app[COALITIONS].list()
        if item["standing"] == "member"
    ]
    return fixed + coalitions


def _refuse(form: Form, exc: NodeError) -> None:
    form.refuse(exc)
    if exc.code == "not_allowed":
        form.alert = Msg(N_("The governance policy gives this to others."))


async def _issuer(request: web.Request) -> Caller:
    caller = require(request)
    if not await may_issue(request, caller):
        raise forbidden("forbidden", "the governance policy does not let you issue calls")
    return caller


# --- a new call ------------------------------------------------------------------------------


def _kinds(request: web.Request) -> list[tuple[str, str]]:
    names = LABELS["call_kind"]
    return [(kind, state_of(request).lang.gettext(names[kind])) for kind in call_forms.KINDS]


async def _new_page(request: web.Request, form: Form, status: int = 200) -> web.Response:
    return render(
        request, "call_new.html", status=status, form=form, kinds=_kinds(request),
        audiences=await audience_choices(request), hints=call_forms.HINTS,
    )  # fmt: skip


async def new_call_page(request: web.Request) -> web.Response:
    query(request, ())
    await _issuer(request)
    return await _new_page(request, Form(values={"kind": "strike", "audience": "allies"}))


async def create_call(request: web.Request) -> web.Response:
    caller = await _issuer(request)
    raw, form = await submitted(request, call_forms.NEW_FIELDS, limit=LARGE_FORM)
    app, now = request.app, request.app[CLOCK].now()
    audiences = [choice.value for choice in await audience_choices(request)]
    draft = call_forms.draft(raw, form, audiences, now)
    if draft is None:
        return await _new_page(request, form, 400)
    try:
        number = await issue_call(app[SESSIONS], app[SIGNER], draft, by=caller.member_id, now=now)
    except NodeError as exc:
        _refuse(form, exc)
        return await _new_page(request, form, exc.status)
    app[CALL_SCHEDULER].wake()
    return redirect(f"/calls/{number}?notice=call_issued")


# --- amending ------------------------------------------------------------------------------


async def _changeable(request: web.Request, number: int) -> tuple[Caller, dict[str, Any]]:
    """The reader, if they may amend the call, and the call's detail."""
    caller = require(request)
    detail = await call_views.call_detail(
        request.app[SESSIONS], number, caller.member_id, admin=False
    )
    if not detail["own"]:
        raise CallError(Code.NOT_ISSUER, "only the issuing node may change its call")
    if not await may_issue(request, caller):
        raise forbidden("forbidden", "the governance policy does not let you change calls")
    if detail["state"] not in ("open", "activated"):
        raise CallError(Code.CALL_CLOSED, f"the call is {detail['state']}")
    return caller, detail


def _amend_page(
    request: web.Request, number: int, detail: Mapping[str, Any], form: Form, status: int = 200
) -> web.Response:
    title = in_language(detail["title"], state_of(request).lang.code)
    return render(
        request, "call_amend.html", status=status, form=form, number=number, title=title,
        hints=call_forms.HINTS,
    )  # fmt: skip


async def amend_page(request: web.Request) -> web.Response:
    query(request, ())
    number = path_id(request, "call", "call")
    _, detail = await _changeable(request, number)
    return _amend_page(request, number, detail, Form(values=call_forms.current_values(detail)))


async def amend(request: web.Request) -> web.Response:
    number = path_id(request, "call", "call")
    raw, form = await submitted(request, call_forms.CHANGEABLE, limit=LARGE_FORM)
    caller, detail = await _changeable(request, number)
    changes = call_forms.changes(raw, form, detail)
    if form.ok and not changes:
        form.alert = Msg(N_("Nothing was changed."))
    if not form.ok:
        return _amend_page(request, number, detail, form, 400)
    app = request.app
    try:
        await amend_call(
            app[SESSIONS], app[SIGNER], number, changes, by=caller.member_id,
            now=app[CLOCK].now(),
        )  # fmt: skip
    except NodeError as exc:
        _refuse(form, exc)
        return _amend_page(request, number, detail, form, exc.status)
    return redirect(f"/calls/{number}?notice=call_amended")


# --- acting from the call's page -------------------------------------------------------------


async def _act(request: web.Request, name: str, fields: tuple[str, ...], act: Any) -> web.Response:
    """Read the form ``name`` of the call page and run ``act(raw, form, caller, number)``:
    the notice to show on the call's page, or None when the form is wrong (shown again with
    its messages, as a service's refusal is)."""
    number = path_id(request, "call", "call")
    caller = require(request)
    raw, form = await submitted(request, fields, limit=LARGE_FORM)
    try:
        done = await act(raw, form, caller, number)
    except NodeError as exc:
        _refuse(form, exc)
        return await call_response(request, number, forms={name: form}, status=exc.status)
    if done is None:
        return await call_response(request, number, forms={name: form}, status=400)
    request.app[CALL_SCHEDULER].wake()
    return redirect(f"/calls/{number}?notice={done}")


async def post_update(request: web.Request) -> web.Response:
    async def act(raw: Mapping[str, str], form: Form, caller: Caller, number: int) -> Any:
        text = call_forms.texts(raw, form, "news", required=True)
        if not form.ok:
            return None
        app = request.app
        await update_call(app[SESSIONS], app[SIGNER], number, text, by=caller.member_id,
                          now=app[CLOCK].now())  # fmt: skip
        return "update_posted"

    return await _act(request, "update", call_forms.names("news"), act)


async def cancel(request: web.Request) -> web.Response:
    async def act(raw: Mapping[str, str], form: Form, caller: Caller, number: int) -> Any:
        reason = call_forms.optional_texts(raw, form, "reason")
        if raw.get("confirm") != "yes":
            form.fail("confirm", Msg(N_("Tick the box to confirm that you cancel the call.")))
        if not form.ok:
            return None
        app = request.app
        await cancel_call(app[SESSIONS], app[SIGNER], number, reason, by=caller.member_id,
                          now=app[CLOCK].now())  # fmt: skip
        return "call_cancelled"

    return await _act(request, "cancel", (*call_forms.names("reason"), "confirm"), act)


async def conclude(request: web.Request) -> web.Response:
    async def act(raw: Mapping[str, str], form: Form, caller: Caller, number: int) -> Any:
        outcome = form.choice(raw, "outcome", call_forms.OUTCOMES)
        text = call_forms.optional_texts(raw, form, "closing")
        if not form.ok or outcome is None:
            return None
        app = request.app
        await conclude_call(app[SESSIONS], app[SIGNER], number, outcome, text,
                            by=caller.member_id, now=app[CLOCK].now())  # fmt: skip
        return "call_concluded"

    return await _act(request, "conclude", (*call_forms.names("closing"), "outcome"), act)


async def decide_call(request: web.Request) -> web.Response:
    async def act(raw: Mapping[str, str], form: Form, caller: Caller, number: int) -> Any:
        join = form.choice(raw, "join", ("yes", "no"))
        note = call_forms.optional_texts(raw, form, "note")
        if not form.ok or join is None:
            return None
        app = request.app
        await decide(app[SESSIONS], app[SIGNER], number, join == "yes", note,
                     by=caller.member_id, now=app[CLOCK].now())  # fmt: skip
        return "call_joined" if join == "yes" else "call_declined"

    return await _act(request, "decide", (*call_forms.names("note"), "join"), act)


ROUTES: Final = (
    PageRoute("GET", "/calls/new", new_call_page, "call-new"),
    PageRoute("POST", "/calls/new", create_call, "call-create"),
    PageRoute("GET", "/calls/{call}/amend", amend_page, "call-amend"),
    PageRoute("POST", "/calls/{call}/amend", amend, "call-amend-save"),
    PageRoute("POST", "/calls/{call}/update", post_update, "call-update"),
    PageRoute("POST", "/calls/{call}/cancel", cancel, "call-cancel"),
    PageRoute("POST", "/calls/{call}/conclude", conclude, "call-conclude"),
    PageRoute("POST", "/calls/{call}/decide", decide_call, "call-decide"),
)
