"""``tadamun demo --check`` from the outside: the whole story (three nodes, a strike call, a
member vote, pledges, activation on all three) runs unattended and exits 0, in bounded time."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cluster import CLI, environment

WITHIN = 240.0  # seconds: the story takes about 70 (the teachers' vote lasts about 45)


async def demo(*args: str, within: float) -> tuple[int, str, str]:
    """Run ``tadamun demo``; its exit status, standard output and error."""
    process = await asyncio.create_subprocess_exec(
        *CLI, "demo", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )  # fmt: skip
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    except TimeoutError:
        process.terminate()  # the demo stops its nodes on SIGTERM
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_demo_story_holds(tmp_path: Path) -> None:
    status, out, err = await demo("--check", "--dir", str(tmp_path / "demo"), within=WITHIN)
    assert status == 0, out + err
    assert out.count("ACTIVATED, 9 pledges across 3 organisations") == 3, out
    assert "by member vote (majority): 3 yes, 1 no, turnout 4 of 6" in out, out
    assert "The story held" in out


async def test_the_demo_refuses_a_directory_in_use(tmp_path: Path) -> None:
    used = tmp_path / "something"
    used.write_bytes(b"mine")
    status, _, err = await demo("--check", "--dir", str(tmp_path), within=60)
    assert status == 2
    assert "not empty" in err
    assert used.read_bytes() == b"mine"
    assert not (tmp_path / "basra").exists()
