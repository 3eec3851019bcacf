"""The one clock of the node (STYLE.md §15): code asks it for the time and for sleeps.

Tests pass a :class:`FakeClock` and advance it instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "FakeClock", "SystemClock"]


class Clock(Protocol):
    def now(self) -> int:
        """Unix time in whole seconds, the unit of every protocol timestamp."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> int:
        return int(time.time())

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class FakeClock:
    """A clock that moves only when told to; sleepers wake when their time has come."""

    def __init__(self, start: int = 1_800_000_000) -> None:
        self._now = float(start)
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def now(self) -> int:
        return int(self._now)

    def advance(self, seconds: float) -> None:
        self._now += seconds
        due = [w for w in self._waiters if w[0] <= self._now]
        self._waiters = [w for w in self._waiters if w[0] > self._now]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._now + seconds, future))
        await future
