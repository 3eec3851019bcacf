"""What the pages say when something is refused: a translatable message for every error code
the services raise, and the form field each belongs to.

Messages are English msgids marked with :func:`N_`, with ``%(name)s`` parameters filled in
when the page is rendered in the reader's language (:class:`Msg`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from node.errors import NodeError
from node.services.accounts import REFUSED_STATUS, THROTTLE_LOCK
from node.services.decisions import MAX_BODY, MAX_OPTIONS, MAX_TITLE, MAX_WINDOW, MIN_OPTIONS
from node.web.pages.i18n import N_

__all__ = ["ERRORS", "FIELD_OF_CODE", "NOTICES", "Msg", "field_of", "message_for", "notice"]


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to show: an English msgid and its parameters (numbers are formatted in
    the reader's locale)."""

    text: str
    params: Mapping[str, object] = field(default_factory=dict)


ERRORS: Final[Mapping[str, str]] = {
    # accounts and invites
    "invalid_invite": N_("This invite link is not valid. Ask for a new one."),
    "invite_expired": N_("This invite link has expired. Ask for a new one."),
    "invite_used_up": N_("This invite link has been used up. Ask for a new one."),
    "pseudonym_taken": N_("This pseudonym is taken. Choose another."),
    "invalid_credentials": N_("Wrong pseudonym or password."),
    "account_suspended": N_("This account is suspended."),
    "account_pending": N_("This account is waiting for an admin's approval."),
    "account_not_active": N_("This account is no longer active."),
    "too_many_attempts": N_("Too many login attempts. Try again in %(minutes)s minutes."),
    "wrong_password": N_("The current password is not right."),
    "unauthenticated": N_("Log in to see this page."),
    "forbidden": N_("You do not have the role this page needs."),
    "csrf": N_("This form has expired or came from another site. Reload the page and try again."),
    "last_admin": N_("This would leave the node without an active admin."),
    "invalid_transition": N_("This member's status does not allow that."),
    "not_found": N_("There is nothing here."),
    "method_not_allowed": N_("There is nothing here."),
    "body_too_large": N_("What you sent is too large."),
    "unsupported_media_type": N_("Send the form from this site's pages."),
    "invalid_form": N_("The form is not one these pages send. Reload the page and try again."),
    "invalid_field": N_("Please correct the marked field."),
    "missing_field": N_("Please correct the marked field."),
    "unknown_field": N_("The form is not one these pages send. Reload the page and try again."),
    "internal_error": N_("Something went wrong on the server. Try again later."),
    # decisions
    "proposal_not_found": N_("There is no such proposal."),
    "invalid_title": N_("Give the proposal a title of one line (at most %(max)s bytes)."),
    "invalid_body": N_("The text is too long (at most %(max)s bytes)."),
    "invalid_options": N_("Give %(min)s to %(max)s different options, one per line."),
    "invalid_method": N_("Choose how the vote is decided."),
    "invalid_fraction": N_("A supermajority needs a share above one half."),
    "invalid_quorum": N_("The quorum must be between 0 and 100 per cent."),
    "invalid_ballot": N_("Choose an open or a secret ballot."),
    "invalid_window": N_(
        "Voting opens now or within a year, and lasts from one hour to %(days)s days."
    ),
    "invalid_choice": N_("Choose one of the options."),
    "not_an_active_member": N_("Only active members may do this."),
    "not_allowed": N_("Only organisers and admins may do this."),
    "voting_not_open": N_("Voting has not opened yet."),
    "voting_closed": N_("Voting has closed."),
    "proposal_cancelled": N_("This proposal was cancelled."),
    "ballot_secret": N_("The ballot is secret."),
    "not_closed": N_("The proposal has no result yet."),
    # calls to action
    "call_not_found": N_("There is no such call to action."),
    "not_joined": N_("Your organisation has not joined this call yet, so you cannot pledge to it."),
    "call_closed": N_("This call is no longer open."),
    "pledges_closed": N_("Pledges for this call are closed."),
    "no_threshold": N_("This call has no threshold, so a pledge to it is firm."),
    "no_pledge": N_("You have not pledged to this call."),
    "not_issuer": N_("Only the organisation that issued a call can change it."),
    "own_call": N_("This organisation issued the call; it does not decide whether to join it."),
    "decided_by_vote": N_("The members decide by vote whether to join this call."),
    "already_decided": N_("The organisation has already decided on this call."),
    "audience_unsupported": N_(
        "This node is not a member of that coalition, so it cannot send calls to it."
    ),
}
GENERIC: Final = N_("The request was refused.")
PARAMS: Final[Mapping[str, Mapping[str, object]]] = {
    "too_many_attempts": {"minutes": THROTTLE_LOCK // 60},
    "invalid_title": {"max": MAX_TITLE},
    "invalid_body": {"max": MAX_BODY},
    "invalid_options": {"min": MIN_OPTIONS, "max": MAX_OPTIONS},
    "invalid_window": {"days": MAX_WINDOW // 86_400},
}

# Error codes that belong to one field of the form that caused them.
FIELD_OF_CODE: Final[Mapping[str, str]] = {
    "pseudonym_taken": "pseudonym",
    "wrong_password": "current_password",
    "invalid_title": "title",
    "invalid_body": "body",
    "invalid_options": "options",
    "invalid_fraction": "fraction",
    "invalid_quorum": "quorum",
    "invalid_window": "hours",
    "invalid_choice": "choice",
    "invalid_method": "method",
}
# invalid_field(...) names its field first: "field 'pseudonym': ..."
NAMED_FIELD: Final = re.compile(r"field '([\w.]+)'")
# Refusals of a login that name why, by the message the accounts service gives.
_PENDING_MESSAGE: Final = REFUSED_STATUS["pending"][1]


def message_for(exc: NodeError) -> Msg:
    """The message to show for a refusal, in terms the reader understands."""
    if exc.code == "account_not_active" and exc.message == _PENDING_MESSAGE:
        return Msg(ERRORS["account_pending"])
    params = PARAMS.get(exc.code, {})
    if exc.code == "too_many_attempts" and exc.retry_after:
        params = {"minutes": max(1, -(-exc.retry_after // 60))}  # the lock's minutes left
    return Msg(ERRORS.get(exc.code, GENERIC), params)


def field_of(exc: NodeError) -> str | None:
    """The form field a refusal is about, if it names one."""
    if exc.code in FIELD_OF_CODE:
        return FIELD_OF_CODE[exc.code]
    found = NAMED_FIELD.match(exc.message)
    return found.group(1) if found else None


# Notices after a form succeeded: the page it redirects to names one in ``?notice=``.
NOTICES: Final[Mapping[str, str]] = {
    "welcome": N_("Welcome! You are a member now."),
    "logged_out": N_("You have logged out."),
    "left": N_("You have left the organisation. Your sessions and tokens have ended."),
    "saved": N_("Saved."),
    "password_changed": N_("Your password is changed. Your other sessions have ended."),
    "vote_saved": N_("Your vote is saved. You can change it until voting closes."),
    "proposal_created": N_("The proposal is created."),
    "approved": N_("The member is approved."),
    "suspended": N_("The member is suspended."),
    "reinstated": N_("The member is reinstated."),
    "role_changed": N_("The role is changed."),
    "invite_withdrawn": N_("The invite is withdrawn."),
    "pledged": N_("Your pledge is saved."),
    "pledge_withdrawn": N_("Your pledge is withdrawn."),
    "all_read": N_("All your notifications are marked read."),
    "call_issued": N_("The call is issued and sent to its audience."),
    "call_amended": N_("The call is changed; the change is sent to its audience."),
    "call_cancelled": N_("The call is cancelled."),
    "call_concluded": N_("The call is concluded."),
    "update_posted": N_("The update is posted."),
    "call_joined": N_("The organisation joins the call."),
    "call_declined": N_("The organisation declines the call."),
}


def notice(code: str | None) -> Msg | None:
    """The notice a page was asked to show, if it is one of ours."""
    return Msg(NOTICES[code]) if code in NOTICES and code is not None else None
