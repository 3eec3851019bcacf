"""``tadamun demo``: a federation of three local nodes telling one story (issue 5 item 6).

An oil workers' union in Basra, a teachers' union in Sulaymaniyah and a student union in
Baghdad each run as their own ``tadamun serve`` process on 127.0.0.1, in a fresh directory.
The demo peers them (``tadamun peer invite`` and ``join``), makes members through invites
over the JSON API, and Basra issues a conditional strike call with a threshold. Baghdad's
admins decide to join; Sulaymaniyah's members vote on it ("do we join?"), as its policy
says. Members pledge in Basra and Baghdad; the teachers' vote closes and its verdict reaches
Basra with the vote's counts; Sulaymaniyah's members pledge too; each node publishes its
tally, a node proves the threshold met with ``call.activate``, and the activation shows on
all three nodes.

A vote on a call lasts the policy's hours (at least one) or half the time left to the call's
pledge deadline, whichever is shorter (node.services.call_proposals); the demo gives the call
a deadline :data:`DEADLINE_AFTER` seconds out, so the teachers vote for about half of that.
The threshold is exactly the pledges made, so the activation always counts every tally.

Without ``--check`` the nodes keep running with login links printed until Ctrl-C; with
``--check`` the story runs unattended, every wait has a deadline, the nodes are stopped, and
the exit status says whether every step held (the failed step is named).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp

__all__ = ["add_demo_command"]

CLI: Final = (sys.executable, "-m", "node.cli")
COMMAND_DEADLINE: Final = 60.0  # seconds for one tadamun command or a node's start
WAIT: Final = 30.0  # seconds for something to cross the federation
DEADLINE_AFTER: Final = 90  # seconds from issuing to the call's pledge deadline
SERVING: Final = re.compile(r"serving .* on http://127\.0\.0\.1:(\d+)")
JOIN_LINK: Final = re.compile(r"/join/(\S+)")
PASSWORD: Final = "solidarity-" + "demo"  # every demo member's password; printed for login
FAST: Final = (
    '\n[federation]\nallow_networks = ["127.0.0.0/8"]\nretry_base = 1\nretry_cap = 4\n'
    "delivery_poll = 1\ncatchup_interval = 2\nconnect_timeout = 2\nrequest_timeout = 5\n"
    "\n[calls]\ntally_bucket = 1\ntally_k = 1\ntally_interval = 1\n"
)


class StepFailed(Exception):
    """A step of the story did not happen; the message names it."""


@dataclass
class Org:
    """One organisation: its node's directory and process, its admin and members."""

    key: str
    name: str
    members: int  # besides the admin
    port: int = 0
    data_dir: Path = Path()
    process: asyncio.subprocess.Process | None = None
    admin_invite: str = ""
    admin: aiohttp.ClientSession | None = None
    people: list[aiohttp.ClientSession] = field(default_factory=list)
    invite_link: str = ""  # for a fresh member, made once the story has run

    @property
    def boss(self) -> aiohttp.ClientSession:
        """The admin's logged-in client."""
        if self.admin is None:
            raise StepFailed(f"{self.key} has no admin logged in")
        return self.admin

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.url + "/api/v1"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.key}.log"


def _orgs() -> list[Org]:
    return [
        Org("basra", "نقابة عمال النفط في البصرة — Basra Oil Workers' Union", 5),
        Org("sulaymaniyah", "سەندیکای مامۆستایانی سلێمانی — Sulaymaniyah Teachers' Union", 5),
        Org("baghdad", "Baghdad Student Union — اتحاد طلبة بغداد", 4),
    ]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def say(text: str) -> None:
    print(text, flush=True)


async def _tadamun(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        *CLI, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(COMMAND_DEADLINE):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        raise StepFailed(f"tadamun {args[0]} took over {COMMAND_DEADLINE}s") from None
    if process.returncode != 0:
        raise StepFailed(f"tadamun {' '.join(args[:2])} failed: {err.decode().strip()}")
    return out.decode()


async def poll(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Wait until ``check()`` holds, every 200 ms, failing after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while not await check():  # noqa: ASYNC110 - other processes' state
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise StepFailed(f"not within {within:.0f}s: {what}") from None


async def call_api(client: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with client.request(method, url, json=body) as response:
        text = await response.text()
        if response.status >= 400:
            raise StepFailed(f"{method} {url} answered {response.status}: {text[:300]}")
        return json.loads(text) if text else None


class Demo:
    def __init__(self, root: Path, base_port: int | None) -> None:
        self.root = root
        self.orgs = _orgs()
        for index, org in enumerate(self.orgs):
            org.port = base_port + index if base_port else _free_port()
            org.data_dir = root / org.key
        self.basra, self.sulaymaniyah, self.baghdad = self.orgs
        self.step = "start"
        self.call_hex = ""

    def begin(self, step: str) -> None:
        self.step = step
        say(f"\n== {step}")

    # --- nodes ----------------------------------------------------------------------------

    async def init(self, org: Org) -> None:
        out = await _tadamun("init", "--data-dir", str(org.data_dir), "--name", org.name)
        found = JOIN_LINK.search(out)
        if found is None:
            raise StepFailed(f"no admin invite in the output of init for {org.key}")
        org.admin_invite = found.group(1)
        server = f'\n[server]\nhost = "127.0.0.1"\nport = {org.port}\npublic_url = "{org.url}"\n'
        with (org.data_dir / "tadamun.toml").open("a", encoding="utf-8") as config:
            config.write(server + FAST)

    async def start(self, org: Org) -> None:
        with org.log_path.open("ab") as log:
            org.process = await asyncio.create_subprocess_exec(
                *CLI, "serve", "--data-dir", str(org.data_dir), stdout=log, stderr=log,
                start_new_session=True,  # Ctrl-C reaches the demo alone; it stops the nodes
            )  # fmt: skip

        async def listening() -> bool:
            if org.process is not None and org.process.returncode is not None:
                raise StepFailed(f"{org.key} exited; see {org.log_path}")
            return SERVING.search(org.log_path.read_text(errors="replace")) is not None

        await poll(listening, COMMAND_DEADLINE, f"{org.key} listening")

    async def stop(self) -> None:
        for org in self.orgs:
            for client in [org.admin, *org.people]:
                if client is not None:
                    await client.close()
        processes = [org.process for org in self.orgs if org.process is not None]
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                async with asyncio.timeout(15):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()

    async def peer(self, inviter: Org, joiner: Org) -> None:
        out = await _tadamun("peer", "invite", "--data-dir", str(inviter.data_dir), "--no-qr")
        invite = next((x.strip() for x in out.splitlines() if "tadamun-peer:" in x), None)
        if invite is None:
            raise StepFailed(f"no peer invite from {inviter.key}")
        joined = await _tadamun("peer", "join", "--data-dir", str(joiner.data_dir), invite)
        if "Allied with" not in joined:
            raise StepFailed(f"{joiner.key} did not ally with {inviter.key}: {joined.strip()}")

    # --- members ----------------------------------------------------------------------------

    def client(self, org: Org) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # cookies of 127.0.0.1
            headers={"Origin": org.url}, timeout=aiohttp.ClientTimeout(total=WAIT),
        )  # fmt: skip

    async def register(self, org: Org, invite: str, pseudonym: str) -> aiohttp.ClientSession:
        client = self.client(org)
        body = {"invite": invite, "pseudonym": pseudonym, "password": PASSWORD}
        try:
            await call_api(client, "POST", org.api + "/register", body)
            await call_api(client, "POST", org.api + "/login",
                           {"pseudonym": pseudonym, "password": PASSWORD})  # fmt: skip
        except BaseException:
            await client.close()
            raise
        return client

    async def members(self, org: Org) -> None:
        org.admin = await self.register(org, org.admin_invite, f"{org.key}-admin")
        invite = await call_api(org.admin, "POST", org.api + "/invites",
                                {"role": "member", "uses": org.members})  # fmt: skip
        for index in range(org.members):
            pseudonym = f"{org.key}-member-{index + 1}"
            org.people.append(await self.register(org, invite["token"], pseudonym))

    # --- the call --------------------------------------------------------------------------

    async def held(self, org: Org) -> dict[str, Any] | None:
        page = await call_api(org.boss, "GET", f"{org.api}/calls?call={self.call_hex}")
        if not page["items"]:
            return None
        number = page["items"][0]["id"]
        found: dict[str, Any] = await call_api(org.boss, "GET", f"{org.api}/calls/{number}")
        return found

    async def number(self, org: Org) -> int:
        """This node's number for the call."""
        held = await self.held(org)
        if held is None:
            raise StepFailed(f"{org.key} does not hold the call")
        return int(held["id"])

    def label(self, name: str | None, origin: str) -> str:
        """An organisation's short name, from its full name or its node id."""
        return next((org.key for org in self.orgs if org.name == name), name or origin[:12])

    async def wait_for(
        self, org: Org, holds: Callable[[dict[str, Any]], bool], what: str, within: float = WAIT
    ) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        async def check() -> bool:
            call = await self.held(org)
            if call is not None and holds(call):
                seen.update(call)
                return True
            return False

        await poll(check, within, f"{org.key}: {what}")
        return seen

    async def run(self) -> None:
        self.begin("Creating three nodes in " + str(self.root))
        await asyncio.gather(*(self.init(org) for org in self.orgs))
        await asyncio.gather(*(self.start(org) for org in self.orgs))
        for org in self.orgs:
            say(f"  {org.name}: {org.url}")

        self.begin("Peering the nodes (tadamun peer invite / join)")
        for inviter, joiner in ((self.basra, self.sulaymaniyah), (self.basra, self.baghdad),
                                (self.sulaymaniyah, self.baghdad)):  # fmt: skip
            await self.peer(inviter, joiner)
            say(f"  {joiner.key} allied with {inviter.key}")

        self.begin("Members join through invite links")
        await asyncio.gather(*(self.members(org) for org in self.orgs))
        for org in self.orgs:
            say(f"  {org.key}: an admin and {len(org.people)} members registered and logged in")

        self.begin("Each organisation sets how it decides on others' calls")
        await self.policies()

        self.begin("Basra issues a conditional strike call")
        call = await self.issue()

        self.begin("The call reaches the allies")
        sulay = await self.wait_for(self.sulaymaniyah, lambda c: c["proposal"] is not None,
                                    "the call held and its vote open")  # fmt: skip
        say('  Sulaymaniyah holds the call; its members\' vote "do we join?" opened')
        await self.wait_for(self.baghdad, lambda c: True, "the call held")
        say("  Baghdad holds the call; its admins decide")

        self.begin("Each organisation decides")
        await self.decide(sulay)

        self.begin("Members pledge")
        await self.pledge(((self.basra, ["firm", "firm", "conditional", "conditional"]),
                           (self.baghdad, ["firm", "conditional", "conditional"])))  # fmt: skip

        self.begin("Sulaymaniyah's vote closes")
        await self.vote_result()

        self.begin("Sulaymaniyah's members pledge")
        await self.pledge(((self.sulaymaniyah, ["firm", "conditional"]),))

        self.begin("Tallies flow and the threshold is met")
        await self.activation(call["threshold"])

    async def policies(self) -> None:
        vote = {"method": "majority", "fraction": None, "quorum": {"num": 1, "den": 2},
                "hours": 1}  # fmt: skip
        base = {"approval_required": False, "call_issuers": "organisers", "vote": vote}
        await call_api(self.basra.boss, "PUT", self.basra.api + "/policy",
                       base | {"endorsement_by": "admins"})  # fmt: skip
        await call_api(self.sulaymaniyah.boss, "PUT", self.sulaymaniyah.api + "/policy",
                       base | {"endorsement_by": "vote"})  # fmt: skip
        await call_api(self.baghdad.boss, "PUT", self.baghdad.api + "/policy",
                       base | {"endorsement_by": "admins"})  # fmt: skip
        say("  Sulaymaniyah: by member vote (majority, quorum 1/2)")
        say("  Baghdad and Basra: by their admins")

    async def issue(self) -> dict[str, Any]:
        deadline = int(time.time()) + DEADLINE_AFTER
        # Exactly the pledges made below: activation then waits for every tally, so the story
        # prints the same figures each run (a lower bar could be met by a tally one pledge short).
        threshold = {"pledges": 9, "orgs": 3, "deadline": deadline}
        draft = {
            "kind": "strike",
            "title": {"ar": "إضراب عام من أجل الأجور", "ckb": "مانگرتنی گشتی بۆ مووچە",
                      "en": "General strike for wages"},
            "text": {"ar": "نضرب إذا تعهد ما يكفي من العمال.",
                     "ckb": "مان دەگرین ئەگەر کرێکارانی پێویست بەڵێن بدەن.",
                     "en": "We strike if enough workers pledge."},
            "audience": "allies", "location": {"region": "IQ-BA", "place": "Basra"},
            "meeting_point": "the gate of the South Refinery", "sectors": ["oil", "education"],
            "threshold": threshold,
        }  # fmt: skip
        call: dict[str, Any] = await call_api(
            self.basra.boss, "POST", self.basra.api + "/calls", draft
        )
        self.call_hex = call["call"]
        say(f"  call {self.call_hex[:16]}…: at least {threshold['pledges']} pledges across "
            f"{threshold['orgs']} organisations within {DEADLINE_AFTER} s")  # fmt: skip
        return call

    async def decide(self, sulay: dict[str, Any]) -> None:
        number = await self.number(self.baghdad)
        url = f"{self.baghdad.api}/calls/{number}/decision"
        await call_api(self.baghdad.boss, "POST", url, {"join": True})
        say("  Baghdad's admins decided to join")
        proposal = f"{self.sulaymaniyah.api}/proposals/{sulay['proposal']}/vote"
        people = self.sulaymaniyah.people
        yes, no = people[:3], people[3:4]
        for client in yes:
            await call_api(client, "PUT", proposal, {"choice": "option", "option": 0})
        for client in no:
            await call_api(client, "PUT", proposal, {"choice": "option", "option": 1})
        say(f"  Sulaymaniyah: {len(yes)} members voted yes, {len(no)} no, "
            f"{len(people) + 1 - len(yes) - len(no)} did not vote; the vote closes halfway to "
            "the call's pledge deadline")  # fmt: skip

        def baghdad_endorsed(call: dict[str, Any]) -> bool:
            return any(e["verdict"] == "endorse" for e in call["endorsements"])

        await self.wait_for(self.basra, baghdad_endorsed, "Baghdad's endorsement arrived")
        say("  Basra sees: Baghdad endorsed (decided by its admins)")

    async def pledge(self, pledges: tuple[tuple[Org, list[str]], ...]) -> None:
        """The first members of each organisation pledge, one kind each."""
        for org, kinds in pledges:
            url = f"{org.api}/calls/{await self.number(org)}/pledge"
            for client, kind in zip(org.people, kinds, strict=False):
                await call_api(client, "PUT", url, {"kind": kind})
            firm = kinds.count("firm")
            say(f"  {org.key}: {firm} firm and {len(kinds) - firm} conditional pledges")

    async def activation(self, threshold: dict[str, Any]) -> None:
        def activated(call: dict[str, Any]) -> bool:
            return call["activation"] is not None

        for org in self.orgs:
            call = await self.wait_for(org, activated, "the activation held")
            activation = call["activation"]
            tallies = ", ".join(
                f"{self.label(t['name'], t['origin'])}: "
                f"{t['firm']} firm + {t['conditional']} conditional"
                for t in call["tallies"]
            )
            say(f"  {org.key}: ACTIVATED, {activation['pledges']} pledges across "
                f"{activation['orgs']} organisations (needed {threshold['pledges']} across "
                f"{threshold['orgs']}); tallies held: {tallies}")  # fmt: skip

    async def vote_result(self) -> None:
        def teachers(call: dict[str, Any]) -> list[dict[str, Any]]:
            return [e for e in call["endorsements"] if e["by"] == "vote"]

        left = DEADLINE_AFTER / 2 + WAIT
        call = await self.wait_for(self.basra, lambda c: bool(teachers(c)),
                                   "Sulaymaniyah's verdict arrived", within=left)  # fmt: skip
        (verdict,) = teachers(call)
        if verdict["verdict"] != "endorse":
            raise StepFailed(f"Sulaymaniyah's vote did not endorse: {verdict}")
        say(f"  Basra sees: Sulaymaniyah {verdict['verdict']}d the call by member vote "
            f"({verdict['method']}): {verdict['yes']} yes, {verdict['no']} no, turnout "
            f"{verdict['turnout']} of {verdict['electorate']}")  # fmt: skip
        for entry in call["endorsements"]:
            name = self.label(entry["name"], entry["origin"])
            say(f"  {name}: {entry['verdict']} (by {entry['by']})")

    def links(self) -> None:
        say("\n== The nodes are running. Log in:")
        for org in self.orgs:
            say(f"  {org.name}\n    {org.url}/  admin: {org.key}-admin / {PASSWORD}")
            if org.invite_link:
                say(f"    invite for a new member: {org.invite_link}")
        say(f"  (members: <node>-member-N / {PASSWORD}; data and logs in {self.root})")
        say("Press Ctrl-C to stop the nodes.")

    async def fresh_invites(self) -> None:
        for org in self.orgs:
            invite = await call_api(org.boss, "POST", org.api + "/invites", {"role": "member"})
            org.invite_link = invite["link"]


async def _main(args: argparse.Namespace, root: Path) -> int:
    """The story, then (without --check) the running nodes until Ctrl-C or SIGTERM; a signal
    during the story interrupts it. The nodes are stopped in every case."""
    started = time.monotonic()
    demo = Demo(root, args.base_port)
    stop = asyncio.Event()
    story = asyncio.ensure_future(demo.run())

    def interrupt() -> None:
        stop.set()
        story.cancel()  # no-op once the story is over

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, interrupt)
    try:
        await story
        say(f"\nThe story held, in {time.monotonic() - started:.0f} s.")
        if args.check:
            return 0
        await demo.fresh_invites()
        demo.links()
        await stop.wait()
        say("\nStopping the nodes…")
        return 0
    except asyncio.CancelledError:
        print(f"\ntadamun demo: interrupted at step {demo.step!r}", file=sys.stderr)
        return 130
    except (StepFailed, aiohttp.ClientError, OSError) as exc:
        print(f"\ntadamun demo: FAILED at step {demo.step!r}: {exc}", file=sys.stderr)
        for org in demo.orgs:
            print(f"  log of {org.key}: {org.log_path}", file=sys.stderr)
        return 1
    finally:
        await demo.stop()


def _demo(args: argparse.Namespace) -> int:
    """In a fresh directory: the one given (it must be empty), a temporary one removed
    afterwards with ``--check``, else a temporary one kept (the nodes' data and logs)."""
    if args.dir:
        root = Path(args.dir)
        if root.exists() and any(root.iterdir()):
            print(f"tadamun: {root} is not empty; the demo needs a fresh directory",
                  file=sys.stderr)  # fmt: skip
            return 2
        root.mkdir(parents=True, exist_ok=True)
        return asyncio.run(_main(args, root))
    if args.check:
        with tempfile.TemporaryDirectory(prefix="tadamun-demo-") as temporary:
            return asyncio.run(_main(args, Path(temporary)))
    return asyncio.run(_main(args, Path(tempfile.mkdtemp(prefix="tadamun-demo-"))))


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    help_ = "run three local nodes through a strike call, narrated (--check: unattended)"
    parser = commands.add_parser("demo", help=help_, description=help_)
    parser.set_defaults(handler=_demo)
    parser.add_argument("--dir", help="an empty directory for the nodes (default: a temp dir)")
    parser.add_argument(
        "--check",
        action="store_true",
        help="run the story unattended, stop the nodes, exit 0 if it held",
    )
    parser.add_argument("--base-port", type=int,
                        help="ports N, N+1, N+2 (default: free ports)")  # fmt: skip
