"""Typed errors. Each carries a code a client can act on and one line for a person."""

from __future__ import annotations

from typing import ClassVar


class SwarmError(Exception):
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_wire(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class NotFound(SwarmError):
    code = "not_found"


class InvalidArgument(SwarmError):
    code = "invalid_argument"


class AlreadyExists(SwarmError):
    code = "already_exists"


class FailedPrecondition(SwarmError):
    code = "failed_precondition"


class PermissionDenied(SwarmError):
    code = "permission_denied"


class Unavailable(SwarmError):
    code = "unavailable"


class DeadlineExceeded(SwarmError):
    code = "deadline_exceeded"


class Internal(SwarmError):
    code = "internal"


class Conflict(FailedPrecondition):
    """An optimistic write lost to a newer version; re-read and retry."""


_BY_CODE: dict[str, type[SwarmError]] = {
    cls.code: cls
    for cls in (
        NotFound,
        InvalidArgument,
        AlreadyExists,
        FailedPrecondition,
        PermissionDenied,
        Unavailable,
        DeadlineExceeded,
        Internal,
    )
}


def error_from_wire(obj: object) -> SwarmError:
    if isinstance(obj, dict):
        code = obj.get("code")
        message = obj.get("message")
        if isinstance(code, str) and isinstance(message, str):
            return _BY_CODE.get(code, Internal)(message)
    return Internal(f"malformed error reply: {obj!r}")
