"""What the endpoint modules share: the pagination parameters and dates in and out."""

from __future__ import annotations

from datetime import UTC, datetime

from slipstream.api.registry import Query
from slipstream.errors import InvalidInputError

LIMIT = Query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})
OFFSET = Query("offset", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0})


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def body_datetime(value: str | None, field: str) -> datetime | None:
    """An ISO 8601 date-time from a request body, as given (a naive one stays naive, for
    the caller to read in the right time zone); one sentence when it is not one."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
        if parsed.tzinfo is not None:
            parsed.astimezone(UTC)  # out of range once in UTC: refuse it here, not later
        return parsed
    except (ValueError, OverflowError):
        raise InvalidInputError(
            f"{field} must be an ISO 8601 date-time (e.g. 2024-01-31T06:00:00+00:00), "
            f"not {value[:40]!r}"
        ) from None
