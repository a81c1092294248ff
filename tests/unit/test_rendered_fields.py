"""Rendered template fields made fit to store (``worker.rendered``), and carried from the
task's child to its supervisor in ``TryOutcome``."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

from slipstream import masking
from slipstream.states import TaskInstanceState
from slipstream.worker.execution import TryOutcome
from slipstream.worker.rendered import MAX_FIELD_BYTES, storable_rendered_fields


class Opaque:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return f"Opaque({self.secret})"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no")


def test_json_values_stay_and_others_become_their_masked_repr() -> None:
    masking.mask_secret("hunter22")
    stored = storable_rendered_fields(
        {
            "command": "echo hi",
            "numbers": (1, 2.5, None, True),
            "when": datetime(2024, 1, 2, 3, tzinfo=UTC),
            "day": date(2024, 1, 2),
            "nested": {1: {"tags": frozenset({"b", "a"})}},
            "opaque": Opaque("hunter22"),
            "broken": BrokenRepr(),
            "nan": float("nan"),
        }
    )
    assert stored == {
        "command": "echo hi",
        "numbers": [1, 2.5, None, True],
        "when": "2024-01-02T03:00:00+00:00",
        "day": "2024-01-02",
        "nested": {"1": {"tags": ["a", "b"]}},
        "opaque": "Opaque(***)",
        "broken": "<BrokenRepr (its repr failed)>",
        "nan": "nan",
    }
    json.dumps(stored)  # all of it JSON


def test_each_field_is_capped_on_its_own() -> None:
    small = "é" * 100
    huge = "é" * MAX_FIELD_BYTES  # two bytes each
    stored = storable_rendered_fields(
        {"small": small, "huge": huge, "list": ["x" * MAX_FIELD_BYTES]}
    )
    assert stored["small"] == small
    head, note = stored["huge"].split("\n... ")
    assert len(head.encode()) <= MAX_FIELD_BYTES and head == "é" * (MAX_FIELD_BYTES // 2)
    assert note == (
        f"(truncated: the rendered value is {2 * MAX_FIELD_BYTES} bytes; "
        f"the first {MAX_FIELD_BYTES} are kept)"
    )
    # a structure over the cap is kept as the start of its JSON text
    assert stored["list"].startswith('["xxx') and "truncated" in stored["list"]


def test_a_self_referencing_value_ends_as_a_repr() -> None:
    loop: list[object] = []
    loop.append(loop)
    stored = storable_rendered_fields({"loop": loop})
    json.dumps(stored)
    assert "[...]" in json.dumps(stored)


def test_the_outcome_carries_the_fields_through_json() -> None:
    outcome = TryOutcome(TaskInstanceState.SUCCESS, rendered_fields={"cmd": "echo ***"})
    assert TryOutcome.from_json(outcome.to_json()) == outcome
    bare = TryOutcome(TaskInstanceState.FAILED, "boom")
    assert TryOutcome.from_json(bare.to_json()).rendered_fields is None
    # what an older child sent (no such key) still reads
    old = json.dumps({"state": "success", "error": None, "xcoms": {}, "skip_task_ids": []})
    assert TryOutcome.from_json(old).rendered_fields is None
