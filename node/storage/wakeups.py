"""Waking a worker when a transaction that gave it work commits.

A service notes a topic on its session (:func:`note`: a vote opened, tallies of a call
changed), or a value under a key of ``session.info`` (the outbox's peers to wake, catch-up's
origins to pull); after that transaction commits, every callback registered for it on the same
session factory runs (:func:`on_commit`, :func:`listen`), so the worker looks at once instead
of at its next idle pass. A rollback forgets what was noted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

__all__ = ["CALLS", "DECISIONS", "listen", "note", "on_commit", "own_session_class"]

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
    return listen(sessions, topic, lambda _: wake())


def listen(
    sessions: async_sessionmaker[Any], key: str, receive: Callable[[Any], None]
) -> Callable[[], None]:
    """Call ``receive(value)`` after each commit of a session made by ``sessions`` whose
    ``info[key]`` holds a value (one that is not empty); return the function that stops
    listening."""
    target = own_session_class(sessions)

    def committed(session: Session) -> None:
        value = session.info.pop(key, None)
        if value:
            receive(value)

    def rolled_back(session: Session) -> None:
        session.info.pop(key, None)

    event.listen(target, "after_commit", committed)
    event.listen(target, "after_rollback", rolled_back)

    def stop() -> None:
        event.remove(target, "after_commit", committed)
        event.remove(target, "after_rollback", rolled_back)

    return stop


def own_session_class(sessions: async_sessionmaker[Any]) -> type[Session]:
    """The Session subclass of ``sessions``, to listen to its events alone
    (:func:`node.storage.db.session_factory` gives each factory its own)."""
    target: type[Session] = sessions.kw["sync_session_class"]
    if target is Session:
        raise ValueError("the session factory needs its own Session subclass")
    return target
