"""Taking the gateway's ports: a port another program holds is said in one line naming the
listener and its address (`hotline serve` exits with its own code), not a traceback."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Awaitable

# A port held by another program, an address not this host's (not EACCES: a modem's serial
# device refused is not a port).
_CANNOT_BIND = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)


class ListenError(Exception):
    """A listener could not take its address."""

    def __init__(self, listener: str, detail: str) -> None:
        super().__init__(f"{listener} cannot listen: {detail}")
        self.listener = listener


def bind_http(host: str, port: int, backlog: int) -> socket.socket:
    """The HTTP listener's socket, bound here so that a port taken is a ListenError before
    any channel starts (uvicorn, left to bind, exits the process from inside its task).
    Bound as uvicorn's Config.bind_socket does, and listening: a request made before uvicorn
    serves it waits in the backlog."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise ListenError("http", f"{host}:{port}: {exc.strerror or exc}") from exc
    return sock


def announce_http(sock: socket.socket) -> None:
    """Uvicorn leaves announcing a socket it is handed to whoever bound it: said here, in
    uvicorn's words, which the gateway's tests and benchmarks wait for."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    logging.getLogger("uvicorn.error").info(
        "Uvicorn running on http://%s:%d (Press CTRL+C to quit)", shown, port
    )


async def listening(listener: str, start: Awaitable[None]) -> None:
    """A channel's start, whose failure to bind its port is a ListenError."""
    try:
        await start
    except OSError as exc:
        if exc.errno not in _CANNOT_BIND:
            raise
        raise ListenError(listener, str(exc)) from exc
