"""The marker of a field a partial update leaves as it is.

``patch_connection(..., host=KEEP)`` keeps the host, ``host=None`` clears it: a PATCH body
says which fields it changes by naming them, and null is a value like any other.
"""

from __future__ import annotations

from enum import Enum
from typing import Final, Literal, TypeAlias


class _Keep(Enum):
    KEEP = "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final = _Keep.KEEP
#: the type of a parameter that may be KEEP
Keep: TypeAlias = Literal[_Keep.KEEP]
