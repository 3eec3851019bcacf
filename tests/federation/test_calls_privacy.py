"""No member identifier appears in any federated envelope (issue 5, must show), checked on
the wire between three real node processes.

Each node is reached by its peers only through a recording reverse proxy (aiohttp, on
127.0.0.1, port 0): the proxy's URL is the node's ``server.public_url``, so invites, its
descriptor and every peer's requests name the proxy, and every inbox POST, log GET, key
fetch, peering request and descriptor fetch crosses one proxy whole, request and answer.
The nodes then live a whole story: peering, members joining with a pseudonym, real name,
phone and e-mail (each carrying a marker found nowhere else), a call with a private meeting
point, a member vote (``decision.outcome`` and ``call.endorse``), an admins' decline,
pledges, tallies, the activation, an update, an amendment, the conclusion, a second call
cancelled, and a node that was down catching up by pulling logs.

Every byte the proxies saw is searched for every member's identifiers, session cookie and API
token and for the meeting points, and every envelope in them is decoded: known types only,
bodies with the protocol's fields only, tallies and verdicts with counts only. The proxies
must have seen each expected type of envelope, and log pages with envelopes in them, so the
test fails if the traffic went elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
from aiohttp import web
from calls_support import (
    ACTIVATES,
    FAST_CALLS,
    VOTE_CLOSES,
    WAIT,
    Org,
    activated,
    api,
    close_vote_soon,
    decide,
    held,
    in_seconds,
    issue,
    marker,
    organise,
    pledge,
    set_policy,
    verdict_of,
    vote,
    wait_for,
)
from cluster import cluster, peer

from protocol import MESSAGE_TYPES, DecisionSummary, ProtocolError, SignedEnvelope, decode
from protocol.canonical import Limits

HOP_BY_HOP: Final = frozenset({"host", "content-length", "transfer-encoding", "connection",
                               "keep-alive"})  # fmt: skip
ANY_BODY: Final = Limits(max_size=16 << 20, max_bin=1 << 20, max_array=4_096)
TALLY_FIELDS: Final = {"call", "seq", "firm", "conditional", "bucket", "k"}
SUMMARY_FIELDS: Final = set(DecisionSummary.__dataclass_fields__)
EXPECTED: Final = {  # type -> at least this many seen on the wire: each reaches 2 nodes
    "node.descriptor": 3, "peer.introduce": 3, "peer.alliance": 3, "call.issue": 4,
    "decision.outcome": 2, "call.endorse": 2, "call.decline": 2, "call.tally": 4,
    "call.activate": 2, "call.update": 2, "call.amend": 2, "call.conclude": 2, "call.cancel": 2,
}  # fmt: skip


@dataclass
class Exchange:
    """One request a node received from another, and its answer, as they crossed the proxy."""

    method: str
    path: str
    request_headers: bytes
    request: bytes
    status: int
    response_headers: bytes
    response: bytes

    def raw(self) -> bytes:
        return b"\n".join((self.method.encode(), self.path.encode(), self.request_headers,
                           self.request, self.response_headers, self.response))  # fmt: skip


@dataclass
class Recorder:
    """A reverse proxy in front of one node that keeps every exchange."""

    target: str = ""  # the node's own URL, set once the node is made
    exchanges: list[Exchange] = field(default_factory=list)
    url: str = ""
    _runner: web.AppRunner | None = None
    _client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=16 << 20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self._client = aiohttp.ClientSession(auto_decompress=False,
                                             timeout=aiohttp.ClientTimeout(total=WAIT))  # fmt: skip

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._client is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        try:
            async with self._client.request(
                request.method, self.target + request.raw_path, headers=headers, data=body,
                allow_redirects=False,
            ) as answer:  # fmt: skip
                payload = await answer.read()
                back = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
                status = answer.status
        except aiohttp.ClientError:  # the node is down: as if nothing listened
            return web.Response(status=502)
        self.exchanges.append(Exchange(
            request.method, request.raw_path, _headers(request.headers), body, status,
            _headers(answer.headers), payload,
        ))  # fmt: skip
        return web.Response(status=status, body=payload, headers=back)


def _headers(headers: Any) -> bytes:
    return "\n".join(f"{k}: {v}" for k, v in headers.items()).encode()


@pytest.fixture
async def proxies() -> AsyncIterator[list[Recorder]]:
    made = [Recorder() for _ in range(3)]
    for proxy in made:
        await proxy.start()
    yield made
    for proxy in made:
        await proxy.stop()


@pytest.mark.timeout(300)  # the vote closes within a minute of being due: about 90 s in all
async def test_no_member_identifier_crosses_the_wire(
    tmp_path: Path, proxies: list[Recorder]
) -> None:
    async with cluster(tmp_path) as nodes:
        a, b, c = await nodes.make(3, calls=FAST_CALLS, public=[p.url for p in proxies])
        for proxy, node in zip(proxies, (a, b, c), strict=True):
            proxy.target = node.url
        await nodes.start([a, b, c])
        for inviter, joiner in ((a, b), (a, c), (b, c)):
            await peer(inviter, joiner)
        orgs = [await organise(a, 3), await organise(b, 4), await organise(c, 2)]
        try:
            private = await _story(*orgs)
        finally:
            for org in orgs:
                await org.close()
            print(nodes.logs())
        await nodes.close()  # nothing more crosses the proxies
    exchanges = [x for proxy in proxies for x in proxy.exchanges]
    secrets = [m.encode() for m in private]
    secrets += [i for org in orgs for person in org.everyone for i in person.identifiers()]
    _nothing_personal(exchanges, secrets)
    _every_envelope_is_clean(exchanges)


async def _story(issuer: Org, voters: Org, decliner: Org) -> list[str]:
    """The story; the markers of what must stay on the nodes (the meeting points)."""
    private = [marker(), marker(), marker()]
    await set_policy(voters, "vote")
    await set_policy(decliner, "admins")
    call = (await issue(issuer, 4, 2, in_seconds(600), private[0]))["call"]
    opened = await wait_for(voters, call, lambda v: v["proposal"] is not None, "the vote open")
    await vote(voters, opened["proposal"], voters.people[:3], voters.people[3:])
    await wait_for(decliner, call, lambda v: True, "the call held")
    await decide(decliner, call, False)
    await close_vote_soon(voters.node, call)
    await wait_for(issuer, call, verdict_of(voters, "endorse"), "B's verdict", VOTE_CLOSES)
    await wait_for(issuer, call, verdict_of(decliner, "decline"), "C's verdict")
    await decliner.node.kill()  # C is down from here; it pulls what it missed when back

    await pledge(issuer, call, ["firm", "conditional"])
    await pledge(voters, call, ["firm", "conditional"])
    await wait_for(issuer, call, activated, "the activation", ACTIVATES)
    number = (await held(issuer, call) or {})["id"]
    one = f"{issuer.api}/calls/{number}"
    boss = issuer.boss.client
    await api(boss, "POST", one + "/updates", {"text": {"en": "Buses leave at six."}})
    amend = {"title": {"en": "General strike for wages"},
             "meeting_point": f"the north gate, ask for {private[1]}"}  # fmt: skip
    await api(boss, "PATCH", one, amend)
    await api(boss, "POST", one + "/conclude", {"outcome": "held"})
    second = (await issue(issuer, None, 1, in_seconds(86_400), private[2]))["call"]
    await wait_for(voters, second, lambda v: v["proposal"] is not None, "the second vote open")
    number = (await held(issuer, second) or {})["id"]
    await api(boss, "POST", f"{issuer.api}/calls/{number}/cancel", {"reason": {"en": "Won."}})
    await wait_for(voters, call, lambda v: v["state"] == "concluded", "the conclusion")
    await wait_for(voters, second, lambda v: v["state"] == "cancelled", "the cancel")

    for node in (issuer.node, voters.node):
        await node.forget_outbox(decliner.node)  # its pushes are lost: only pulls remain
    await decliner.node.start()
    await wait_for(decliner, call, lambda v: v["state"] == "concluded", "C pulled", 2 * WAIT)
    await wait_for(decliner, second, lambda v: v["state"] == "cancelled", "C pulled", 2 * WAIT)
    return private


def _nothing_personal(exchanges: list[Exchange], secrets: list[bytes]) -> None:
    assert len(secrets) > 50
    leaks = []
    for exchange in exchanges:
        raw = exchange.raw().lower()
        leaks += [(exchange.method, exchange.path, s) for s in secrets if s.lower() in raw]
    assert not leaks, f"{len(leaks)} leaks, such as {leaks[:5]}"


def _every_envelope_is_clean(exchanges: list[Exchange]) -> None:
    seen: Counter[str] = Counter()
    pulled = 0
    for exchange in exchanges:
        for body in (exchange.request, exchange.response):
            if not body:
                continue
            for signed in _envelopes(decode(body, ANY_BODY)):  # every body is canonical
                _check(signed)
                seen[signed.envelope.type] += 1
                if exchange.path.startswith("/federation/v1/log") and body is exchange.response:
                    pulled += 1
    paths = Counter(x.path.split("?")[0] for x in exchanges)
    print(f"exchanges by path: {dict(paths)}; envelopes by type: {dict(seen)}; pulled: {pulled}")
    assert paths["/federation/v1/inbox"] >= 10, paths
    assert pulled >= 10, f"catch-up pulled {pulled} envelopes"
    short = {t: (seen[t], n) for t, n in EXPECTED.items() if seen[t] < n}
    assert not short, f"seen on the wire (seen, expected): {short}; all: {dict(seen)}"


def _envelopes(value: object) -> Iterator[SignedEnvelope]:
    """Every signed envelope inside a decoded body, however deep."""
    if isinstance(value, bytes):
        try:
            yield SignedEnvelope.from_bytes(value)
        except ProtocolError:  # another bin: an id, a key event, a signature
            return
    elif isinstance(value, dict):
        for item in value.values():
            yield from _envelopes(item)
    elif isinstance(value, list):
        for item in value:
            yield from _envelopes(item)


def _check(signed: SignedEnvelope) -> None:
    kind, body = signed.envelope.type, signed.envelope.body
    assert kind in MESSAGE_TYPES, kind
    assert set(body) <= MESSAGE_TYPES[kind].field_names(), (kind, sorted(body))
    if kind == "call.tally":
        assert set(body) == TALLY_FIELDS
    if kind in ("call.endorse", "call.decline"):
        assert set(body["decision"]) <= SUMMARY_FIELDS, body["decision"]
    if kind == "decision.outcome":
        assert all(isinstance(n, int) for n in body["counts"])
