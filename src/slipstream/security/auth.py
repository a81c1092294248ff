"""Who is asking and may they: logins, API credentials and permission checks.

A browser logs in with a form and then carries a signed session cookie (HttpOnly,
SameSite=Lax); every state-changing request it makes must carry the CSRF token of its
session. An API client sends ``Authorization: Basic`` (username and password) or
``Authorization: Bearer`` (a token from ``POST /api/v1/auth/token``); such requests carry
no cookie, so CSRF does not apply to them. A password change voids every session and token
issued before it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from datetime import datetime

from flask import Flask, Request, current_app, request
from flask_login import LoginManager, UserMixin, current_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from slipstream.errors import AuthenticationError, PermissionDenied
from slipstream.roles import Permission, Role
from slipstream.security.context import services
from slipstream.service import users as user_service
from slipstream.service.users import UserInfo

TOKEN_SALT = "slipstream-api-token"


class CurrentUser(UserMixin):  # type: ignore[misc]
    """The logged-in user as Flask-Login carries it."""

    def __init__(self, info: UserInfo) -> None:
        self.info = info

    def get_id(self) -> str:
        # The password's change time is part of the id: a changed password voids sessions.
        return f"{self.info.id}:{_stamp(self.info.password_changed_at)}"

    @property
    def is_active(self) -> bool:
        return self.info.active

    @property
    def username(self) -> str:
        return self.info.username

    @property
    def role(self) -> Role:
        return self.info.role

    def can(self, permission: Permission | str) -> bool:
        return self.info.role.allows(Permission(permission))


def _stamp(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def _load_session_user(user_id: str) -> CurrentUser | None:
    if authenticated_by_header():
        return None  # the header names the user; Flask-Login then asks _header_user
    raw_id, _, stamp = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    info = user_service.get_user_by_id(services().session_factory, int(raw_id))
    if info is None or not info.active or str(_stamp(info.password_changed_at)) != stamp:
        return None
    return CurrentUser(info)


class _BasicCache:
    """Recently checked Basic credentials, so an API client that sends its password on every
    request pays for the (deliberately slow) scrypt check once a minute, not every time.

    Keys are HMACs of the password under the app's secret key; the password is not kept.
    """

    TTL = 60.0
    SIZE = 1024

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, bytes], tuple[int, int, float]] = {}

    def key(self, username: str, password: str) -> tuple[str, bytes]:
        digest = hmac.new(self._secret, password.encode("utf-8"), hashlib.sha256).digest()
        return (username, digest)

    def get(self, key: tuple[str, bytes]) -> tuple[int, int] | None:
        with self._lock:
            entry = self._entries.get(key)
        if entry is None or entry[2] < time.monotonic():
            return None
        return entry[0], entry[1]

    def put(self, key: tuple[str, bytes], info: UserInfo) -> None:
        with self._lock:
            if len(self._entries) >= self.SIZE:
                self._entries.clear()
            self._entries[key] = (
                info.id,
                _stamp(info.password_changed_at),
                time.monotonic() + self.TTL,
            )


def _basic_user(app: Flask, header: str) -> CurrentUser:
    try:
        decoded = base64.b64decode(header, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthenticationError("the Basic credentials are not valid base64 text") from None
    username, sep, password = decoded.partition(":")
    if not sep:
        raise AuthenticationError("Basic credentials must be username:password")
    cache: _BasicCache = app.extensions["slipstream_basic_cache"]
    key = cache.key(username, password)
    hit = cache.get(key)
    if hit is not None:
        info = user_service.get_user_by_id(services().session_factory, hit[0])
        if info is not None and info.active and _stamp(info.password_changed_at) == hit[1]:
            return CurrentUser(info)
    svc = services()
    info = user_service.authenticate(
        svc.session_factory, username, password, now=svc.now(), source="api basic auth"
    )
    cache.put(key, info)
    return CurrentUser(info)


def _serializer(app: Flask) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(app.secret_key or b"", salt=TOKEN_SALT)


def issue_token(app: Flask, user: CurrentUser) -> str:
    """A signed bearer token for ``user``, valid for webserver.api_token_lifetime_minutes."""
    return _serializer(app).dumps(
        {"uid": user.info.id, "pw": _stamp(user.info.password_changed_at)}
    )


def _bearer_user(app: Flask, token: str) -> CurrentUser:
    max_age = services().config.webserver.api_token_lifetime_minutes * 60
    try:
        data = _serializer(app).loads(token, max_age=max_age)
    except SignatureExpired:
        raise AuthenticationError("the token has expired; ask for a new one") from None
    except BadSignature:
        raise AuthenticationError("the token is not valid") from None
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int):
        raise AuthenticationError("the token is not valid")
    info = user_service.get_user_by_id(services().session_factory, data["uid"])
    if info is None or not info.active or _stamp(info.password_changed_at) != data.get("pw"):
        raise AuthenticationError("the token is no longer valid (user changed or removed)")
    return CurrentUser(info)


def _header_user(req: Request) -> CurrentUser | None:
    """The user named by the request's Authorization header, None without one."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    header = req.headers.get("Authorization")
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        return _basic_user(app, value.strip())
    if scheme.lower() == "bearer":
        return _bearer_user(app, value.strip())
    raise AuthenticationError(f"unsupported Authorization scheme {scheme!r} (use Basic or Bearer)")


def init_auth(app: Flask) -> LoginManager:
    manager = LoginManager()
    manager.session_protection = "basic"
    manager.user_loader(_load_session_user)
    manager.request_loader(_header_user)
    manager.login_view = "pages.login"
    manager.login_message = ""
    manager.init_app(app)
    secret = app.secret_key
    key = secret.encode() if isinstance(secret, str) else bytes(secret or b"")
    app.extensions["slipstream_basic_cache"] = _BasicCache(key)
    return manager


def authenticated_by_header() -> bool:
    """Whether the request named its user in an Authorization header (no cookie: no CSRF)."""
    return bool(request.headers.get("Authorization"))


def user() -> CurrentUser | None:
    """The user of this request, or None when anonymous."""
    found = current_user._get_current_object()
    return found if isinstance(found, CurrentUser) else None


def require(permission: Permission) -> CurrentUser:
    """The current user if their role allows ``permission``; else AuthenticationError
    (nobody logged in) or PermissionDenied (logged in, not allowed)."""
    who = user()
    if who is None:
        raise AuthenticationError("log in first: this needs an authenticated user")
    if not who.can(permission):
        raise PermissionDenied(
            f"role {who.role.value} may not do this (it needs the {permission.value!r} permission)"
        )
    return who
