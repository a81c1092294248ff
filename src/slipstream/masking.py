"""Masking of secrets in task logs and rendered templates.

A process keeps one registry of secret strings: connection passwords, sensitive variables and
anything a task passes to :func:`mask_secret`. Log writers and the template renderer pass text
through :func:`redact` before it leaves the process.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from typing import Any

MASK = "***"

DEFAULT_SENSITIVE_WORDS: tuple[str, ...] = (
    "password",
    "secret",
    "passwd",
    "authorization",
    "api_key",
    "apikey",
    "access_token",
    "private_key",
    "token",
)

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_sensitive_words: tuple[str, ...] = DEFAULT_SENSITIVE_WORDS


def set_sensitive_words(words: Iterable[str]) -> None:
    """Replace the words that make a key name sensitive (from configuration)."""
    global _sensitive_words
    _sensitive_words = tuple(w.lower() for w in words if w)


def is_sensitive_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _sensitive_words)


def mask_secret(value: Any, name: str | None = None) -> None:
    """Register ``value`` (a string, or the strings inside a dict/list) as secret.

    With ``name`` given, a dict is masked only under sensitive keys. Values shorter than
    three characters are ignored: masking every "1" or "a" would make logs unreadable.
    """
    global _pattern
    found: list[str] = []
    _collect(value, name, found)
    if not found:
        return
    with _lock:
        before = len(_secrets)
        _secrets.update(found)
        if len(_secrets) != before:
            ordered = sorted(_secrets, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def _collect(value: Any, name: str | None, out: list[str]) -> None:
    if isinstance(value, str):
        if len(value) >= 3:
            out.append(value)
            # a secret in a multi-line value is masked line by line too
            out.extend(line for line in value.splitlines() if len(line) >= 3)
    elif isinstance(value, dict):
        for key, item in value.items():
            if name is None or is_sensitive_key(str(key)):
                _collect(item, None, out)
    elif isinstance(value, list | tuple | set):
        for item in value:
            _collect(item, name, out)


def redact(text: str) -> str:
    """Return ``text`` with every registered secret replaced by ``***``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_value(value: Any, name: str | None = None) -> Any:
    """Mask a structure for display: sensitive keys wholly, registered secrets inside strings."""
    if name is not None and is_sensitive_key(name) and value not in (None, ""):
        return MASK
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def reset() -> None:
    """Forget every registered secret (tests, and a fresh child process)."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None
