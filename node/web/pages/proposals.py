"""Pages of internal decisions: the dashboard, the list of proposals, one proposal (vote or
change the vote; its result once closed), and creating one (organisers and admins)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from node.errors import NodeError, not_found
from node.services import decisions
from node.services.counting import ABSTAIN, BLOCK, METHODS, Choice
from node.web.keys import ADMINISTRATION, BALLOT_KEYS, CLOCK, POLICY, SESSIONS
from node.web.pages.calls import open_calls
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import LARGE_FORM, Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, notice
from node.web.pages.routes import PageRoute, query
from node.web.pages.views import PUBLIC_ID, proposal_of, result_of
from node.web.schema import integer, string

__all__ = ["ROUTES"]

PAGE_SIZE: Final = 20
MAX_PAGES: Final = 25  # the decisions service lists at most 500 proposals
DASHBOARD_SIZE: Final = 10
LISTS: Final = {"open": ("scheduled", "open"), "closed": ("closed", "cancelled"), "all": ()}
FRACTIONS: Final = ("3/5", "2/3", "3/4", "4/5")
LOCAL_TIME: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
NEW_FIELDS: Final = (
    "title", "body", "options", "method", "fraction", "quorum", "ballot", "opens", "hours",
)  # fmt: skip
TITLE: Final = string(min_length=1, max_length=decisions.MAX_TITLE)
BODY: Final = string(required=False, max_length=decisions.MAX_BODY, multiline=True)
OPTIONS: Final = string(max_length=decisions.MAX_OPTIONS * (decisions.MAX_LABEL + 2),
                        multiline=True)  # fmt: skip
QUORUM: Final = integer(minimum=0, maximum=100)
HOURS: Final = integer(minimum=1, maximum=decisions.MAX_WINDOW // 3600)


def _fractions(request: web.Request) -> list[tuple[str, str]]:
    """The supermajority shares to choose from, as (form value, shown text)."""
    lang = state_of(request).lang
    out = []
    for value in FRACTIONS:
        num, den = (int(n) for n in value.split("/"))
        out.append((value, f"{lang.percent(num, den)} ({lang.number(num)}/{lang.number(den)})"))
    return out


def _public_id(request: web.Request) -> bytes:
    raw = request.match_info["proposal"]
    if not re.fullmatch(PUBLIC_ID, raw):
        raise not_found("proposal")
    return bytes.fromhex(raw)


# --- the dashboard -------------------------------------------------------------------------


async def dashboard(request: web.Request) -> web.Response:
    args = query(request, ("notice",))
    caller = require(request)
    app, now = request.app, request.app[CLOCK].now()
    views = await decisions.list_proposals(app[SESSIONS], LISTS["open"], DASHBOARD_SIZE)
    live = []
    for view in views:
        vote = await decisions.my_vote(
            app[SESSIONS], app[BALLOT_KEYS], view.public_id, caller.member_id
        )
        live.append(proposal_of(view, now, vote))
    pending = None
    if caller.role == "admin":
        pending = await app[ADMINISTRATION].members(None, DASHBOARD_SIZE, status="pending")
    return render(
        request, "dashboard.html", proposals=live, pending=pending,
        notice=notice(args.get("notice")), calls=await open_calls(request),
    )  # fmt: skip


# --- lists and one proposal ----------------------------------------------------------------


async def proposal_list(request: web.Request) -> web.Response:
    args = query(request, ("show", "page"))
    require(request)
    show = args.get("show", "open")
    page = args.get("page", "1")
    if show not in LISTS or not re.fullmatch(r"[1-9][0-9]?", page) or int(page) > MAX_PAGES:
        raise NodeError(400, "invalid_form", "unknown list or page")
    number = int(page)
    app, now = request.app, request.app[CLOCK].now()
    views = await decisions.list_proposals(app[SESSIONS], LISTS[show], number * PAGE_SIZE + 1)
    shown = views[(number - 1) * PAGE_SIZE : number * PAGE_SIZE]
    more = len(views) > number * PAGE_SIZE and number < MAX_PAGES
    return render(
        request, "proposals.html", proposals=[proposal_of(v, now) for v in shown], show=show,
        page=number, more=more,
    )  # fmt: skip


async def _proposal_page(
    request: web.Request, public_id: bytes, *, form: Form | None = None, status: int = 200,
    note: Msg | None = None,
) -> web.Response:  # fmt: skip
    caller = require(request)
    app = request.app
    view = await decisions.get_proposal(app[SESSIONS], public_id)
    vote = await decisions.my_vote(app[SESSIONS], app[BALLOT_KEYS], public_id, caller.member_id)
    voters = len(await decisions.list_voters(app[SESSIONS], public_id))
    return render(
        request, "proposal.html", status=status, p=proposal_of(view, app[CLOCK].now(), vote),
        result=result_of(view.result), voters=voters, form=form or Form(), notice=note,
        here=f"/proposals/{public_id.hex()}",
    )  # fmt: skip


async def proposal_page(request: web.Request) -> web.Response:
    args = query(request, ("notice",))
    return await _proposal_page(request, _public_id(request), note=notice(args.get("notice")))


def _choice(raw: dict[str, str]) -> Choice | None:
    value = raw.get("choice", "")
    if value in (ABSTAIN, BLOCK):
        return value  # type: ignore[return-value]
    return int(value) if re.fullmatch(r"[0-9]{1,2}", value) else None


async def vote(request: web.Request) -> web.Response:
    public_id = _public_id(request)
    caller = require(request)
    raw, form = await submitted(request, ("choice",))
    choice = _choice(raw)
    if choice is None:
        form.fail("choice", Msg(N_("Choose one of the options.")))
        return await _proposal_page(request, public_id, form=form, status=400)
    app = request.app
    try:
        await decisions.cast_vote(
            app[SESSIONS], app[BALLOT_KEYS], public_id, caller.member_id, choice,
            now=app[CLOCK].now(),
        )  # fmt: skip
    except NodeError as exc:
        form.refuse(exc)
        return await _proposal_page(request, public_id, form=form, status=exc.status)
    return redirect(f"/proposals/{public_id.hex()}?notice=vote_saved")


# --- a new proposal ------------------------------------------------------------------------


async def _defaults(request: web.Request) -> dict[str, str]:
    """The form's starting values: the governance policy's vote rule."""
    rule = (await request.app[POLICY].get())["vote"]
    fraction = rule["fraction"]
    quorum = rule["quorum"]
    return {
        "method": rule["method"],
        "fraction": f"{fraction['num']}/{fraction['den']}" if fraction else "2/3",
        "quorum": str(round(100 * quorum["num"] / quorum["den"])),
        "hours": str(rule["hours"]),
        "ballot": "secret",
    }


async def new_proposal_page(request: web.Request) -> web.Response:
    query(request, ())
    require(request, "organiser")
    form = Form(values=await _defaults(request))
    return render(request, "proposal_new.html", form=form, fractions=_fractions(request))


def _opens(raw: dict[str, str], form: Form, now: int) -> int | None:
    value = raw.get("opens", "").strip()
    if not value:
        return now
    if LOCAL_TIME.fullmatch(value):
        try:
            moment = datetime.strptime(value, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
        except ValueError:
            moment = None
        if moment is not None:
            return max(int(moment.timestamp()), now)
    form.fail("opens", Msg(N_("Enter a date and time, or leave it empty to open now.")))
    return None


def _draft(raw: dict[str, str], form: Form, now: int) -> decisions.Draft | None:
    title = form.text(raw, "title", TITLE)
    body = form.text(raw, "body", BODY) or ""
    text = form.text(raw, "options", OPTIONS) or ""
    options = [line.strip() for line in text.splitlines() if line.strip()]
    method = form.choice(raw, "method", sorted(METHODS))
    fraction = form.choice(raw, "fraction", FRACTIONS) if method == "supermajority" else None
    quorum = form.text(raw, "quorum", QUORUM)
    ballot = form.choice(raw, "ballot", ("open", "secret"))
    opens, hours = _opens(raw, form, now), form.text(raw, "hours", HOURS)
    if not form.ok or None in (title, method, quorum, ballot, opens, hours):
        return None
    share = None if fraction is None else tuple(int(n) for n in fraction.split("/"))
    return decisions.Draft(
        title=title, body=body, options=options, method=str(method), quorum=(quorum, 100),
        ballot=str(ballot), opens_at=opens or now, closes_at=(opens or now) + hours * 3600,
        fraction=share,  # type: ignore[arg-type]
    )  # fmt: skip


async def create_proposal(request: web.Request) -> web.Response:
    caller = require(request, "organiser")
    raw, form = await submitted(request, NEW_FIELDS, limit=LARGE_FORM)
    now = request.app[CLOCK].now()
    draft = _draft(raw, form, now)
    context: dict[str, Any] = {"form": form, "fractions": _fractions(request)}
    if draft is None:
        return render(request, "proposal_new.html", status=400, **context)
    try:
        created = await decisions.create_proposal(
            request.app[SESSIONS], draft, by=caller.member_id, now=now
        )
    except NodeError as exc:
        form.refuse(exc)
        return render(request, "proposal_new.html", status=exc.status, **context)
    return redirect(f"/proposals/{created.public_id.hex()}?notice=proposal_created")


ROUTES: Final = (
    PageRoute("GET", "/", dashboard, "dashboard"),
    PageRoute("GET", "/proposals", proposal_list, "proposals"),
    PageRoute("GET", "/proposals/new", new_proposal_page, "proposal-new"),
    PageRoute("POST", "/proposals/new", create_proposal, "proposal-create"),
    PageRoute("GET", "/proposals/{proposal}", proposal_page, "proposal"),
    PageRoute("POST", "/proposals/{proposal}/vote", vote, "vote"),
)
