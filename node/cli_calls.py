"""The operator's call commands: ``tadamun call issue`` signs and sends a call to action,
``tadamun call list`` shows the calls this node holds. They call the same services as the
JSON API; the audit log names their actor ``cli``, and the governance policy's
``call_issuers`` does not bind the operator.

Times are ISO 8601 (``2026-05-01T06:00``, ``2026-05-01``); without a zone they are UTC.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from protocol.calls import KINDS

from .cli_support import EXIT_USAGE, add_node_arguments, node_config, open_sessions, run_command
from .clock import SystemClock
from .config import Config
from .errors import NodeError
from .services.call_views import call_page
from .services.calls import AUDIENCES, CallDraft, issue_call
from .services.signer import load_signer

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = ["add_call_commands"]

LANGS: Final = ("ar", "ckb", "en")
PAGE: Final = 100


def _time(text: str) -> int:
    """Unix seconds from ISO 8601; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _texts(args: argparse.Namespace, field: str) -> dict[str, str]:
    return {lang: value for lang in LANGS if (value := getattr(args, f"{field}_{lang}"))}


def _threshold(args: argparse.Namespace) -> tuple[int, int, int] | None:
    given = (args.threshold_pledges, args.threshold_orgs, args.deadline)
    if all(value is None for value in given):
        return None
    if any(value is None for value in given):
        raise NodeError(400, "invalid_field", "a threshold needs pledges, orgs and a deadline")
    return args.threshold_pledges, args.threshold_orgs, args.deadline


def _draft(args: argparse.Namespace) -> CallDraft:
    return CallDraft(
        kind=args.kind, title=_texts(args, "title"), text=_texts(args, "text"),
        audience=args.audience, starts=args.starts, ends=args.ends, region=args.region,
        place=args.place, meeting_point=args.meeting_point, sectors=tuple(args.sector),
        regions=tuple(args.region_tag), threshold=_threshold(args),
    )  # fmt: skip


async def _issue(args: argparse.Namespace, config: Config) -> None:
    async with open_sessions(config) as sessions:
        signer, draft = load_signer(config.data_dir), _draft(args)
        number = await issue_call(sessions, signer, draft, by=None, now=SystemClock().now())
        page = await call_page(
            sessions, state=None, call=None, own=True, before=number + 1, limit=1
        )
    made = page.items[0]
    print(f"Call {number} issued ({made['kind']}, to {made['audience']}): {made['call']}")
    if made["threshold"]:
        threshold = made["threshold"]
        deadline = datetime.fromtimestamp(threshold["deadline"], UTC).strftime("%Y-%m-%d %H:%M")
        print(f"  goes ahead with {threshold['pledges']} pledges across "
              f"{threshold['orgs']} organisations by {deadline} UTC")  # fmt: skip


def _title(titles: Mapping[str, str]) -> str:
    return next((titles[lang] for lang in LANGS if lang in titles), next(iter(titles.values())))


async def _list(args: argparse.Namespace, config: Config) -> None:
    async with open_sessions(config) as sessions:
        before = None
        print(f"{'id':>5}  {'state':<9}  {'stance':<9}  {'kind':<13}  title")
        while True:
            page = await call_page(
                sessions, state=args.state, call=None, own=None, before=before, limit=PAGE
            )
            for c in page.items:
                print(f"{c['id']:>5}  {c['state']:<9}  {c['stance']:<9}  {c['kind']:<13}  "
                      f"{_title(c['title'])}")  # fmt: skip
            if page.after is None:
                return
            before = page.after


def _run(args: argparse.Namespace) -> int:
    async def main() -> None:
        await args.work(args, node_config(args))

    return run_command(args, main)


def _command(commands: Commands, name: str, help_: str, work: object) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=help_, description=help_)
    add_node_arguments(parser)
    parser.set_defaults(handler=_run, work=work)
    return parser


def _issue_arguments(issue: argparse.ArgumentParser) -> None:
    issue.add_argument("--kind", required=True, choices=sorted(KINDS))
    for lang in LANGS:
        issue.add_argument(f"--title-{lang}", help=f"the title in {lang}")
        issue.add_argument(f"--text-{lang}", help=f"the text in {lang}")
    issue.add_argument(
        "--audience",
        default="allies",
        help=f"{', '.join(AUDIENCES)}, or coalition:<id> of a coalition this node is in",
    )
    issue.add_argument("--starts", type=_time, help="when the action starts (ISO 8601)")
    issue.add_argument("--ends", type=_time, help="when it ends (ISO 8601)")
    issue.add_argument("--region", help="coarse public location: a region code, e.g. IQ-BA")
    issue.add_argument("--place", help="coarse public location: a place name")
    issue.add_argument("--meeting-point", help="the exact meeting point: kept on this node")
    issue.add_argument("--sector", action="append", default=[], help="a sector (repeatable)")
    issue.add_argument("--region-tag", action="append", default=[],
                       help="a region the call concerns (repeatable)")  # fmt: skip
    issue.add_argument("--threshold-pledges", type=int, help="pledges needed (P)")
    issue.add_argument("--threshold-orgs", type=int, help="organisations needed (N)")
    issue.add_argument("--deadline", type=_time, help="threshold deadline (ISO 8601)")


def add_call_commands(commands: Commands) -> None:
    call = commands.add_parser("call", help="calls to action", description="calls to action")
    call.set_defaults(handler=lambda _: EXIT_USAGE)
    call_commands = call.add_subparsers(dest="call_command", required=True, metavar="SUB")
    _issue_arguments(_command(call_commands, "issue", "issue a call to action", _issue))
    listing = _command(call_commands, "list", "list the calls this node holds", _list)
    listing.add_argument("--state", choices=("open", "activated", "cancelled", "concluded", "void"))
