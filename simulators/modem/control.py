"""The control socket: JSON lines on loopback TCP, so other processes drive the network side.

One request per line, one reply per line: ``{"op": "deliver_text", "sender": "+86...",
"text": "..."}`` gets ``{"ok": true, "indexes": [1], "pending": 0}``; anything wrong gets
``{"ok": false, "error": "..."}`` and the connection stays open.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from simulators.modem.device import ModemSimulator

log = logging.getLogger(__name__)

Reply = dict[str, Any]
MAX_REQUEST = 1 << 20


class BadRequest(ValueError):
    pass


class _Request:
    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def get(self, name: str, kind: type, default: Any = ...) -> Any:
        value = self.fields.get(name, default)
        if value is ...:
            raise BadRequest(f"{name!r} is required")
        if value is not default and (not isinstance(value, kind) or isinstance(value, bool)):
            raise BadRequest(f"{name!r} must be {kind.__name__}")
        return value

    def numbers(self, name: str) -> list[int] | None:
        value = self.fields.get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(type(n) is int for n in value):
            raise BadRequest(f"{name!r} must be a list of integers")
        return value


def _deliver_text(sim: ModemSimulator, request: _Request) -> Reply:
    timestamp = request.get("timestamp", str, None)
    indexes = sim.deliver_text(
        request.get("sender", str),
        request.get("text", str),
        timestamp=datetime.fromisoformat(timestamp) if timestamp else None,
        encoding=request.get("encoding", str, "auto"),
        concat_ref=request.get("concat_ref", int, None),
        ref_bits=request.get("ref_bits", int, 8),
        part_order=request.numbers("part_order"),
        duplicate_parts=request.numbers("duplicate_parts") or (),
    )
    return {"indexes": indexes, "pending": sim.pending}


def _sent(sim: ModemSimulator, request: _Request) -> Reply:
    return {
        "sent": [
            {
                "pdu": s.pdu,
                "reference": s.reference,
                "destination": s.destination,
                "text": s.text,
                "at": s.at.isoformat(),
            }
            for s in sim.sent
        ]
    }


def _fail_next(sim: ModemSimulator, request: _Request) -> Reply:
    sim.fail_next(
        request.get("command", str), request.get("reply", str), request.get("times", int, 1)
    )
    return {}


def _hang_next(sim: ModemSimulator, request: _Request) -> Reply:
    sim.hang_next(request.get("command", str), request.get("times", int, 1))
    return {}


def _disconnect(sim: ModemSimulator, request: _Request) -> Reply:
    sim.disconnect()
    return {}


OPS: dict[str, Callable[[ModemSimulator, _Request], Reply]] = {
    "deliver_text": _deliver_text,
    "deliver_pdu": lambda sim, r: {
        "index": sim.deliver_pdu(r.get("pdu", str)),
        "pending": sim.pending,
    },
    "send_status_report": lambda sim, r: {
        "index": sim.send_status_report(r.get("mr", int), r.get("status", int, 0))
    },
    "sent": _sent,
    "stored": lambda sim, r: {"stored": {str(i): pdu for i, pdu in sim.stored().items()}},
    "commands": lambda sim, r: {"commands": sim.commands},
    "fail_next": _fail_next,
    "hang_next": _hang_next,
    "fill_storage": lambda sim, r: {"filled": sim.fill_storage()},
    "disconnect": _disconnect,
    "reconnect": lambda sim, r: {"device": sim.reconnect()},
}


def dispatch(sim: ModemSimulator, line: str | bytes) -> Reply:
    """Run one JSON request against ``sim``; never raises for a bad request."""
    try:
        fields = json.loads(line)
    except (ValueError, UnicodeDecodeError) as error:
        return {"ok": False, "error": f"not JSON: {error}"}
    if not isinstance(fields, dict):
        return {"ok": False, "error": "a request is a JSON object"}
    handler = OPS.get(fields.get("op"))  # type: ignore[arg-type]
    if handler is None:
        return {"ok": False, "error": f"unknown op {fields.get('op')!r}; known: {sorted(OPS)}"}
    try:
        return {"ok": True, **handler(sim, _Request(fields))}
    except (ValueError, RuntimeError) as error:  # bad values, or the modem's state refuses
        return {"ok": False, "error": str(error)}


class ControlServer:
    """Serves :func:`dispatch` on a loopback TCP port, one thread per connection."""

    def __init__(self, sim: ModemSimulator, host: str = "127.0.0.1", port: int = 0) -> None:
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the control socket has no authentication: loopback only, not {host}")
        self._sim = sim
        self._listener = socket.create_server((host, port))
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"{host}:{port}"

    def start(self) -> None:
        self._spawn(self._accept)

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for connection in self._connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join()

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:  # closed by stop()
                return
            with self._lock:
                self._connections.add(connection)
            self._spawn(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        with connection, connection.makefile("rwb") as stream:
            try:
                for line in iter(lambda: stream.readline(MAX_REQUEST), b""):
                    if not line.strip():
                        continue
                    if not line.endswith(b"\n"):
                        reply: Reply = {"ok": False, "error": "request too long or unterminated"}
                    else:
                        reply = dispatch(self._sim, line)
                    stream.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
                    stream.flush()
            except OSError as error:  # the client went away mid-request
                log.info("control connection closed: %s", error)
        with self._lock:
            self._connections.discard(connection)
