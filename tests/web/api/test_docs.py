"""docs/api.md lists every operation the API serves."""

from __future__ import annotations

from pathlib import Path

from slipstream.api import registry

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"


def test_every_operation_is_in_the_api_docs() -> None:
    text = DOC.read_text()
    missing = [
        f"{op.method} {op.path}"
        for op in registry.operations
        if f"| `{op.method}` | `{op.path}` |" not in text
    ]
    assert not missing, f"docs/api.md does not list: {', '.join(missing)}"
