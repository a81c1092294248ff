"""Fixtures for the web UI and REST API: a migrated database, one user per role, the app
built by ``create_app``, and Flask test clients logged in as each role.

Users are inserted with password hashes computed once per session (scrypt is slow on
purpose); everything else is per test.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from slipstream.clock import utcnow
from slipstream.config import Config, load_config
from slipstream.roles import Role
from slipstream.store import users as user_store
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.schema import migrate

#: every role's user is named after the role in lower case, with this password
PASSWORDS = {role: f"{role.value.lower()}-password" for role in Role}


@pytest.fixture(scope="session")
def password_hashes() -> dict[Role, str]:
    from werkzeug.security import generate_password_hash

    return {role: generate_password_hash(pw, method="scrypt") for role, pw in PASSWORDS.items()}


def basic_auth(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@dataclass
class WebEnv:
    app: Flask
    config: Config
    factory: sessionmaker[Session]
    dags_folder: Path

    def api_headers(self, role: Role) -> dict[str, str]:
        """Basic-auth headers of the user with ``role``."""
        return basic_auth(role.value.lower(), PASSWORDS[role])

    def client(self, role: Role | None = None) -> FlaskClient:
        """A test client; logged in through the login form as ``role``'s user if given."""
        client = self.app.test_client()
        if role is not None:
            page = client.get("/login")
            response = client.post(
                "/login",
                data={
                    "username": role.value.lower(),
                    "password": PASSWORDS[role],
                    "csrf_token": csrf_token(page.get_data(as_text=True)),
                },
            )
            assert response.status_code == 302, response.get_data(as_text=True)
        return client

    def write_dag(self, name: str, source: str) -> Path:
        path = self.dags_folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        return path

    def parse(self) -> None:
        """Run the DAG processor over the DAG folder (as ``slipstream dags reserialize``)."""
        from slipstream.service.dags import reserialize

        reserialize(self.config, self.factory)


def csrf_token(html: str) -> str:
    """The CSRF token a page carries (in a form field or the csrf-token meta tag)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'name="csrf-token" content="([^"]+)"', html
    )
    assert found, "the page carries no CSRF token"
    return found.group(1)


def make_web_env(home: Path, db_url: str, hashes: dict[Role, str], **env: Any) -> WebEnv:
    environ = {"SLIPSTREAM_HOME": str(home), "SLIPSTREAM__DATABASE__URL": db_url}
    environ["SLIPSTREAM__CORE__LOAD_EXAMPLES"] = "false"
    environ.update({k: str(v) for k, v in env.items()})
    config = load_config(environ)
    engine = make_engine(config)
    migrate(engine)
    factory = session_factory(engine)
    now = utcnow()
    with transaction(factory) as session:
        for role, password_hash in hashes.items():
            user_store.add(
                session,
                username=role.value.lower(),
                role=role.value,
                password_hash=password_hash,
                email=f"{role.value.lower()}@example.com",
                full_name=None,
                now=now,
            )
    from slipstream.web import create_app

    app = create_app(config, factory=factory)
    app.config["TESTING"] = True
    return WebEnv(app=app, config=config, factory=factory, dags_folder=config.dags_folder)


@pytest.fixture
def web(home: Path, password_hashes: dict[Role, str]) -> Iterator[WebEnv]:
    """The app on SQLite, with one user per role."""
    env = make_web_env(home, f"sqlite:///{home / 'slipstream.db'}", password_hashes)
    yield env


@pytest.fixture
def web_any_db(db_url: str, home: Path, password_hashes: dict[Role, str]) -> Iterator[WebEnv]:
    """The app once on SQLite and once on PostgreSQL."""
    yield make_web_env(home, db_url, password_hashes)
