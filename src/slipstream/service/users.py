"""Users of the web UI and the REST API: create, list, delete, reset a password, and check
a login. Shared by the CLI (``slipstream users``), the admin pages and ``standalone``.

Passwords are hashed with werkzeug's scrypt (salted, memory-hard); the clear text is never
stored or logged. Every change and every failed login goes to the audit log.
"""

from __future__ import annotations

import functools
import math
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from werkzeug.security import check_password_hash, generate_password_hash

from slipstream.errors import (
    AlreadyExistsError,
    AuthenticationError,
    InvalidInputError,
    UserNotFound,
)
from slipstream.roles import Role, parse_role
from slipstream.store import audit
from slipstream.store import users as store
from slipstream.store.db import transaction
from slipstream.store.models import User

MIN_PASSWORD_LENGTH = 8
_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,255}$")


@functools.cache
def _dummy_hash() -> str:
    # A hash to check against when the user does not exist, so that a wrong username takes
    # as long as a wrong password and the timing does not tell which usernames exist. Made
    # on first use: scrypt is slow on purpose, and importing must cost nothing.
    return generate_password_hash("not a password", method="scrypt")


@dataclass(frozen=True)
class UserInfo:
    """A user as the interfaces show it: never the password hash."""

    id: int
    username: str
    role: Role
    email: str | None
    full_name: str | None
    active: bool
    created_at: datetime
    last_login_at: datetime | None
    password_changed_at: datetime

    @classmethod
    def of(cls, row: User) -> UserInfo:
        return cls(
            id=row.id,
            username=row.username,
            role=parse_role(row.role),
            email=row.email,
            full_name=row.full_name,
            active=row.active,
            created_at=row.created_at,
            last_login_at=row.last_login_at,
            password_changed_at=row.password_changed_at,
        )


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password must have at least {MIN_PASSWORD_LENGTH} characters")
    return generate_password_hash(password, method="scrypt")


def generate_password() -> str:
    """A random password for a user nobody chose one for (``standalone``'s admin)."""
    return secrets.token_urlsafe(15)


def _check_username(username: str) -> str:
    if not _USERNAME.match(username):
        raise InvalidInputError(
            f"{username[:60]!r} is not a valid username: use letters, digits and . _ @ + - "
            "(starting with a letter or digit, at most 256 characters)"
        )
    return username


def create_user(
    factory: sessionmaker[Session],
    *,
    username: str,
    role: Role | str,
    password: str,
    now: datetime,
    email: str | None = None,
    full_name: str | None = None,
    actor: str | None = None,
) -> UserInfo:
    _check_username(username)
    role = role if isinstance(role, Role) else parse_role(role)
    if email is not None and email and "@" not in email:
        raise InvalidInputError(f"{email!r} is not an email address")
    password_hash = hash_password(password)
    with transaction(factory) as session:
        if store.get(session, username) is not None:
            raise AlreadyExistsError(f"user {username!r} exists already")
        row = store.add(
            session,
            username=username,
            role=role.value,
            password_hash=password_hash,
            email=email or None,
            full_name=full_name or None,
            now=now,
        )
        audit.record(
            session, "user.create", owner=actor, extra={"username": username, "role": role.value}
        )
        return UserInfo.of(row)


def list_users(factory: sessionmaker[Session]) -> list[UserInfo]:
    with transaction(factory, readonly=True) as session:
        return [UserInfo.of(row) for row in store.list_all(session)]


def get_user(factory: sessionmaker[Session], username: str) -> UserInfo:
    with transaction(factory, readonly=True) as session:
        row = store.get(session, username)
        if row is None:
            raise UserNotFound(f"user {username!r} does not exist")
        return UserInfo.of(row)


def get_user_by_id(factory: sessionmaker[Session], user_id: int) -> UserInfo | None:
    with transaction(factory, readonly=True) as session:
        row = store.get_by_id(session, user_id)
        return None if row is None else UserInfo.of(row)


def delete_user(factory: sessionmaker[Session], username: str, *, actor: str | None = None) -> None:
    with transaction(factory) as session:
        if not store.delete(session, username):
            raise UserNotFound(f"user {username!r} does not exist")
        audit.record(session, "user.delete", owner=actor, extra={"username": username})


def reset_password(
    factory: sessionmaker[Session],
    username: str,
    password: str,
    *,
    now: datetime,
    actor: str | None = None,
) -> None:
    """Set a new password; sessions and API tokens issued before now stop working."""
    password_hash = hash_password(password)
    with transaction(factory) as session:
        if not store.set_password(session, username, password_hash, now):
            raise UserNotFound(f"user {username!r} does not exist")
        audit.record(session, "user.reset_password", owner=actor, extra={"username": username})


#: failed logins in a row that cost nothing; each one after doubles the wait (1 s, 2 s, ...)
FREE_FAILED_LOGINS = 5
MAX_LOGIN_WAIT_S = 300.0


def login_wait(failed: int, last_failed_at: datetime | None, now: datetime) -> float:
    """Seconds before the next login attempt of a user with ``failed`` failed logins in a
    row, the latest at ``last_failed_at``. Guessing a password gets slower and slower,
    while a user who mistypes a few times waits for nothing."""
    if failed < FREE_FAILED_LOGINS or last_failed_at is None:
        return 0.0
    delay = min(MAX_LOGIN_WAIT_S, 2.0 ** (failed - FREE_FAILED_LOGINS))
    return max(0.0, delay - (now - last_failed_at).total_seconds())


def authenticate(
    factory: sessionmaker[Session],
    username: str,
    password: str,
    *,
    now: datetime,
    source: str,
    audit_success: bool = False,
) -> UserInfo:
    """The user whose password this is, or :class:`AuthenticationError` (audited, with
    ``source`` saying where the attempt came from). The message never says which of the
    username and password was wrong. ``audit_success`` records a good login too (a login
    form; not an API call that sends its password every time)."""
    with transaction(factory, readonly=True) as session:
        row = store.get(session, username)
        found = None if row is None else UserInfo.of(row)
        password_hash = _dummy_hash() if row is None else row.password_hash
        wait = 0.0 if row is None else login_wait(row.failed_logins, row.last_failed_login_at, now)
    if wait > 0:
        # Not even checked: each guess while waiting would otherwise be a free one.
        with transaction(factory) as session:
            audit.record(
                session, "user.login_throttled", owner=username[:256], extra={"source": source}
            )
        raise AuthenticationError(
            f"too many failed logins for {username!r}: try again in {math.ceil(wait)} s"
        )
    ok = check_password_hash(password_hash, password) and found is not None and found.active
    with transaction(factory) as session:
        if found is not None:
            store.record_login(session, found.id, now, ok=ok)
        if ok and audit_success:
            audit.record(
                session, "user.login", owner=username[:256], extra={"source": source}, when=now
            )
        if not ok:
            audit.record(
                session,
                "user.login_failed",
                owner=username[:256],
                extra={"source": source},
                when=now,
            )
    if not ok or found is None:
        raise AuthenticationError("wrong username or password")
    return found


FIRST_ADMIN = "admin"


def create_first_admin(
    factory: sessionmaker[Session], password_file: Path, *, now: datetime
) -> str | None:
    """On a database with no users, create ``admin`` with a random password, write the
    password to ``password_file`` (mode 0600) and return it; None when users exist.

    There is no default password: each installation's admin password is its own.
    """
    with transaction(factory, readonly=True) as session:
        if store.count(session):
            return None
    password = generate_password()
    create_user(
        factory,
        username=FIRST_ADMIN,
        role=Role.ADMIN,
        password=password,
        now=now,
        actor="standalone",
    )
    password_file.parent.mkdir(parents=True, exist_ok=True)
    password_file.unlink(missing_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(f"{FIRST_ADMIN}:{password}\n")
    return password


def set_role(
    factory: sessionmaker[Session], username: str, role: Role | str, *, actor: str | None = None
) -> UserInfo:
    """Give ``username`` another role. It applies from their next request: sessions and
    tokens load the user's role afresh each time."""
    role = role if isinstance(role, Role) else parse_role(role)
    with transaction(factory) as session:
        row = store.get(session, username)
        if row is None:
            raise UserNotFound(f"user {username!r} does not exist")
        old_role = row.role
        row.role = role.value
        audit.record(
            session,
            "user.set_role",
            owner=actor,
            extra={"username": username, "role": role.value, "old_role": old_role},
        )
        return UserInfo.of(row)
