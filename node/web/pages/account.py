"""Pages for getting in and out: join through an invite link, log in, log out, and the
language switcher."""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from node.errors import NodeError
from node.services.members import LANGUAGES
from node.web.auth import SESSION_COOKIE, clear_session_cookie, set_session_cookie
from node.web.keys import ACCOUNTS, PROFILES
from node.web.member_schemas import CONTACT, LOGIN, REGISTRATION
from node.web.pages.core import (
    redirect,
    render,
    require,
    safe_next,
    state_of,
    submitted,
    use_language,
)
from node.web.pages.forms import Form
from node.web.pages.i18n import N_
from node.web.pages.messages import Msg, notice
from node.web.pages.routes import PageRoute, query
from node.web.pages.security import LANG_COOKIE

__all__ = ["ROUTES"]

INVITE_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
JOIN_FIELDS: Final = (
    "pseudonym", "password", "password_again", "real_name", "language", "phone", "email",
)  # fmt: skip


# --- log in and out ------------------------------------------------------------------------


async def login_page(request: web.Request) -> web.Response:
    args = query(request, ("next", "notice"))
    if state_of(request).caller is not None:
        return redirect(safe_next(args.get("next")))
    form = Form(values={"next": safe_next(args.get("next"))})
    return render(request, "login.html", form=form, notice=notice(args.get("notice")))


async def login(request: web.Request) -> web.Response:
    raw, form = await submitted(request, ("pseudonym", "password", "next"))
    pseudonym = form.text(raw, "pseudonym", LOGIN.fields["pseudonym"])
    password = form.text(raw, "password", LOGIN.fields["password"])
    if not form.ok or pseudonym is None or password is None:
        return render(request, "login.html", status=400, form=form, notice=None)
    try:
        token, max_age, profile = await request.app[ACCOUNTS].login(pseudonym, password)
    except NodeError as exc:
        form.refuse(exc)
        page = render(request, "login.html", status=exc.status, form=form, notice=None)
        if exc.retry_after:
            page.headers["Retry-After"] = str(exc.retry_after)
        return page
    response = redirect(safe_next(raw.get("next")))
    set_session_cookie(request, response, token, max_age)
    state_of(request).cookies[LANG_COOKIE] = profile["language"]
    return response


async def logout(request: web.Request) -> web.Response:
    await submitted(request, ())
    if token := request.cookies.get(SESSION_COOKIE):
        await request.app[ACCOUNTS].logout(token)
    response = redirect("/login?notice=logged_out")
    clear_session_cookie(request, response)
    return response


# --- joining -------------------------------------------------------------------------------


def _invite(request: web.Request) -> str:
    token = request.match_info["token"]
    if not INVITE_TOKEN.fullmatch(token):
        raise NodeError(400, "invalid_invite", "this invite link is not valid")
    return token


async def join_page(request: web.Request) -> web.Response:
    _invite(request)
    query(request, ())
    form = Form(values={"language": state_of(request).lang.code})
    return render(request, "join.html", form=form)


def _registration(raw: dict[str, str], form: Form, invite: str) -> dict[str, Any]:
    fields = REGISTRATION.fields
    body: dict[str, Any] = {"invite": invite}
    for name in ("pseudonym", "password", "real_name"):
        body[name] = form.text(raw, name, fields[name])
    body["language"] = form.choice(raw, "language", LANGUAGES)
    contact = {
        name: form.text(raw, name, CONTACT.fields[name], key=name) for name in ("phone", "email")
    }
    body["contact"] = {name: value for name, value in contact.items() if value}
    if body["password"] is not None and raw.get("password_again") != raw.get("password"):
        form.fail("password_again", Msg(N_("The two passwords are not the same.")))
    return {name: value for name, value in body.items() if value is not None}


async def join(request: web.Request) -> web.Response:
    invite = _invite(request)
    raw, form = await submitted(request, JOIN_FIELDS)
    body = _registration(raw, form, invite)
    if not form.ok:
        return render(request, "join.html", status=400, form=form)
    try:
        member = await request.app[ACCOUNTS].register(body)
    except NodeError as exc:
        form.refuse(exc)
        return render(request, "join.html", status=exc.status, form=form)
    state_of(request).cookies[LANG_COOKIE] = member["language"]
    if member["status"] != "active":  # waits for approval: it cannot log in yet
        use_language(request, member["language"])
        return render(request, "joined.html", status=201, member=member)
    token, max_age, _ = await request.app[ACCOUNTS].login(body["pseudonym"], body["password"])
    response = redirect("/?notice=welcome")
    set_session_cookie(request, response, token, max_age)
    return response


# --- language ------------------------------------------------------------------------------


async def switch_language(request: web.Request) -> web.Response:
    raw, _ = await submitted(request, ("language", "next"))
    language = raw.get("language")
    if language not in LANGUAGES:
        raise NodeError(400, "invalid_field", "field 'language': not a language of ours")
    state = state_of(request)
    if state.caller is not None:
        await request.app[PROFILES].update(require(request), {"language": language})
    state.cookies[LANG_COOKIE] = language
    return redirect(safe_next(raw.get("next")))


ROUTES: Final = (
    PageRoute("GET", "/login", login_page, "login"),
    PageRoute("POST", "/login", login, "login-post"),
    PageRoute("POST", "/logout", logout, "logout"),
    PageRoute("GET", "/join/{token}", join_page, "join"),
    PageRoute("POST", "/join/{token}", join, "join-post"),
    PageRoute("POST", "/language", switch_language, "language"),
)
