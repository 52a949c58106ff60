"""Secrets from config or the environment, else made once and kept in a file beside the data."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from gateway.contract.config import PiiConfig
from gateway.contract.errors import ConfigurationError
from store.pii import Keyring, PiiError


def _token() -> str:
    return secrets.token_urlsafe(32)


def load_secret(configured: str | None, path: Path, make: Callable[[], str] = _token) -> bytes:
    """The configured secret, or one made once and kept in ``path`` (mode 0600).

    The file appears whole or not at all (written aside, fsynced, then linked in place), so
    processes starting together all read the one secret the first of them made.
    """
    if configured:
        return configured.encode()
    if path.exists():
        return path.read_bytes().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    aside = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, make().encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(aside, path)
    except FileExistsError:
        pass  # another process made it first: theirs is the one
    finally:
        aside.unlink()
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return path.read_bytes().strip()


def pii_keyring(settings: PiiConfig) -> Keyring:
    """The keys citizens' details are encrypted under: pii.keys (HOTLINE_PII_KEYS), else
    the key file, made with one fresh key at the first start."""
    where = "pii.keys (HOTLINE_PII_KEYS)" if settings.keys else str(settings.key_file)
    text = load_secret(settings.keys, settings.key_file, Keyring.new_key).decode()
    try:
        return Keyring.parse(text)
    except PiiError as exc:
        raise ConfigurationError(f"{where}: {exc}") from exc
