"""Start the real gateway as a child process and wait on what it logs, not on a clock."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How long a test waits for a gateway to do what it will do: generous, since `make test`
# runs four processes on a small machine, where a step taking 8 s alone took 30 s and more.
# A test that passes never waits it out.
PATIENCE = 90.0


# Ports for the processes a test starts come from a block of this pytest process's own
# (make test runs four), below the kernel's ephemeral range (32768-60999 on Debian): two
# test processes never pick the same port, and no client socket's source port takes it
# between the pick and the bind. Each pick is a run of STEP ports, all free for TCP and
# UDP, for port + n uses (worker_base_port's workers, SIPp's media port + 2).
FIRST_PORT, BLOCK, STEP = 20000, 2000, 20
_picks = itertools.count()


def free_port(host: str = "127.0.0.1") -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... under xdist
    index = int(worker[2:]) + 1 if worker.startswith("gw") else 0
    start = FIRST_PORT + index % 5 * BLOCK
    for _ in range(BLOCK // STEP):
        port = start + next(_picks) * STEP % BLOCK
        if _free_run(host, port):
            return port
    raise AssertionError(f"no free run of {STEP} ports in {start}-{start + BLOCK - 1}")


def _free_run(host: str, first: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with ExitStack() as held:
            for port in range(first, first + STEP):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    probe = held.enter_context(socket.socket(family, kind))
                    probe.bind((host, port))
    except OSError:
        return False
    return True


class Child:
    """A child process whose stderr is read all along (a full pipe would stall it)."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env
        )
        self.lines: list[str] = []
        self._seen = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self.lines.append("")  # end of output
            self._seen.notify_all()

    def wait_for_line(self, needle: str, timeout: float = PATIENCE) -> str:
        """The first line (from the start) containing ``needle``; fail on exit or timeout."""

        def found() -> str | None:
            for line in self.lines:
                if needle in line:
                    return line
            return "" if self.lines and self.lines[-1] == "" else None

        with self._seen:
            line = self._seen.wait_for(found, timeout=timeout)
        if not line:
            raise AssertionError(f"{needle!r} never logged; the child said:\n{''.join(self.lines)}")
        return line

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(timeout=10)
        assert self.proc.stderr is not None
        self.proc.stderr.close()


@contextmanager
def gateway(config: Path, **env: str) -> Iterator[Child]:
    child = Child(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
        {**os.environ, **env},
    )
    try:
        child.wait_for_line("Uvicorn running")
        yield child
    finally:
        child.stop()
