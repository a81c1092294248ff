"""Users in the database: creation rules, login checks, the first admin of standalone."""

from __future__ import annotations

import itertools
from datetime import timedelta
from pathlib import Path

import pytest

from slipstream.clock import utcnow
from slipstream.config import load_config
from slipstream.errors import AlreadyExistsError, AuthenticationError, InvalidInputError
from slipstream.roles import Permission, Role, parse_role
from slipstream.service import users
from slipstream.store import audit
from slipstream.store.db import make_engine, session_factory, transaction
from slipstream.store.models import User
from slipstream.store.schema import migrate


@pytest.fixture
def factory(db_url: str, home: Path):  # type: ignore[no-untyped-def]
    engine = make_engine(
        load_config({"SLIPSTREAM_HOME": str(home), "SLIPSTREAM__DATABASE__URL": db_url})
    )
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def test_passwords_are_hashed_and_checked(factory) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    info = users.create_user(
        factory, username="ana", role="user", password="correct-horse", now=now
    )
    assert info.role is Role.USER
    with transaction(factory, readonly=True) as session:
        row = session.query(User).one()
    assert "correct-horse" not in row.password_hash and row.password_hash.startswith("scrypt:")
    assert users.authenticate(factory, "ana", "correct-horse", now=now, source="test").id == info.id
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        users.authenticate(factory, "ana", "wrong-horse", now=now, source="test")
    with pytest.raises(AuthenticationError, match="wrong username or password"):
        users.authenticate(factory, "nobody", "whatever", now=now, source="test")
    with transaction(factory, readonly=True) as session:
        failed = audit.list_entries(session, event="user.login_failed")
        assert sorted(e.owner or "" for e in failed) == ["ana", "nobody"]
        assert session.query(User).one().failed_logins == 1
    with pytest.raises(AlreadyExistsError):
        users.create_user(factory, username="ana", role="Viewer", password="another-one", now=now)
    with pytest.raises(InvalidInputError, match="not a role"):
        users.create_user(factory, username="bo", role="root", password="long-enough", now=now)


def test_the_first_admin_is_created_once_with_a_private_file(factory, home: Path) -> None:  # type: ignore[no-untyped-def]
    file = home / "standalone_admin_password.txt"
    password = users.create_first_admin(factory, file, now=utcnow())
    assert password is not None and len(password) >= 16
    assert file.read_text().strip() == f"admin:{password}"
    assert file.stat().st_mode & 0o777 == 0o600
    assert users.create_first_admin(factory, file, now=utcnow()) is None
    assert users.get_user(factory, "admin").role is Role.ADMIN
    users.authenticate(factory, "admin", password, now=utcnow(), source="test")


def test_roles_nest() -> None:
    assert parse_role("op") is Role.OP
    order = [Role.VIEWER, Role.USER, Role.OP, Role.ADMIN]
    for lower, higher in itertools.pairwise(order):
        assert lower.permissions < higher.permissions
    assert not Role.VIEWER.allows(Permission.OPERATE)
    assert not Role.OP.allows(Permission.MANAGE_USERS)


def test_guessing_gets_slower_and_a_good_login_resets_it(factory) -> None:  # type: ignore[no-untyped-def]
    start = utcnow()
    users.create_user(factory, username="cy", role="Viewer", password="the-password", now=start)
    for _ in range(users.FREE_FAILED_LOGINS):
        with pytest.raises(AuthenticationError, match="wrong username or password"):
            users.authenticate(factory, "cy", "guess-guess", now=start, source="test")
    # Even the right password waits now (one second after the fifth failure).
    with pytest.raises(AuthenticationError, match="too many failed logins for 'cy'"):
        users.authenticate(factory, "cy", "the-password", now=start, source="test")
    later = start + timedelta(seconds=1.5)
    users.authenticate(factory, "cy", "the-password", now=later, source="test")
    with transaction(factory, readonly=True) as session:
        assert session.query(User).one().failed_logins == 0
        assert audit.list_entries(session, event="user.login_throttled")[0].owner == "cy"


def test_login_wait_doubles_up_to_a_cap() -> None:
    now = utcnow()
    assert users.login_wait(4, now, now) == 0
    assert users.login_wait(5, now, now) == 1
    assert users.login_wait(7, now, now) == 4
    assert users.login_wait(7, now - timedelta(seconds=3), now) == 1
    assert users.login_wait(40, now, now) == users.MAX_LOGIN_WAIT_S
