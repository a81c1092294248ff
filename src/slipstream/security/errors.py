"""The HTTP status of each error in the exception tree: one table for pages and API."""

from __future__ import annotations

from slipstream.errors import (
    AlreadyExistsError,
    AuthenticationError,
    DatabaseError,
    InvalidInputError,
    InvalidStateTransition,
    NotFoundError,
    PermissionDenied,
    SlipstreamError,
)

_STATUS: tuple[tuple[type[SlipstreamError], int], ...] = (
    (AuthenticationError, 401),
    (PermissionDenied, 403),
    (NotFoundError, 404),
    (AlreadyExistsError, 409),
    (InvalidStateTransition, 409),
    (InvalidInputError, 400),
    (DatabaseError, 503),
)


def http_status(exc: SlipstreamError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400
