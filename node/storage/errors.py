"""What repository functions raise: never HTTP errors (STYLE.md §10). Services translate
these into :class:`node.errors.NodeError` with a code that fits the request."""

from __future__ import annotations

__all__ = ["Conflict", "NotFound", "StorageError"]


class StorageError(Exception):
    """Base of the storage errors."""


class NotFound(StorageError):
    """The row asked for does not exist."""


class Conflict(StorageError):
    """The change would break a uniqueness rule or a condition it was made under."""
