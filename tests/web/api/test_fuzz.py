"""The API fuzzed from its own OpenAPI document (schemathesis): for every operation, data
the document allows and data it forbids, sent as an Admin. No answer may be a 5xx, and
every answer must be one the document declares: its status code, its content type and
its body's schema.

The path ids are pinned to objects that exist (the demo DAG, its run r1, ...), so the
generated bodies and queries reach the code behind the lookups; unknown ids and bad path
values are covered by the other tests of this folder. Derandomized and bounded, so it is
the same quick run every time.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.generation import GenerationMode

from slipstream.roles import Role
from slipstream.states import TaskInstanceState

from .conftest import Api

CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


#: the objects the fixture creates, for every path parameter of that name
PATH_VALUES = {
    "dag_id": "demo",
    "dag_run_id": "r1",
    "task_id": "extract",
    "try_number": 1,
    "xcom_key": "k",
    "variable_key": "v1",
    "connection_id": "c1",
    "pool_name": "p1",
}


@pytest.fixture
def api_schema(api: Api) -> Any:
    """The document as the app serves it, with checks and an Admin's credentials set."""
    api.trigger("r1")
    api.run_try("r1", "extract", TaskInstanceState.SUCCESS, log="line\n", xcoms={"k": "[1]"})
    api.post("/variables", {"key": "v1", "value": "x"})
    api.post("/connections", {"connection_id": "c1", "conn_type": "http", "password": "pw"})
    api.post("/pools", {"name": "p1", "slots": 1})
    config = SchemathesisConfig.from_dict(
        {
            "headers": api.web.api_headers(Role.ADMIN),
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api.web.app, config=config)


def test_every_operation_answers_as_documented(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 35
    failures: list[str] = []
    for operation in operations:
        fixed = {p.name: PATH_VALUES[p.name] for p in operation.path_parameters}
        # data the document forbids only where there is a query or a body to get wrong
        negative = bool(operation.query or operation.body)
        modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if negative else [])
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode, path_parameters=fixed)

            @given(case=strategy)
            @settings(
                max_examples=15,
                derandomize=True,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def answers_as_documented(case: Any) -> None:
                case.call_and_validate()

            # every operation runs, then all that failed are reported together
            try:
                answers_as_documented()
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value} data):\n{exc}")
    assert not failures, "\n\n".join(failures)


def test_the_document_is_valid_openapi_3_1(api: Api) -> None:
    document = api.get("/openapi.json", role=None)
    assert document["openapi"] == "3.1.0"
    loaded = schemathesis.openapi.from_dict(document)
    loaded.validate()  # against the OpenAPI 3.1 meta-schema: raises when it is not
    # every schema in it is a valid JSON Schema 2020-12 (the meta-schema above skips them)
    for component in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(component)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["operationId"] and operation["summary"], where
            for param in operation.get("parameters", []):
                jsonschema.Draft202012Validator.check_schema(param["schema"])
            for response in operation["responses"].values():
                for content in response.get("content", {}).values():
                    jsonschema.Draft202012Validator.check_schema(content["schema"])
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
