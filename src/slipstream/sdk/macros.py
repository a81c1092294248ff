"""``macros`` in templates: the helpers Airflow offers under the same names."""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import date, datetime, timedelta
from types import SimpleNamespace


def ds_add(ds: str, days: int) -> str:
    """Add (or subtract) ``days`` to a ``YYYY-MM-DD`` date: ``ds_add('2024-01-05', -4)``."""
    if not days:
        return str(ds)
    return (date.fromisoformat(ds) + timedelta(days=days)).isoformat()


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """Reformat a date string: ``ds_format('2024-01-05', '%Y-%m-%d', '%m-%d-%y')``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)


def datetime_diff_for_humans(dt: datetime, since: datetime | None = None) -> str:
    since = since or datetime.now(dt.tzinfo)
    seconds = int(abs((since - dt).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} {'ago' if dt < since else 'from now'}"
    return "just now"


def build_macros() -> SimpleNamespace:
    return SimpleNamespace(
        ds_add=ds_add,
        ds_format=ds_format,
        datetime_diff_for_humans=datetime_diff_for_humans,
        datetime=datetime,
        timedelta=timedelta,
        date=date,
        time=time,
        uuid=uuid,
        random=random,
        json=json,
    )
