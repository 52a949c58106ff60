"""kill -9 the gateway between a letter's commit and the SIM deletion: no loss, no double."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from store.models import Letter
from tests.support.processes import ROOT, Child, free_port, gateway


class Control:
    """The modem simulator in its own process, driven over its JSON-lines socket."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.modem", "--control", "127.0.0.1:0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        started = json.loads(self.proc.stdout.readline())
        self.device: str = started["device"]
        host, _, port = started["control"].rpartition(":")
        self.socket = socket.create_connection((host, int(port)), timeout=10)
        self.replies = self.socket.makefile("r", encoding="utf-8")

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        self.socket.sendall((json.dumps({"op": op, **fields}) + "\n").encode())
        reply: dict[str, Any] = json.loads(self.replies.readline())
        assert reply["ok"], reply
        return reply

    def close(self) -> None:
        self.replies.close()
        self.socket.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def modem() -> Iterator[Control]:
    control = Control()
    yield control
    control.close()


def eventually(check: Callable[[], bool], proc: Child, timeout: float = 60) -> None:
    """The modem lives in another process: ask it until it says yes.

    The limit is generous (a loaded CI machine starts the gateway slowly); on failure the
    gateway's own log says why.
    """
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "never came true; the gateway said:\n" + "".join(
            proc.lines
        )
        time.sleep(0.05)


def texts(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Letter.text).order_by(Letter.id)).scalars())


@pytest.mark.slow
def test_kill_9_after_the_commit_before_the_delete_loses_and_doubles_nothing(
    database_url: str, engine: Engine, tmp_path: Path, modem: Control
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"http:\n  port: {free_port()}\nchannels:\n  smtp:\n    enabled: false\n"
        "  sip:\n    enabled: false\n"
        f"  gsm:\n    sweep_interval_seconds: 0.1\n    modems:\n"
        f"      - name: modem-1\n        device: {modem.device}\n",
        encoding="utf-8",
    )

    def deletes_after(start: int) -> Callable[[], bool]:
        def seen() -> bool:
            commands = modem("commands")["commands"][start:]
            return any(c.upper().startswith("AT+CMGD") for c in commands)

        return seen

    for n in range(3):
        modem("hang_next", command="AT+CMGD")
        modem("deliver_text", sender="+8613800138000", text=f"第{n}封短信")
        start = len(modem("commands")["commands"])
        with gateway(config, HOTLINE_DATABASE_URL=database_url) as proc:
            eventually(deletes_after(start), proc)  # the letter is committed; its delete hangs
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert texts(engine) == [f"第{i}封短信" for i in range(n + 1)]
        assert modem("stored")["stored"], "the message must still be on the SIM"
        with gateway(config, HOTLINE_DATABASE_URL=database_url) as proc:
            eventually(lambda: not modem("stored")["stored"], proc)
        assert texts(engine) == [f"第{i}封短信" for i in range(n + 1)]
