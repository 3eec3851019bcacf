"""Decoding and verifying an inbox batch in slices (node.federation.inbox): CPU work of
tens of milliseconds, with a turn of the event loop between slices while another batch is
being written, whose statements each need one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Final

from node.federation.batch import Checked, Item, decode_item, preverify
from protocol import KeyState

__all__ = ["DECODE_SLICE", "VERIFY_SLICE", "decode_sliced", "pause", "preverify_sliced"]

# Decoding and verifying a batch take tens of milliseconds of the event loop's time, done
# in slices with a turn of the loop between them: otherwise the batch being written
# meanwhile (one statement per turn of the loop) would wait that long for each statement,
# and hold the inbox's turn that much longer. A slice is a millisecond or so of work.
DECODE_SLICE: Final = 64
VERIFY_SLICE: Final = 16


async def decode_sliced(raws: Sequence[bytes], writing: Callable[[], bool]) -> list[Item | str]:
    """:func:`decode_item` of each, in slices (see :data:`DECODE_SLICE`)."""
    decoded: list[Item | str] = []
    for start in range(0, len(raws), DECODE_SLICE):
        await pause(start, writing)
        decoded += [
            decode_item(start + i, raw) for i, raw in enumerate(raws[start : start + DECODE_SLICE])
        ]
    return decoded


async def preverify_sliced(
    items: list[Item],
    states: dict[bytes, KeyState | None],
    held: set[bytes],
    now: int,
    writing: Callable[[], bool],
) -> dict[int, Checked]:
    """:func:`preverify` of the items, in slices (see :data:`VERIFY_SLICE`)."""
    checked: dict[int, Checked] = {}
    for start in range(0, len(items), VERIFY_SLICE):
        await pause(start, writing)
        checked.update(preverify(items[start : start + VERIFY_SLICE], states, held, now=now))
    return checked


async def pause(start: int, writing: Callable[[], bool]) -> None:
    """A turn of the event loop between two slices when a batch is being written (or about
    to be), which needs one for each of its statements; else none (a turn costs about as
    much as verifying a quarter of a signature)."""
    if start and writing():
        await asyncio.sleep(0)
