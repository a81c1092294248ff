"""Fernet keys: generated once with mode 0600, racing processes agree, rotation, bad keys."""

from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from slipstream.config import load_config
from slipstream.errors import ConfigError
from slipstream.store import crypto


def test_key_file_is_generated_once_with_mode_0600(home: Path) -> None:
    config = load_config()
    assert not home.exists()  # the home is created on demand
    first = crypto.load_fernet(config)
    key_file = config.fernet_key_file
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = crypto.encrypt(first, "hello")
    assert crypto.decrypt(crypto.load_fernet(load_config()), token, what="x") == "hello"
    assert [p.name for p in home.iterdir()] == ["fernet.key"]  # no temporary file left


def test_racing_first_uses_agree_on_one_key(home: Path) -> None:
    config = load_config()
    tokens: list[bytes] = []
    barrier = threading.Barrier(8)

    def use() -> None:
        barrier.wait()
        tokens.append(crypto.encrypt(crypto.load_fernet(config), "same"))

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = crypto.load_fernet(config)
    assert len(tokens) == 8
    assert all(crypto.decrypt(final, t, what="x") == "same" for t in tokens)


def test_configured_keys_rotate(monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", old)
    token = crypto.encrypt(crypto.load_fernet(load_config()), "secret")

    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", f"{new}, {old}")
    both = crypto.load_fernet(load_config())
    assert crypto.decrypt(both, token, what="x") == "secret"
    rotated = crypto.rotate(both, token, what="x")

    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", new)
    only_new = crypto.load_fernet(load_config())
    assert crypto.decrypt(only_new, rotated, what="x") == "secret"
    with pytest.raises(ConfigError, match="cannot decrypt connection 'c': the Fernet key changed"):
        crypto.decrypt(only_new, token, what="connection 'c'")


def test_a_bad_key_is_a_clear_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIPSTREAM__SECRETS__FERNET_KEY", "not-a-key-at-all")
    with pytest.raises(ConfigError, match="not a valid Fernet key") as info:
        crypto.load_fernet(load_config())
    assert "not-a-key-at-all" not in str(info.value)  # a key, even a broken one, is secret
