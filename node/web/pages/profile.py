"""A member's own profile: details and language, password, the export of their data as a
JSON download, and leaving."""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from node.errors import NodeError
from node.services.members import LANGUAGES
from node.web.auth import clear_session_cookie
from node.web.keys import PROFILES
from node.web.member_schemas import CONTACT, PROFILE_CHANGE
from node.web.pages.core import redirect, render, require, state_of, submitted
from node.web.pages.forms import Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, notice
from node.web.pages.routes import PageRoute, query
from node.web.pages.security import LANG_COOKIE

__all__ = ["ROUTES"]

DETAIL_FIELDS: Final = ("real_name", "language", "phone", "email")
PASSWORD_FIELDS: Final = ("current_password", "password", "password_again")


def _details(profile: dict[str, Any]) -> Form:
    contact = profile.get("contact") or {}
    return Form(values={
        "real_name": profile.get("real_name") or "",
        "language": profile["language"],
        "phone": contact.get("phone") or "",
        "email": contact.get("email") or "",
    })  # fmt: skip


def _page(
    request: web.Request, *, details: Form | None = None, password: Form | None = None,
    leave: Form | None = None, status: int = 200, note: Msg | None = None,
) -> web.Response:  # fmt: skip
    profile = state_of(request).profile or {}
    return render(
        request, "profile.html", status=status, details=details or _details(profile),
        password=password or Form(), leave=leave or Form(), notice=note, here="/profile",
    )  # fmt: skip


async def profile_page(request: web.Request) -> web.Response:
    args = query(request, ("notice",))
    require(request)
    return _page(request, note=notice(args.get("notice")))


async def save_details(request: web.Request) -> web.Response:
    caller = require(request)
    raw, form = await submitted(request, DETAIL_FIELDS)
    fields = PROFILE_CHANGE.fields
    real_name = form.text(raw, "real_name", fields["real_name"])
    language = form.choice(raw, "language", LANGUAGES)
    contact = {n: form.text(raw, n, CONTACT.fields[n], key=n) for n in ("phone", "email")}
    if not form.ok:
        return _page(request, details=form, status=400)
    changes = {"real_name": real_name, "language": language, "contact": contact}
    try:
        await request.app[PROFILES].update(caller, changes)
    except NodeError as exc:
        form.refuse(exc)
        return _page(request, details=form, status=exc.status)
    state_of(request).cookies[LANG_COOKIE] = str(language)
    return redirect("/profile?notice=saved")


async def change_password(request: web.Request) -> web.Response:
    caller = require(request)
    raw, form = await submitted(request, PASSWORD_FIELDS)
    fields = PROFILE_CHANGE.fields
    current = form.text(raw, "current_password", fields["current_password"])
    new = form.text(raw, "password", fields["password"])
    if new is not None and raw.get("password_again") != raw.get("password"):
        form.fail("password_again", Msg(N_("The two passwords are not the same.")))
    if not form.ok:
        return _page(request, password=form, status=400)
    try:
        await request.app[PROFILES].update(caller, {"current_password": current, "password": new})
    except NodeError as exc:
        form.refuse(exc)
        return _page(request, password=form, status=exc.status)
    return redirect("/profile?notice=password_changed")


async def export(request: web.Request) -> web.Response:
    query(request, ())
    data = await request.app[PROFILES].export(require(request))
    body = json.dumps(data, ensure_ascii=False, indent=2)
    response = web.Response(text=body, content_type="application/json")
    response.headers["Content-Disposition"] = 'attachment; filename="tadamun-my-data.json"'
    return response


async def leave(request: web.Request) -> web.Response:
    caller = require(request)
    raw, form = await submitted(request, ("confirm",))
    if raw.get("confirm") != "yes":
        form.fail("confirm", Msg(N_("Tick the box to confirm that you want to leave.")))
        return _page(request, leave=form, status=400)
    try:
        await request.app[PROFILES].leave(caller)
    except NodeError as exc:
        form.refuse(exc)
        return _page(request, leave=form, status=exc.status)
    response = redirect("/login?notice=left")
    clear_session_cookie(request, response)
    return response


ROUTES: Final = (
    PageRoute("GET", "/profile", profile_page, "profile"),
    PageRoute("POST", "/profile", save_details, "profile-save"),
    PageRoute("POST", "/profile/password", change_password, "password"),
    PageRoute("GET", "/profile/export", export, "export"),
    PageRoute("POST", "/profile/leave", leave, "leave"),
)
