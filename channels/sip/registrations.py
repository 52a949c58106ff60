"""Which seats' phones are registered at Kamailio right now, asked over its jsonrpcs FIFO.

The queue offers a call only to a registered seat; Kamailio keeps the registrations in
memory (usrloc ``db_mode`` 0), so it is asked, not the database. The request is one JSON-RPC
document written to ``run_dir/kamailio_rpc.fifo``; Kamailio writes its answer into a FIFO
of ours named by ``reply_name`` in the same directory, and closes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import select
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from channels.sip.kamailio import RPC_FIFO


class RegistrarUnavailable(RuntimeError):
    """Kamailio did not answer: not running, no registrar configured, or too slow."""


def registered_seats(run_dir: Path, timeout: float) -> set[str]:
    """The names of the seats with at least one live contact (``ul.dump``), within
    ``timeout`` seconds; RegistrarUnavailable otherwise. Blocking: call it from a thread."""
    answer = _call(run_dir, "ul.dump", timeout)
    seats = set()
    for domain in answer.get("Domains", []):
        for aor in domain.get("Domain", {}).get("AoRs", []):
            info = aor.get("Info", {})
            if any(_live(c.get("Contact", {})) for c in info.get("Contacts", [])):
                seats.add(str(info["AoR"]))
    return seats


def _live(contact: dict[str, Any]) -> bool:
    # Seconds left, or "permanent"; an expired contact not yet swept says "expired".
    expires = contact.get("Expires")
    return expires == "permanent" or (isinstance(expires, int) and expires > 0)


def _call(run_dir: Path, method: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    name = f"hotline_reply_{secrets.token_hex(8)}"
    request = {"jsonrpc": "2.0", "method": method, "reply_name": name, "id": 1}
    with _reply_fifo(run_dir / name) as reply:
        _send(run_dir / RPC_FIFO, json.dumps(request).encode() + b"\n")
        text = _read_all(reply, deadline)
    try:
        answer = json.loads(text)
    except ValueError:
        raise RegistrarUnavailable(f"Kamailio's {method} answer is not JSON") from None
    if "result" not in answer:
        raise RegistrarUnavailable(f"Kamailio refused {method}: {answer.get('error')}")
    result: dict[str, Any] = answer["result"]
    return result


@contextlib.contextmanager
def _reply_fifo(path: Path) -> Iterator[int]:
    os.mkfifo(path, 0o600)
    try:
        # Opened before the request goes: Kamailio's non-blocking open needs a reader.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        try:
            yield fd
        finally:
            os.close(fd)
    finally:
        path.unlink(missing_ok=True)


def _send(fifo: Path, data: bytes) -> None:
    try:
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:  # no such FIFO, or nobody reading it (ENXIO)
        raise RegistrarUnavailable(f"Kamailio's RPC FIFO {fifo}: {exc.strerror}") from None
    try:
        # Under PIPE_BUF, so one write, never interleaved with another client's.
        os.write(fd, data)
    finally:
        os.close(fd)


def _read_all(fd: int, deadline: float) -> bytes:
    """Until Kamailio closes its end. A FIFO no writer has opened yet is not readable on
    Linux (no hang-up before a first writer), so select() waits for the answer."""
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise RegistrarUnavailable("Kamailio did not answer on its RPC FIFO in time")
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
