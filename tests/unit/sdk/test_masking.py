"""Secrets from connections and sensitive variables are redacted; Variable/Connection lookups."""

from __future__ import annotations

import pytest

from slipstream import Connection, Variable, masking
from slipstream.errors import ConnectionNotFound, VariableNotFound


def test_connection_password_is_registered_and_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_CONN_WAREHOUSE", "postgres://bob:s3cr3t-pw@db:5432/dw")
    assert masking.redact("pw=s3cr3t-pw") == "pw=s3cr3t-pw"  # not read yet
    conn = Connection.get("warehouse")
    assert conn.password == "s3cr3t-pw"
    assert masking.redact("connecting with s3cr3t-pw to db") == "connecting with *** to db"


def test_connection_json_and_sensitive_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SLIPSTREAM_CONN_API",
        '{"conn_type": "http", "host": "api.example.com", "login": "me", '
        '"password": "hunter22", "extra": {"api_key": "k-123456", "region": "eu-west"}}',
    )
    conn = Connection.get("api")
    assert conn.host == "api.example.com"
    assert conn.extra_dejson == {"api_key": "k-123456", "region": "eu-west"}
    assert masking.redact("hunter22 k-123456 eu-west") == "*** *** eu-west"


def test_missing_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConnectionNotFound, match="'nope'"):
        Connection.get("nope")


def test_connection_uri_round_trip() -> None:
    conn = Connection.from_uri("c", "mysql://us%20er:p%2Fw@host.example:3306/db?charset=utf8")
    assert (conn.conn_type, conn.login, conn.password, conn.host, conn.port, conn.schema) == (
        "mysql",
        "us er",
        "p/w",
        "host.example",
        3306,
        "db",
    )
    assert conn.extra_dejson == {"charset": "utf8"}
    again = Connection.from_uri("c", conn.get_uri())
    assert again == conn


def test_sensitive_variable_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_VAR_API_TOKEN", "tok-abcdef")
    monkeypatch.setenv("SLIPSTREAM_VAR_REGION", "eu-central")
    assert Variable.get("api_token") == "tok-abcdef"
    assert Variable.get("region") == "eu-central"
    assert masking.redact("tok-abcdef in eu-central") == "*** in eu-central"


def test_variable_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM_VAR_CFG", '{"a": [1, 2]}')
    assert Variable.get("cfg", deserialize_json=True) == {"a": [1, 2]}
    assert Variable.get("missing", default_var="d") == "d"
    assert Variable.get("missing", default_var=None) is None
    with pytest.raises(VariableNotFound, match="'missing'"):
        Variable.get("missing")
    monkeypatch.setenv("SLIPSTREAM_VAR_BROKEN", "{not json")
    with pytest.raises(VariableNotFound, match=r"'broken'.*JSON"):
        Variable.get("broken", deserialize_json=True)


def test_variable_set_without_database_is_an_error() -> None:
    with pytest.raises(VariableNotFound, match="database"):
        Variable.set("k", "v")


def test_redact_value_masks_sensitive_keys() -> None:
    value = {
        "password": "anything",
        "user": "bob",
        "nested": {"Authorization": "Bearer x", "list": [{"secret_thing": 1}]},
        "empty_token": "",
        "none_secret": None,
    }
    assert masking.redact_value(value) == {
        "password": "***",
        "user": "bob",
        "nested": {"Authorization": "***", "list": [{"secret_thing": "***"}]},
        "empty_token": "",
        "none_secret": None,
    }


def test_redact_value_masks_registered_secrets_inside_strings() -> None:
    masking.mask_secret("topsecret")
    assert masking.redact_value(["x topsecret y", ("topsecret",), 3]) == ["x *** y", ["***"], 3]


def test_mask_secret_details() -> None:
    masking.mask_secret("ab")  # too short to mask
    masking.mask_secret("line-one\nline-two")
    masking.mask_secret({"password": "pw-value", "host": "example.org"}, name="extra")
    assert masking.redact("ab line-two pw-value example.org") == "ab *** *** example.org"
    masking.mask_secret({"host": "example.org"})  # no name: every string is secret
    assert masking.redact("example.org") == "***"


def test_longer_secret_wins_over_its_prefix() -> None:
    masking.mask_secret("abc")
    masking.mask_secret("abcdef")
    assert masking.redact("abcdef abc") == "*** ***"


def test_reset_forgets_secrets() -> None:
    masking.mask_secret("forget-me")
    masking.reset()
    assert masking.redact("forget-me") == "forget-me"


def test_sensitive_words_can_be_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(masking, "_sensitive_words", masking.DEFAULT_SENSITIVE_WORDS)
    assert not masking.is_sensitive_key("pin_code")
    masking.set_sensitive_words(["PIN", ""])
    assert masking.is_sensitive_key("my_pin_code")
    assert not masking.is_sensitive_key("password")
