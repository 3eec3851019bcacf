"""The member pages of calls to action: the list of calls this node holds (open or past),
open calls on the dashboard with their progress, one call (its text in the reader's
language, the issuer's news, each organisation's decision and how it was made, the latest
tallies, state) with the pledge form, and the member's notifications. Thin: the rules are
in node.services.pledges; what is shown comes from node.services.call_views.

The call page also carries the coordinators' forms (node.web.pages.coordinate handles
them): :class:`Powers` says which the reader gets, as the governance policy says."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from node.errors import NodeError
from node.services import call_views, pledges
from node.services.call_votes import DECIDER_ROLES
from node.services.calls import ISSUERS
from node.services.members import Caller
from node.storage.calls import LIVE_STATES
from node.web.keys import CALL_SCHEDULER, CLOCK, COALITIONS, POLICY, SESSIONS, TALLY_RULES
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, notice
from node.web.pages.routes import PageRoute, cursor, path_id, query
from protocol import coalition_of, fingerprint

__all__ = [
    "ROUTES", "WORDS", "CallView", "Powers", "call_response", "in_language", "may_issue",
    "open_calls",
]  # fmt: skip

DASHBOARD_CALLS: Final = 5
LIST_PAGE: Final = 20
NOTIFICATIONS_PAGE: Final = 20
FALLBACK: Final = ("ar", "ckb", "en")
LIVE: Final = frozenset(LIVE_STATES)
JOINED: Final = frozenset({"own", "endorsed"})
LISTS: Final = {"open": LIVE_STATES, "past": ("cancelled", "concluded", "void")}
# Names of the calls' own values, shown as t(words[kind][value]) (labels.LABELS has the
# kinds, states and verdicts).
WORDS: Final[Mapping[str, Mapping[str, str]]] = {
    "stance": {
        "own": N_("this organisation issued it"),
        "undecided": N_("not decided yet"),
        "voting": N_("the members are voting on it"),
        "endorsed": N_("joined"),
        "declined": N_("declined"),
    },
    "audience": {"allies": N_("allied organisations"), "public": N_("everyone")},
    "conclusion": {
        "held": N_("it took place"),
        "partial": N_("it took place in part"),
        "called_off": N_("it was called off"),
    },
}


def in_language(texts: Mapping[str, str], code: str) -> tuple[str, str]:
    """A text in the reader's language, else in another one the call has: (text, language)."""
    for choice in (code, *FALLBACK, *sorted(texts)):
        if texts.get(choice):
            return texts[choice], choice
    return "", code


@dataclass(frozen=True, slots=True)
class CallView:
    """A call as the pages show it, from the calls service's detail."""

    detail: Mapping[str, Any]
    lang: str
    now: int

    @property
    def id(self) -> int:
        return int(self.detail["id"])

    @property
    def title(self) -> tuple[str, str]:
        return in_language(self.detail["title"], self.lang)

    @property
    def text(self) -> tuple[str, str]:
        return in_language(self.detail["text"], self.lang)

    @property
    def threshold(self) -> Mapping[str, int] | None:
        return self.detail["threshold"]  # type: ignore[no-any-return]

    @property
    def pledged(self) -> int:
        done = self.detail["progress"]
        return 0 if done is None else int(done["pledges"])

    @property
    def orgs(self) -> int:
        done = self.detail["progress"]
        return 0 if done is None else int(done["orgs"])

    @property
    def pledges_until(self) -> int | None:
        """Until when pledges are taken (as node.services.pledges decides)."""
        threshold = self.threshold
        return threshold["deadline"] if threshold else self.detail["starts"]

    @property
    def time_left(self) -> int | None:
        until = self.pledges_until
        return None if until is None else max(until - self.now, 0)

    @property
    def joined(self) -> bool:
        return self.detail["stance"] in JOINED

    @property
    def pledging(self) -> bool:
        """Whether the pledge form is offered."""
        left = self.time_left
        return self.detail["state"] in LIVE and self.joined and left != 0

    @property
    def endorsements(self) -> list[Mapping[str, Any]]:
        return list(self.detail["endorsements"])

    @property
    def issuer(self) -> str:
        return str(self.detail["origin_name"] or self.detail["origin"][:16])

    @property
    def issuer_fingerprint(self) -> str | None:
        """Another node's fingerprint (a peer may give itself any name, even this node's or
        another ally's); None for this node's own calls."""
        if self.detail["own"]:
            return None
        return fingerprint(bytes.fromhex(self.detail["origin"]))

    @property
    def note(self) -> tuple[str, str]:
        """The cancel reason or the closing word, in the reader's language."""
        return in_language(self.detail["note"] or {}, self.lang)

    def shown(self, texts: Mapping[str, str]) -> tuple[str, str]:
        """Any of the call's multilingual texts (news, notes) in the reader's language."""
        return in_language(texts, self.lang)


@dataclass(frozen=True, slots=True)
class Powers:
    """What the reader may do to a call besides pledging, as the governance policy says:
    ``change`` (amend, cancel, conclude), ``update`` (post news) on this node's own calls;
    ``decide`` whether the organisation joins another node's call."""

    change: bool = False
    update: bool = False
    decide: bool = False


async def may_issue(request: web.Request, caller: Caller) -> bool:
    """Whether the policy's ``call_issuers`` lets the reader issue (and act on) calls."""
    policy = await request.app[POLICY].get()
    return caller.role in ISSUERS[policy["call_issuers"]]


async def powers_of(request: web.Request, caller: Caller, view: CallView) -> Powers:
    policy = await request.app[POLICY].get()
    detail = view.detail
    if detail["own"]:
        coordinator = caller.role in ISSUERS[policy["call_issuers"]]
        return Powers(
            change=coordinator and detail["state"] in LIVE,
            update=coordinator and detail["state"] != "concluded",
        )
    deciders = DECIDER_ROLES.get(policy["endorsement_by"], frozenset())
    live = detail["state"] in LIVE and detail["stance"] == "undecided"
    return Powers(decide=live and caller.role in deciders)


def _name(entry: Mapping[str, Any]) -> str:
    return str(entry.get("name") or entry["origin"][:16])


async def _view(request: web.Request, number: int) -> CallView:
    caller = require(request)
    detail = await call_views.call_detail(
        request.app[SESSIONS], number, caller.member_id, admin=False
    )
    return CallView(detail, state_of(request).lang.code, request.app[CLOCK].now())


async def _views(request: web.Request, page: Any) -> list[CallView]:
    return [await _view(request, int(item["id"])) for item in page.items]


async def open_calls(request: web.Request) -> list[CallView]:
    """The newest open calls, for the dashboard."""
    page = await call_views.call_page(
        request.app[SESSIONS], state="open", call=None, own=None, before=None,
        limit=DASHBOARD_CALLS,
    )  # fmt: skip
    return await _views(request, page)


# --- the list ------------------------------------------------------------------------------


async def call_list(request: web.Request) -> web.Response:
    args = query(request, ("show", "before"))
    caller = require(request)
    show = args.get("show", "open")
    if show not in LISTS:
        raise NodeError(400, "invalid_form", "unknown list")
    before = cursor(args.get("before"))
    page = await call_views.call_page(
        request.app[SESSIONS], state=None, call=None, own=None, before=before,
        limit=LIST_PAGE, states=LISTS[show],
    )  # fmt: skip
    after = None if page.after is None else f"/calls?show={show}&before={page.after}"
    return render(
        request, "calls.html", calls=await _views(request, page), show=show,
        next_link=after, first_link=None if before is None else f"/calls?show={show}",
        may_issue=await may_issue(request, caller), words=WORDS,
    )  # fmt: skip


# --- one call and the pledge form ----------------------------------------------------------


async def _coalition(request: web.Request, audience: str) -> tuple[str, str] | None:
    """The name of the coalition a call is addressed to, if this node knows it (SPEC §15)."""
    if coalition_of(audience) is None:
        return None
    known = [c for c in await request.app[COALITIONS].list() if c["audience"] == audience]
    return in_language(known[0]["name"], state_of(request).lang.code) if known else None


async def call_response(
    request: web.Request, number: int, *, forms: Mapping[str, Form] | None = None,
    status: int = 200, note: Msg | None = None,
) -> web.Response:  # fmt: skip
    """The call page; ``forms`` are the states of its forms by name (``pledge``, ``update``,
    ``cancel``, ``conclude``, ``decide``), e.g. one that was just refused."""
    caller = require(request)
    view = await _view(request, number)
    shown = {name: Form() for name in ("pledge", "update", "cancel", "conclude", "decide")}
    return render(
        request, "call.html", status=status, c=view, forms=shown | dict(forms or {}),
        form=(forms or {}).get("pledge") or shown["pledge"], notice=note, name_of=_name,
        may=await powers_of(request, caller, view), words=WORDS,
        coalition=await _coalition(request, view.detail["audience"]),
    )  # fmt: skip


async def _call_page(
    request: web.Request, number: int, *, form: Form | None = None, status: int = 200,
    note: Msg | None = None,
) -> web.Response:  # fmt: skip
    forms = {} if form is None else {"pledge": form}
    return await call_response(request, number, forms=forms, status=status, note=note)


async def call_page(request: web.Request) -> web.Response:
    args = query(request, ("notice",))
    number = path_id(request, "call", "call")
    return await _call_page(request, number, note=notice(args.get("notice")))


async def pledge(request: web.Request) -> web.Response:
    number = path_id(request, "call", "call")
    caller = require(request)
    raw, form = await submitted(request, ("kind",))
    kind = form.choice(raw, "kind", pledges.KINDS)
    if kind is None:
        return await _call_page(request, number, form=form, status=400)
    app = request.app
    try:
        await pledges.pledge(
            app[SESSIONS], app[TALLY_RULES], number, caller.member_id, kind,
            now=app[CLOCK].now(),
        )  # fmt: skip
    except NodeError as exc:
        form.refuse(exc)
        return await _call_page(request, number, form=form, status=exc.status)
    app[CALL_SCHEDULER].wake()
    return redirect(f"/calls/{number}?notice=pledged")


async def withdraw(request: web.Request) -> web.Response:
    number = path_id(request, "call", "call")
    caller = require(request)
    _, form = await submitted(request, ())
    app = request.app
    try:
        await pledges.withdraw(
            app[SESSIONS], app[TALLY_RULES], number, caller.member_id, now=app[CLOCK].now()
        )
    except NodeError as exc:
        form.refuse(exc)
        return await _call_page(request, number, form=form, status=exc.status)
    app[CALL_SCHEDULER].wake()
    return redirect(f"/calls/{number}?notice=pledge_withdrawn")


# --- notifications -------------------------------------------------------------------------

NOTE_KINDS: Final = {
    "activated": N_("The call reached its threshold and is activated."),
    "cancelled": N_("The call was cancelled."),
    "amended": N_("The call was changed."),
    "void": N_("The call did not reach its threshold in time; conditional pledges are deleted."),
}


async def notification_list(request: web.Request) -> web.Response:
    args = query(request, ("before", "notice"))
    caller = require(request)
    page = await pledges.notification_page(
        request.app[SESSIONS], caller.member_id, cursor(args.get("before")), NOTIFICATIONS_PAGE
    )
    code = state_of(request).lang.code
    items = [item | {"shown": in_language(item["title"], code)} for item in page.items]
    return render(
        request, "notifications.html", items=items, after=page.after, kinds=NOTE_KINDS,
        notice=notice(args.get("notice")), first=args.get("before") is not None,
    )  # fmt: skip


async def read_one(request: web.Request) -> web.Response:
    number = path_id(request, "notification", "notification")
    caller = require(request)
    await submitted(request, ())
    await pledges.read_notifications(
        request.app[SESSIONS], caller.member_id, [number], now=request.app[CLOCK].now()
    )
    return redirect("/notifications")


async def read_all(request: web.Request) -> web.Response:
    caller = require(request)
    await submitted(request, ())
    await pledges.read_all(request.app[SESSIONS], caller.member_id, now=request.app[CLOCK].now())
    return redirect("/notifications?notice=all_read")


ROUTES: Final = (
    PageRoute("GET", "/calls", call_list, "calls"),
    PageRoute("GET", "/calls/{call}", call_page, "call"),
    PageRoute("POST", "/calls/{call}/pledge", pledge, "pledge"),
    PageRoute("POST", "/calls/{call}/withdraw", withdraw, "withdraw"),
    PageRoute("GET", "/notifications", notification_list, "notifications"),
    PageRoute("POST", "/notifications/read", read_all, "notifications-read"),
    PageRoute("POST", "/notifications/{notification}/read", read_one, "notification-read"),
)
