"""The typed configuration: defaults, TOML file, environment, errors, and its documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from slipstream.config import describe, load_config
from slipstream.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_live_under_home(tmp_path: Path) -> None:
    config = load_config({"SLIPSTREAM_HOME": str(tmp_path)})
    assert config.home == tmp_path
    assert config.dags_folder == tmp_path / "dags"
    assert config.log_folder == tmp_path / "logs"
    assert config.database_url == f"sqlite:///{tmp_path / 'slipstream.db'}"
    assert config.core.load_examples is True
    assert all(source == "default" for source in config.sources.values())


def test_file_then_environment_take_precedence(tmp_path: Path) -> None:
    (tmp_path / "slipstream.toml").write_text(
        '[core]\ndags_folder = "/srv/dags"\nmax_active_tasks_per_dag = 4\n'
        '[database]\nurl = "sqlite:///from-file.db"\n'
    )
    env = {
        "SLIPSTREAM_HOME": str(tmp_path),
        "SLIPSTREAM__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
        "SLIPSTREAM__CORE__LOAD_EXAMPLES": "false",
    }
    config = load_config(env)
    assert config.dags_folder == Path("/srv/dags")
    assert config.core.max_active_tasks_per_dag == 8
    assert config.core.load_examples is False
    assert config.database_url == "sqlite:///from-file.db"
    assert config.sources["core.dags_folder"] == "file"
    assert config.sources["core.max_active_tasks_per_dag"] == "env"
    assert config.sources["core.default_timezone"] == "default"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"SLIPSTREAM__CORE__LOAD_EXAMPLES": "perhaps"},
            "core.load_examples must be true or false",
        ),
        (
            {"SLIPSTREAM__CORE__DEFAULT_POOL_SLOTS": "many"},
            "core.default_pool_slots must be an integer",
        ),
        (
            {"SLIPSTREAM__CORE__NO_SUCH_KEY": "1"},
            "SLIPSTREAM__CORE__NO_SUCH_KEY names no configuration key",
        ),
        ({"SLIPSTREAM__NOSECTION": "1"}, "names no configuration key"),
    ],
)
def test_bad_environment_values_are_named(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"SLIPSTREAM_HOME": str(tmp_path), **env})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[core\n", "is not valid TOML"),
        ("[nope]\nx = 1\n", r"unknown section \[nope\]"),
        ("[core]\ntypo = 1\n", "unknown key core.typo"),
        ("[core]\ndag_file_processor_timeout = true\n", "must be a number"),
    ],
)
def test_bad_file_is_named(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "slipstream.toml").write_text(content)
    with pytest.raises(ConfigError, match=message):
        load_config({"SLIPSTREAM_HOME": str(tmp_path)})


def test_every_key_is_documented(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = describe(load_config({"SLIPSTREAM_HOME": str(tmp_path)}))
    assert rows
    for row in rows:
        assert row["doc"], f"{row['key']} has no description"
        assert f"`{row['env']}`" in doc, f"{row['key']} is missing from docs/configuration.md"


def test_cli_help_lists_every_group_with_its_own_summary() -> None:
    """The root help is written by hand (to keep start-up light): it must match the groups."""
    import importlib

    main_module = importlib.import_module("slipstream.cli.main")

    assert set(main_module._SUMMARIES) == set(main_module._GROUPS) | set(main_module._COMMANDS)
    for name, module in main_module._GROUPS.items():
        group = importlib.import_module(module).group
        assert group.name == name
        first_words = main_module._SUMMARIES[name].split()[:2]
        assert (group.help or "").split()[:2] == first_words, name
    for name, (module, attribute) in main_module._COMMANDS.items():
        command = getattr(importlib.import_module(module), attribute)
        assert command.name == name
        first_words = main_module._SUMMARIES[name].split()[:2]
        assert (command.help or "").split()[:2] == first_words, name
