"""Inputs refused for what they are, kept for a person: one durable file each, named by the
time and the content's digest so that no two different inputs ever share a name."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from store.attachments import write_durably


def quarantine_name(data: bytes, at: datetime, suffix: str) -> str:
    """``20260412T083015.123456Z-<sha256 prefix><suffix>``: sorted by arrival; the same
    bytes at the same instant are the same evidence, anything else gets its own name."""
    stamp = at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}-{hashlib.sha256(data).hexdigest()[:32]}{suffix}"


def keep(directory: Path, data: bytes, at: datetime, suffix: str) -> Path:
    """Write ``data`` under ``directory``; after return it survives a crash or power loss."""
    path = directory / quarantine_name(data, at, suffix)
    write_durably(path, data)
    return path
