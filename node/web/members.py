"""Handlers of a member's own endpoints: register, log in and out, profile, export, tokens,
leaving and deleting. Thin: parse (done by the route table), call one service, serialise."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from node.web.api import Call, Route, json_response, no_content
from node.web.auth import SESSION_COOKIE, Auth, clear_session_cookie, set_session_cookie
from node.web.keys import ACCOUNTS, PROFILES
from node.web.member_schemas import (
    CREATED_TOKEN,
    EXPORT,
    LOGIN,
    NEW_TOKEN,
    PROFILE,
    PROFILE_CHANGE,
    REGISTRATION,
    TOKEN_LIST,
)

__all__ = ["MEMBER_ROUTES"]


async def register(call: Call) -> web.Response:
    return json_response(await call.app[ACCOUNTS].register(call.body), status=201)


async def login(call: Call) -> web.Response:
    token, max_age, profile = await call.app[ACCOUNTS].login(
        call.body["pseudonym"], call.body["password"]
    )
    response = json_response(profile)
    set_session_cookie(call.request, response, token, max_age)
    return response


async def logout(call: Call) -> web.Response:
    if token := call.request.cookies.get(SESSION_COOKIE):
        await call.app[ACCOUNTS].logout(token)
    response = no_content()
    clear_session_cookie(call.request, response)
    return response


async def get_me(call: Call) -> web.Response:
    return json_response(await call.app[PROFILES].me(call.member))


async def update_me(call: Call) -> web.Response:
    return json_response(await call.app[PROFILES].update(call.member, call.body))


async def export_me(call: Call) -> web.Response:
    return json_response(await call.app[PROFILES].export(call.member))


async def leave(call: Call) -> web.Response:
    await call.app[PROFILES].leave(call.member)
    response = no_content()
    clear_session_cookie(call.request, response)
    return response


async def delete_me(call: Call) -> web.Response:
    await call.app[PROFILES].delete(call.member)
    response = no_content()
    clear_session_cookie(call.request, response)
    return response


async def list_tokens(call: Call) -> web.Response:
    return json_response({"items": await call.app[PROFILES].tokens(call.member)})


async def create_token(call: Call) -> web.Response:
    token = await call.app[PROFILES].create_token(call.member, call.body["name"])
    return json_response(token, status=201)


async def delete_token(call: Call) -> web.Response:
    await call.app[PROFILES].delete_token(call.member, call.ids["token_id"])
    return no_content()


PUBLIC, MEMBER = Auth.PUBLIC, Auth.MEMBER
LAST_ADMIN = {409: ["last_admin"]}
MEMBER_ROUTES: Final = (
    Route("POST", "/register", register, "Join with an invite", PUBLIC, 201, PROFILE,
          body=REGISTRATION,
          errors={400: ["invalid_invite"], 409: ["pseudonym_taken"],
                  410: ["invite_expired", "invite_used_up"]},
          description="The member is pending if the node's policy wants approval, else "
          "active. Log in afterwards."),
    Route("POST", "/login", login, "Log in; sets the session cookie", PUBLIC, 200, PROFILE,
          body=LOGIN,
          errors={401: ["invalid_credentials"], 403: ["account_suspended", "account_not_active"],
                  429: ["too_many_attempts"]}),
    Route("POST", "/logout", logout, "Log out; ends the session and clears the cookie", PUBLIC,
          204),
    Route("GET", "/me", get_me, "Your profile", MEMBER, returns=PROFILE),
    Route("PATCH", "/me", update_me, "Change your profile or password", MEMBER,
          returns=PROFILE, body=PROFILE_CHANGE,
          errors={403: ["wrong_password"], 429: ["too_many_attempts"]}),
    Route("GET", "/me/export", export_me, "Everything the node holds about you", MEMBER,
          returns=EXPORT),
    Route("POST", "/me/leave", leave, "Leave: your sessions and tokens end", MEMBER, 204,
          errors=LAST_ADMIN),
    Route("DELETE", "/me", delete_me, "Delete your account: personal fields are erased",
          MEMBER, 204, errors=LAST_ADMIN),
    Route("GET", "/me/tokens", list_tokens, "Your API tokens", MEMBER, returns=TOKEN_LIST),
    Route("POST", "/me/tokens", create_token, "Make an API token (shown once)", MEMBER, 201,
          CREATED_TOKEN, body=NEW_TOKEN, errors={409: ["too_many_tokens"]}),
    Route("DELETE", "/me/tokens/{token_id}", delete_token, "Revoke one of your API tokens",
          MEMBER, 204),
)  # fmt: skip
