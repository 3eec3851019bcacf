"""Waiting in the federation loops: sleep on the injected clock until a time has passed or
someone has new work, whichever comes first."""

from __future__ import annotations

import asyncio
import contextlib

from node.clock import Clock

__all__ = ["sleep_or_wake"]


async def sleep_or_wake(clock: Clock, kick: asyncio.Event, seconds: float) -> None:
    """Return after ``seconds`` of ``clock``, or as soon as ``kick`` is set."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    woken = asyncio.ensure_future(kick.wait())
    try:
        await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, woken):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(sleeper, woken)
