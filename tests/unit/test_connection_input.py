"""Turning what a user types into a Connection: URI, Airflow's JSON form, or fields."""

from __future__ import annotations

import json

import pytest

from slipstream.errors import InvalidInputError
from slipstream.sdk.connection import Connection
from slipstream.service.connections import build_connection


def test_json_form_gives_every_field() -> None:
    text = json.dumps(
        {
            "conn_type": "postgres",
            "host": "db",
            "login": "etl",
            "password": "p@ss:word",
            "schema": "dw",
            "port": 5432,
            "extra": {"sslmode": "require"},
            "description": "warehouse",
        }
    )
    conn = build_connection("dw", json_text=text)
    assert (conn.conn_type, conn.host, conn.login, conn.password, conn.schema, conn.port) == (
        "postgres",
        "db",
        "etl",
        "p@ss:word",
        "dw",
        5432,
    )
    assert conn.extra_dejson == {"sslmode": "require"}
    assert conn.description == "warehouse"
    assert Connection.from_uri("dw", conn.get_uri()).password == "p@ss:word"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"json_text": "{nope"}, "--conn-json is not valid JSON"),
        ({"json_text": "[1]"}, "--conn-json must be a JSON object"),
        ({"json_text": '{"conn_type": "x", "hots": "h"}'}, "unknown fields: hots"),
        ({"json_text": '{"conn_type": "x", "port": "80"}'}, "port must be an integer"),
        ({"json_text": '{"host": "h"}'}, "needs a conn_type in its JSON"),
        ({"json_text": '{"conn_type": "x"}', "uri": "x://h"}, "not both"),
        ({"json_text": '{"conn_type": "x"}', "host": "h"}, r"not both \(also got host\)"),
    ],
)
def test_bad_json_input_is_one_sentence(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build_connection("c", **kwargs)  # type: ignore[arg-type]
