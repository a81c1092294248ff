"""Queries on users. Passwords arrive here already hashed; this module never sees one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from slipstream.store.models import User


def get(session: Session, username: str) -> User | None:
    return session.scalar(select(User).where(User.username == username))


def get_by_id(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def list_all(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.username)))


def count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


def add(
    session: Session,
    *,
    username: str,
    role: str,
    password_hash: str,
    email: str | None,
    full_name: str | None,
    now: datetime,
) -> User:
    row = User(
        username=username,
        role=role,
        password_hash=password_hash,
        email=email,
        full_name=full_name,
        active=True,
        created_at=now,
        password_changed_at=now,
        failed_logins=0,
    )
    session.add(row)
    session.flush()
    return row


def delete(session: Session, username: str) -> bool:
    result = session.execute(sql_delete(User).where(User.username == username))
    return bool(getattr(result, "rowcount", 0))


def set_password(session: Session, username: str, password_hash: str, now: datetime) -> bool:
    result = session.execute(
        update(User)
        .where(User.username == username)
        .values(password_hash=password_hash, password_changed_at=now, failed_logins=0)
    )
    return bool(getattr(result, "rowcount", 0))


def record_login(session: Session, user_id: int, now: datetime, *, ok: bool) -> None:
    values = (
        {"last_login_at": now, "failed_logins": 0}
        if ok
        else {"failed_logins": User.failed_logins + 1, "last_failed_login_at": now}
    )
    session.execute(update(User).where(User.id == user_id).values(**values))
