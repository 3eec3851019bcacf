"""Helpers of the call tests between real nodes (no tests here): organisations with members
registered and logged in over each node's JSON API (as people would, through invites), and
the calls, votes and pledges they make there. Each member's pseudonym, real name, phone,
e-mail, session cookie and API token are kept, so that a test can look for them in what the
nodes send each other.

The JSON API is reached at the node's own port; a browser's ``Origin`` is the node's public
URL (``NodeProcess.base_url``), which is a recording proxy's in the privacy test.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from cluster import NodeProcess, poll
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.storage.db import create_engine, session_factory
from node.storage.models import (
    ActivationRow,
    CallRow,
    Endorsement,
    EnvelopeRow,
    Notification,
    Proposal,
    TallyRow,
)

PASSWORD: Final = "solidarity-" + "tests"
WAIT: Final = 30.0  # seconds for something to cross the federation
VOTE_CLOSES: Final = 90.0  # seconds: the decision scheduler looks at least once a minute
# seconds: a tally that arrives wakes the calls scheduler (node.storage.wakeups), which
# checks the threshold at once; the margin is for a loaded machine
ACTIVATES: Final = WAIT + 30
FAST_CALLS: Final = {"tally_bucket": 1, "tally_k": 1, "tally_interval": 1}

CallView = dict[str, Any]


class ApiError(AssertionError):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"{status}: {text[:300]}")
        self.status = status


@dataclass
class Person:
    """A member of one node, logged in; what identifies them, to search for."""

    pseudonym: str
    real_name: str
    phone: str
    email: str
    client: aiohttp.ClientSession
    member_id: int = 0
    session: str = ""  # the session cookie's value
    token: str = ""  # a personal API token

    def identifiers(self) -> list[bytes]:
        """Every value that would single this member out, as bytes, in several spellings."""
        digits = "".join(c for c in self.phone if c.isdigit())
        values = [self.pseudonym, self.real_name, self.phone, digits, self.email,
                  self.email.split("@")[0], self.session, self.token]  # fmt: skip
        return [v.encode() for v in values if v]


@dataclass
class Org:
    """One organisation: its node, its admin and its members."""

    node: NodeProcess
    admin: Person | None = None
    people: list[Person] = field(default_factory=list)

    @property
    def api(self) -> str:
        return self.node.url + "/api/v1"

    @property
    def boss(self) -> Person:
        assert self.admin is not None, f"{self.node.name} has no admin"
        return self.admin

    @property
    def everyone(self) -> list[Person]:
        return [self.boss, *self.people]

    async def close(self) -> None:
        for person in self.everyone if self.admin else self.people:
            await person.client.close()


async def api(client: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with client.request(method, url, json=body) as response:
        text = await response.text()
        if response.status >= 400:
            raise ApiError(response.status, f"{method} {url}: {text}")
        return await response.json() if text else None


def marker() -> str:
    """A token found nowhere else: letters and digits, so a valid pseudonym part."""
    return "Zq" + secrets.token_hex(6)


async def register(node: NodeProcess, invite: str, tag: str) -> Person:
    """A member joining through ``invite``, with every personal field filled with markers,
    logged in (a session cookie) and holding an API token."""
    client = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Origin": node.base_url},
        timeout=aiohttp.ClientTimeout(total=WAIT),
    )  # fmt: skip
    mark = marker()
    person = Person(
        pseudonym=f"{tag}{mark}", real_name=f"Realname {mark}",
        phone=f"+964 77{secrets.randbelow(10**8):08d}", email=f"{mark.lower()}@mail.example",
        client=client,
    )  # fmt: skip
    base = node.url + "/api/v1"
    try:
        made = await api(client, "POST", base + "/register", {
            "invite": invite, "pseudonym": person.pseudonym, "password": PASSWORD,
            "real_name": person.real_name,
            "contact": {"phone": person.phone, "email": person.email},
        })  # fmt: skip
        await api(client, "POST", base + "/login",
                  {"pseudonym": person.pseudonym, "password": PASSWORD})  # fmt: skip
        token = await api(client, "POST", base + "/me/tokens", {"name": "tests"})
    except BaseException:
        await client.close()
        raise
    person.member_id = made["id"]
    person.session = next(c.value for c in client.cookie_jar if c.key == "tadamun_session")
    person.token = token["token"]
    return person


async def organise(node: NodeProcess, members: int) -> Org:
    """An admin (through the invite ``init`` printed) and ``members`` members."""
    org = Org(node)
    org.admin = await register(node, node.admin_invite, "admin")
    invite = await api(org.boss.client, "POST", org.api + "/invites",
                       {"role": "member", "uses": max(members, 1)})  # fmt: skip
    for _ in range(members):
        org.people.append(await register(node, invite["token"], "member"))
    return org


async def set_policy(org: Org, endorsement_by: str) -> None:
    vote = {"method": "majority", "fraction": None, "quorum": {"num": 1, "den": 2}, "hours": 1}
    policy = {"approval_required": False, "call_issuers": "organisers",
              "endorsement_by": endorsement_by, "vote": vote}  # fmt: skip
    await api(org.boss.client, "PUT", org.api + "/policy", policy)


def in_seconds(seconds: int) -> int:
    return int(time.time()) + seconds


async def issue(org: Org, pledges: int | None, orgs: int, deadline: int, mark: str) -> CallView:
    """A strike call of ``org`` (with a threshold unless ``pledges`` is None); ``mark`` goes
    into the meeting point, which stays on the issuing node."""
    draft: dict[str, Any] = {
        "kind": "strike", "audience": "allies",
        "title": {"ar": "إضراب عام", "ckb": "مانگرتنی گشتی", "en": "General strike"},
        "text": {"en": "We strike if enough workers pledge."},
        "location": {"region": "IQ-BA", "place": "Basra"}, "sectors": ["oil"],
        "meeting_point": f"the gate of the refinery, ask for {mark}",
    }  # fmt: skip
    if pledges is not None:
        draft["threshold"] = {"pledges": pledges, "orgs": orgs, "deadline": deadline}
    else:
        draft["starts"] = deadline
    view: CallView = await api(org.boss.client, "POST", org.api + "/calls", draft)
    return view


async def held(org: Org, call: str, person: Person | None = None) -> CallView | None:
    """The call as ``person`` (the admin by default) sees it, or None if not held."""
    client = (person or org.boss).client
    page = await api(client, "GET", f"{org.api}/calls?call={call}")
    if not page["items"]:
        return None
    found: CallView = await api(client, "GET", f"{org.api}/calls/{page['items'][0]['id']}")
    return found


async def wait_for(
    org: Org, call: str, holds: Callable[[CallView], bool], what: str, within: float = WAIT
) -> CallView:
    seen: CallView = {}

    async def check() -> bool:
        view = await held(org, call)
        seen.clear()
        seen.update(view or {})
        return view is not None and holds(view)

    try:
        await poll(check, within, f"{org.node.name}: {what}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the call there: {json.dumps(seen)[:3000]}") from None
    return seen


def verdict_of(org: Org, how: str = "") -> Callable[[CallView], bool]:
    """Whether a call shows ``org``'s verdict (``endorse`` or ``decline``, or either)."""
    origin = org.node.node_id.hex()

    def holds(view: CallView) -> bool:
        return any(e["origin"] == origin and e["verdict"].startswith(how)
                   for e in view["endorsements"])  # fmt: skip

    return holds


def tally_of(org: Org, total: int) -> Callable[[CallView], bool]:
    origin = org.node.node_id.hex()

    def holds(view: CallView) -> bool:
        return any(t["origin"] == origin and t["firm"] + t["conditional"] == total
                   for t in view["tallies"])  # fmt: skip

    return holds


def activated(view: CallView) -> bool:
    return view["activation"] is not None and view["state"] == "activated"


async def vote(org: Org, proposal: str, yes: Sequence[Person], no: Sequence[Person]) -> None:
    url = f"{org.api}/proposals/{proposal}/vote"
    for person in yes:
        await api(person.client, "PUT", url, {"choice": "option", "option": 0})
    for person in no:
        await api(person.client, "PUT", url, {"choice": "option", "option": 1})


async def close_vote_soon(node: NodeProcess, call: str) -> None:
    """Bring the "do we join?" vote's close to now. A vote on a call lasts the policy's hours
    (an hour at least) or half the time to the call's deadline, whichever is shorter: minutes
    with the deadlines these tests use, longer than a test should wait. The node's decision
    scheduler closes it as it would any due vote (it looks at least once a minute)."""
    engine = create_engine(node.db_url)
    try:
        async with session_factory(engine).begin() as session:
            await session.execute(
                update(Proposal).where(Proposal.call_id == bytes.fromhex(call))
                .values(closes_at=int(time.time()) + 1)
            )  # fmt: skip
    finally:
        await engine.dispose()


async def decide(org: Org, call: str, join: bool) -> None:
    view = await held(org, call)
    assert view is not None, f"{org.node.name} does not hold the call"
    await api(org.boss.client, "POST", f"{org.api}/calls/{view['id']}/decision", {"join": join})


async def pledge(org: Org, call: str, kinds: Sequence[str]) -> None:
    """The first members pledge, one kind each."""
    for person, kind in zip(org.people, kinds, strict=False):
        view = await held(org, call, person)
        assert view is not None
        await api(person.client, "PUT", f"{org.api}/calls/{view['id']}/pledge", {"kind": kind})


# --- what a node's database holds about a call ---------------------------------------------


@dataclass(frozen=True)
class Holdings:
    """Counts of what one node holds about one call, to compare across nodes."""

    state: str
    activation: bytes | None
    endorsements: dict[bytes, str]  # origin -> verdict
    tallies: dict[bytes, int]  # origin -> how many of its tallies
    activations: dict[bytes, str]  # activation id -> valid | pending
    envelopes: dict[tuple[bytes, str], int]  # (origin, type) -> how many held
    notifications: dict[tuple[int, str], int]  # (member, kind) -> how many
    proposals: int


async def holdings(node: NodeProcess, call: str) -> Holdings:
    call_id = bytes.fromhex(call)

    async def query(session: AsyncSession) -> Holdings:
        row = await session.scalar(select(CallRow).where(CallRow.call_id == call_id))
        assert row is not None, f"{node.name} does not hold the call"
        verdicts = await session.scalars(select(Endorsement).where(Endorsement.call_id == call_id))
        tallies = await session.execute(
            select(TallyRow.origin, func.count()).where(TallyRow.call_id == call_id)
            .group_by(TallyRow.origin)
        )  # fmt: skip
        activations = await session.scalars(
            select(ActivationRow).where(ActivationRow.call_id == call_id)
        )
        envelopes = await session.execute(
            select(EnvelopeRow.origin, EnvelopeRow.type, func.count())
            .where(EnvelopeRow.type.like("call.%")).group_by(EnvelopeRow.origin, EnvelopeRow.type)
        )  # fmt: skip
        notes = await session.execute(
            select(Notification.member_id, Notification.kind, func.count())
            .where(Notification.call == row.id)
            .group_by(Notification.member_id, Notification.kind)
        )  # fmt: skip
        proposals = await session.scalar(
            select(func.count()).select_from(Proposal).where(Proposal.call_id == call_id)
        )
        return Holdings(
            state=row.state, activation=row.activation,
            endorsements={v.origin: v.verdict for v in verdicts},
            tallies=dict(tallies.all()),
            activations={a.id: a.state for a in activations},
            envelopes={(o, t): n for o, t, n in envelopes.all()},
            notifications={(m, k): n for m, k, n in notes.all()}, proposals=proposals or 0,
        )  # fmt: skip

    return await node.read(query)


async def own_count(node: NodeProcess, type_: str) -> int:
    """How many envelopes of ``type_`` the node signed itself."""

    async def query(session: AsyncSession) -> int:
        found = await session.scalar(
            select(func.count()).select_from(EnvelopeRow)
            .where(EnvelopeRow.origin == node.node_id, EnvelopeRow.type == type_)
        )  # fmt: skip
        return int(found or 0)

    return await node.read(query)
