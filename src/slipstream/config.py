"""The one typed configuration of slipstream.

Values come, in rising order of precedence, from the defaults below, the TOML file
``$SLIPSTREAM_HOME/slipstream.toml`` and environment variables named
``SLIPSTREAM__SECTION__KEY``. :func:`load_config` builds the object once at an entry point
(CLI command, server start) and passes it down; no module reads configuration at import.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from slipstream.errors import ConfigError
from slipstream.masking import DEFAULT_SENSITIVE_WORDS

CONFIG_FILE_NAME = "slipstream.toml"
ENV_PREFIX = "SLIPSTREAM__"


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its documentation (shown by ``slipstream config list``)."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class CoreConfig:
    dags_folder: str = _doc(
        "Folder searched (recursively) for DAG files. Default: $SLIPSTREAM_HOME/dags.", default=""
    )
    load_examples: bool = _doc("Also load the example DAGs shipped with slipstream.", default=True)
    dag_file_processor_timeout: float = _doc(
        "Seconds a single DAG file may take to import before it is recorded as an import error.",
        default=30.0,
    )
    default_timezone: str = _doc(
        "Time zone of naive start_date/end_date values in DAG files (IANA name).", default="UTC"
    )
    max_active_runs_per_dag: int = _doc(
        "Default max_active_runs for DAGs that do not set it.", default=16
    )
    max_active_tasks_per_dag: int = _doc(
        "Default max_active_tasks for DAGs that do not set it.", default=16
    )
    default_pool_slots: int = _doc("Slots of the built-in 'default_pool'.", default=128)
    killed_task_cleanup_time: float = _doc(
        "Seconds a task gets after SIGTERM (on timeout) before it is killed.", default=5.0
    )
    executor: str = _doc(
        "How queued tasks reach workers: local (workers claim them from the database; one "
        "machine, or several sharing PostgreSQL) or celery (a message per task through the "
        "broker of the [celery] section, for `slipstream celery worker` on any host).",
        default="local",
    )


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = _doc(
        "SQLAlchemy URL of the metadata database. Default: SQLite at $SLIPSTREAM_HOME/slipstream.db "
        "(WAL mode). For PostgreSQL: postgresql+psycopg://user:pass@host/db.",
        default="",
    )
    echo: bool = _doc("Log every SQL statement (debugging only).", default=False)
    connect_timeout: float = _doc(
        "Seconds to wait when connecting before the database counts as unreachable.", default=10.0
    )


@dataclass(frozen=True)
class LoggingConfig:
    base_log_folder: str = _doc(
        "Folder of task logs, one file per try. Default: $SLIPSTREAM_HOME/logs.", default=""
    )
    level: str = _doc("Level of slipstream's own log messages.", default="INFO")
    ship_to_database: str = _doc(
        "Workers also copy each try's log into the metadata database, so the web server and "
        "`tasks logs` on any host can show it: auto (on unless core.executor is local), "
        "true or false. Shown about one worker heartbeat interval behind.",
        default="auto",
    )
    max_shipped_bytes_per_try: int = _doc(
        "Most bytes of one try's log copied into the database; past it a '[log truncated]' "
        "line ends the copy (the file keeps everything).",
        default=10 * 1024 * 1024,
    )


@dataclass(frozen=True)
class SecretsConfig:
    fernet_key: str = _doc(
        "Fernet key that encrypts connection passwords/extras and secret variables at rest. "
        "Default: generated on first use into $SLIPSTREAM_HOME/fernet.key (mode 0600).",
        default="",
    )
    sensitive_variable_fields: str = _doc(
        "Comma-separated words; a variable or connection-extra key containing one of them is "
        "masked in logs, rendered templates and listings.",
        default=",".join(DEFAULT_SENSITIVE_WORDS),
    )


@dataclass(frozen=True)
class SchedulerConfig:
    parallelism: int = _doc(
        "Most task instances queued or running at once, across all DAGs.", default=32
    )
    dags_are_paused_at_creation: bool = _doc(
        "New DAGs start paused: no scheduled runs until `slipstream dags unpause`.", default=True
    )
    max_dagruns_to_create_per_loop: int = _doc(
        "Most scheduled runs one DAG gets per scheduler pass (catchup proceeds in steps).",
        default=10,
    )
    task_heartbeat_timeout: float = _doc(
        "Seconds without a heartbeat after which a running try counts as lost (its worker "
        "died) and is retried or failed by its retries.",
        default=30.0,
    )
    sweep_interval: float = _doc(
        "Seconds between safety passes over every running DAG run. Work is event-driven; "
        "this only bounds the delay if a wake-up is lost.",
        default=10.0,
    )
    heartbeat_interval: float = _doc(
        "Seconds between the scheduler's own heartbeats (shown as its health).", default=5.0
    )
    resend_queued_after: float = _doc(
        "Seconds a task may stay queued before the scheduler sends it to the executor again "
        "(at most once per this interval): a message lost with a broker restart is delivered; "
        "with the local executor it only wakes the workers.",
        default=60.0,
    )


@dataclass(frozen=True)
class WorkerConfig:
    concurrency: int = _doc("Tasks one worker runs at once.", default=8)
    queues: str = _doc("Comma-separated queues a worker serves.", default="default")
    heartbeat_interval: float = _doc(
        "Seconds between a worker's heartbeats for itself and its running tries; keep it well "
        "under scheduler.task_heartbeat_timeout.",
        default=5.0,
    )
    shutdown_timeout: float = _doc(
        "Seconds a worker told to stop (SIGTERM) lets running tasks finish before it stops them.",
        default=60.0,
    )


@dataclass(frozen=True)
class CeleryConfig:
    broker_url: str = _doc(
        "Broker of the Celery executor: redis://host:6379/0 or amqp://user:pass@host:5672/vhost.",
        default="redis://127.0.0.1:6379/0",
    )
    worker_concurrency: int = _doc(
        "Tasks one `slipstream celery worker` runs at once (its prefork pool processes).",
        default=8,
    )
    visibility_timeout: float = _doc(
        "Redis only: seconds before a message not yet acknowledged is delivered again. A task's "
        "message is acknowledged when the task ends, so keep this above the longest task "
        "(a redelivery of a running task is ignored, but costs a message).",
        default=21600.0,
    )
    connect_timeout: float = _doc(
        "Seconds to wait for the broker when connecting or sending before giving up; a task "
        "that could not be sent stays queued and is sent again later.",
        default=5.0,
    )


@dataclass(frozen=True)
class DagProcessorConfig:
    refresh_interval: float = _doc(
        "Seconds between checks of the DAG folder for new, changed and deleted files.",
        default=5.0,
    )


@dataclass(frozen=True)
class WebserverConfig:
    host: str = _doc("Address the web server listens on.", default="127.0.0.1")
    port: int = _doc("Port of the web UI and the REST API.", default=8080)
    threads: int = _doc("Requests the web server handles at once (threads).", default=8)
    secret_key: str = _doc(
        "Key that signs session cookies, CSRF tokens and API tokens. "
        "Default: generated on first use into $SLIPSTREAM_HOME/webserver_secret.key (mode 0600).",
        default="",
    )
    session_lifetime_minutes: int = _doc(
        "Minutes a login lasts before the user must log in again.", default=720
    )
    api_token_lifetime_minutes: int = _doc(
        "Minutes a token from POST /api/v1/auth/token stays valid.", default=60
    )
    cookie_secure: bool = _doc(
        "Send cookies over HTTPS only; turn on when the UI is served behind TLS.", default=False
    )
    max_request_bytes: int = _doc(
        "Largest request body accepted; larger ones are refused with 413.", default=1_048_576
    )
    refresh_interval: float = _doc(
        "Seconds between live updates of a page that shows running work.", default=2.0
    )


@dataclass(frozen=True)
class Config:
    home: Path
    core: CoreConfig = field(default_factory=CoreConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    secrets: SecretsConfig = field(default_factory=SecretsConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    worker: WorkerConfig = field(default_factory=WorkerConfig)
    celery: CeleryConfig = field(default_factory=CeleryConfig)
    dag_processor: DagProcessorConfig = field(default_factory=DagProcessorConfig)
    webserver: WebserverConfig = field(default_factory=WebserverConfig)
    #: where each ``section.key`` value came from: "default", "file" or "env"
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)

    # Derived locations: one place decides where things live under the home.
    @property
    def dags_folder(self) -> Path:
        return Path(self.core.dags_folder) if self.core.dags_folder else self.home / "dags"

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'slipstream.db'}"

    @property
    def log_folder(self) -> Path:
        return (
            Path(self.logging.base_log_folder)
            if self.logging.base_log_folder
            else self.home / "logs"
        )

    @property
    def fernet_key_file(self) -> Path:
        return self.home / "fernet.key"

    @property
    def webserver_secret_key_file(self) -> Path:
        return self.home / "webserver_secret.key"

    @property
    def standalone_password_file(self) -> Path:
        """Where ``standalone`` keeps the password of the admin it created (mode 0600)."""
        return self.home / "standalone_admin_password.txt"

    @property
    def sensitive_words(self) -> tuple[str, ...]:
        return tuple(
            w.strip().lower()
            for w in self.secrets.sensitive_variable_fields.split(",")
            if w.strip()
        )


SECTIONS: dict[str, type] = {
    "core": CoreConfig,
    "database": DatabaseConfig,
    "logging": LoggingConfig,
    "secrets": SecretsConfig,
    "scheduler": SchedulerConfig,
    "worker": WorkerConfig,
    "celery": CeleryConfig,
    "dag_processor": DagProcessorConfig,
    "webserver": WebserverConfig,
}


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("SLIPSTREAM_HOME"):
        return Path(env["SLIPSTREAM_HOME"]).expanduser()
    return Path("~/slipstream").expanduser()


def _coerce(section: str, key: str, raw: Any, target: Any) -> Any:
    name = f"{section}.{key}"
    if target is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")
    if target is int or target is float:
        if isinstance(raw, bool):
            raise ConfigError(f"{name} must be a number, not {raw!r}")
        try:
            return target(raw)
        except (TypeError, ValueError):
            kind = "an integer" if target is int else "a number"
            raise ConfigError(f"{name} must be {kind}, not {raw!r}") from None
    return str(raw)


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration from defaults, the TOML file and the environment."""
    env = os.environ if env is None else env
    home = default_home(env)
    file_values: dict[str, Any] = {}
    path = home / CONFIG_FILE_NAME
    if path.is_file():
        try:
            file_values = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None

    for section in file_values:
        if section not in SECTIONS:
            raise ConfigError(f"{path} has an unknown section [{section}]")

    sources: dict[str, str] = {}
    built: dict[str, Any] = {}
    for section, cls in SECTIONS.items():
        hints = get_type_hints(cls)
        section_file = file_values.get(section, {})
        if not isinstance(section_file, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in section_file:
            if key not in known:
                raise ConfigError(f"{path} has an unknown key {section}.{key}")
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            env_name = f"{ENV_PREFIX}{section.upper()}__{f.name.upper()}"
            source = "default"
            if env_name in env:
                kwargs[f.name] = _coerce(section, f.name, env[env_name], hints[f.name])
                source = "env"
            elif f.name in section_file:
                kwargs[f.name] = _coerce(section, f.name, section_file[f.name], hints[f.name])
                source = "file"
            sources[f"{section}.{f.name}"] = source
        built[section] = cls(**kwargs)

    for name in env:
        if name.startswith(ENV_PREFIX):
            parts = name[len(ENV_PREFIX) :].lower().split("__")
            if len(parts) != 2 or f"{parts[0]}.{parts[1]}" not in sources:
                raise ConfigError(f"environment variable {name} names no configuration key")

    return Config(home=home, sources=sources, **built)


def describe(config: Config) -> list[dict[str, Any]]:
    """Every key with its value, source and documentation (for ``config list``)."""
    rows: list[dict[str, Any]] = []
    for section, cls in SECTIONS.items():
        values = getattr(config, section)
        for f in dataclasses.fields(cls):
            key = f"{section}.{f.name}"
            rows.append(
                {
                    "key": key,
                    "value": getattr(values, f.name),
                    "source": config.sources.get(key, "default"),
                    "env": f"{ENV_PREFIX}{section.upper()}__{f.name.upper()}",
                    "doc": f.metadata.get("doc", ""),
                }
            )
    return rows
