"""Content-addressed attachment files: written to a temp file, fsynced, renamed, then named
by their sha256, so a crash never leaves a half-written file under a real name."""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that after return it survives a crash or power loss."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_directory(target.parent)


class AttachmentStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> StoredFile:
        digest = hashlib.sha256(data).hexdigest()
        path = self.path_of(digest)
        # Same name, same bytes: a file already renamed into place is complete.
        if not path.exists():
            write_durably(path, data)
        return StoredFile(sha256=digest, size=len(data))

    def read(self, sha256: str) -> bytes:
        return self.path_of(sha256).read_bytes()

    def remove(self, sha256: str) -> None:
        """The file, once no attachment row names it any more (the caller checks)."""
        self.path_of(sha256).unlink(missing_ok=True)
