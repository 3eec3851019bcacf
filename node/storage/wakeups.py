"""Waking a scheduler when a transaction that gave it work commits.

A service notes a topic on its session (:func:`note`: a vote opened, tallies of a call
changed); after that transaction commits, every callback registered for the topic on the same
session factory runs (:func:`on_commit`), so the scheduler looks at once instead of at its
next idle pass. A rollback forgets the note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from node.storage.outbox import own_session_class

__all__ = ["CALLS", "DECISIONS", "note", "on_commit"]

DECISIONS: Final = "tadamun.wake.decisions"  # a proposal was created: its opening and closing
CALLS: Final = "tadamun.wake.calls"  # tallies of a call changed: check its activation


def note(session: AsyncSession | Session, topic: str) -> None:
    """Wake ``topic``'s schedulers once this session's transaction commits."""
    session.info[topic] = True


def on_commit(
    sessions: async_sessionmaker[Any], topic: str, wake: Callable[[], None]
) -> Callable[[], None]:
    """Call ``wake()`` after each commit of a session made by ``sessions`` that noted
    ``topic``; return the function that stops listening."""
    target = own_session_class(sessions)

    def committed(session: Session) -> None:
        if session.info.pop(topic, False):
            wake()

    def rolled_back(session: Session) -> None:
        session.info.pop(topic, None)

    event.listen(target, "after_commit", committed)
    event.listen(target, "after_rollback", rolled_back)

    def stop() -> None:
        event.remove(target, "after_commit", committed)
        event.remove(target, "after_rollback", rolled_back)

    return stop
