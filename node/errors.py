"""Errors the node raises towards clients: an internal message for logs, a safe message and
a stable code for the client, and the HTTP status (STYLE.md §17)."""

from __future__ import annotations

__all__ = ["NodeError"]


class NodeError(Exception):
    def __init__(self, status: int, code: str, message: str, internal: str = "") -> None:
        super().__init__(internal or message)
        self.status = status
        self.code = code
        self.message = message
