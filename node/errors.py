"""Errors the node raises towards clients: an internal message for logs, a safe message and
a stable code for the client, and the HTTP status (STYLE.md §17).

The small constructors below keep the codes uniform; README's API section lists them all.
"""

from __future__ import annotations

__all__ = ["NodeError", "bad_request", "conflict", "forbidden", "invalid_field", "not_found"]


class NodeError(Exception):
    """``retry_after`` (seconds), when set, is sent as the ``Retry-After`` header (429, 503)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        internal: str = "",
        *,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(internal or message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def bad_request(code: str, message: str) -> NodeError:
    return NodeError(400, code, message)


def invalid_field(field: str, problem: str, code: str = "invalid_field") -> NodeError:
    """A request field that breaks a rule; the message names the field."""
    return NodeError(400, code, f"field {field!r}: {problem}")


def forbidden(code: str, message: str) -> NodeError:
    return NodeError(403, code, message)


def not_found(what: str) -> NodeError:
    return NodeError(404, "not_found", f"no such {what}")


def conflict(code: str, message: str) -> NodeError:
    return NodeError(409, code, message)
