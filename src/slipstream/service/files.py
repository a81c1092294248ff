"""Reading the JSON files users import (variables, pools): one clear sentence per problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slipstream.errors import InvalidInputError


def read_json_object(path: Path, what: str) -> dict[str, Any]:
    """The JSON object in ``path``; ``what`` names the file in errors ("variables file")."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{what} {path} must hold a JSON object, not a {type(data).__name__}"
        )
    return data
