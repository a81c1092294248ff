"""Encryption at rest of connection secrets and variables, with Fernet.

The key comes from ``secrets.fernet_key`` (a comma-separated list: the first key encrypts,
every key decrypts, which is how keys are rotated) or else from ``$SLIPSTREAM_HOME/fernet.key``,
generated on first use with mode 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from slipstream.config import Config
from slipstream.errors import ConfigError


def load_fernet(config: Config) -> MultiFernet:
    """The keys that encrypt and decrypt secrets in the metadata database."""
    if config.secrets.fernet_key.strip():
        source = "secrets.fernet_key"
        keys = [k.strip() for k in config.secrets.fernet_key.split(",") if k.strip()]
    else:
        path = config.fernet_key_file
        source = str(path)
        keys = [
            k.strip()
            for k in read_or_create_secret_file(path, Fernet.generate_key).split(",")
            if k.strip()
        ]
    if not keys:
        raise ConfigError(f"{source} holds no Fernet key")
    fernets = []
    for position, key in enumerate(keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # never echo the key itself: it is a secret even when malformed
            raise ConfigError(
                f"key {position} in {source} is not a valid Fernet key "
                "(32 url-safe base64-encoded bytes, e.g. from Fernet.generate_key())"
            ) from None
    return MultiFernet(fernets)


def read_or_create_secret_file(path: Path, generate: Callable[[], bytes]) -> str:
    """Read a key file, creating it first (mode 0600) with ``generate()`` when missing.

    The key is written to a private temporary file which is then hard-linked into place:
    ``link`` fails when the target exists, so of two processes racing exactly one key wins,
    and nobody can ever read a half-written file.
    """
    if path.exists():
        return _read_key_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp opens with O_CREAT | O_EXCL and mode 0600: a name no other process holds
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o600)  # the umask may have removed bits, never added: be exact anyway
        os.write(fd, generate() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race; its key is the key
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return _read_key_file(path)


def _read_key_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None


def encrypt(fernet: MultiFernet, text: str) -> bytes:
    """A Fernet token (ASCII bytes) of ``text``."""
    return fernet.encrypt(text.encode("utf-8"))


def decrypt(fernet: MultiFernet, token: bytes | str, *, what: str) -> str:
    """The text inside ``token``. ``what`` names the secret in the error ("connection 'x'")."""
    raw = token.encode("ascii") if isinstance(token, str) else token
    try:
        return fernet.decrypt(raw).decode("utf-8")
    except InvalidToken:
        raise ConfigError(
            f"cannot decrypt {what}: the Fernet key changed? "
            "(put the old key after the new one in secrets.fernet_key)"
        ) from None


def rotate(fernet: MultiFernet, token: bytes | str, *, what: str) -> bytes:
    """Re-encrypt ``token`` with the first (newest) key."""
    raw = token.encode("ascii") if isinstance(token, str) else token
    try:
        return fernet.rotate(raw)
    except InvalidToken:
        raise ConfigError(f"cannot decrypt {what}: the Fernet key changed?") from None
