"""Start the real gateway as a child process and wait on what it logs, not on a clock."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# How long a test waits for a gateway to do what it will do: generous, since `make test`
# runs four processes on a small machine, where a step taking 8 s alone took 30 s and more.
# A test that passes never waits it out.
PATIENCE = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
