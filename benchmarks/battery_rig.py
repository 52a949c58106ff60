"""The fault battery's rig: a PostgreSQL schema of its own, the modem simulator in its own
process, a `hotline serve` that can be killed and started again, a /healthz watcher, and
``rig()``, which sets them up together for one part."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from benchmarks.common import postgres_schema
from simulators.twilio import TwilioApi
from store.db import make_engine
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII
from tests.support.processes import ROOT, Child, free_port
from tests.support.tcp_proxy import TcpProxy

SERVER = os.environ.get("HOTLINE_BATTERY_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
DATABASE = "battery"
WEB_SECRET = "battery-web-secret-0123456789abcdef"
# What a channel or task that fell over writes (gateway/engine/health.py, channels/gsm/worker.py).
DEATHS = ("task.failed", "task.restarting", "gsm.modem_crashed", "gsm.modem_failed")


class Schema:
    """A fresh, migrated schema of its own in the `battery` database, dropped at the end."""

    def __init__(self) -> None:
        admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            found = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": DATABASE}
            ).first()
            if not found:
                conn.execute(text(f'CREATE DATABASE "{DATABASE}"'))
        admin.dispose()
        self.url, self._drop = postgres_schema(f"{SERVER}/{DATABASE}")
        self.engine: Engine = make_engine(self.url, pii=PII)
        upgrade(self.engine)

    def url_via(self, port: int | None) -> str:
        """The schema's URL, straight or through a proxy listening on ``port``."""
        if port is None:
            return self.url
        url = make_url(self.url).set(host="127.0.0.1", port=port)
        return url.render_as_string(hide_password=False)

    @property
    def upstream(self) -> tuple[str, int]:
        url = make_url(self.url)
        return url.host or "127.0.0.1", url.port or 5432

    def drop(self) -> None:
        self.engine.dispose()
        self._drop()


class Modem:
    """The modem simulator in its own process (its SIM outlives every gateway we kill),
    driven over its JSON-lines control socket."""

    def __init__(self, workdir: Path, capacity: int = 255) -> None:
        self.symlink = workdir / "modem0"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulators.modem",
                "--control",
                "127.0.0.1:0",
                "--capacity",
                str(capacity),
                "--symlink",
                str(self.symlink),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        started = json.loads(self.proc.stdout.readline())
        host, _, port = started["control"].rpartition(":")
        self.address = (host, int(port))
        self._lock = threading.Lock()
        self._socket = socket.create_connection(self.address, timeout=30)
        self._replies = self._socket.makefile("r", encoding="utf-8")

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            self._socket.sendall((json.dumps({"op": op, **fields}) + "\n").encode())
            reply: dict[str, Any] = json.loads(self._replies.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"modem simulator: {reply}")
        return reply

    def stored(self) -> int:
        return len(self("stored")["stored"])

    def close(self) -> None:
        self._replies.close()
        self._socket.close()
        self.proc.terminate()
        self.proc.wait(timeout=10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@dataclass
class Ports:
    http: int
    smtp: int


@dataclass
class Settings:
    """What the battery's config.yaml holds, and the intervals the figures are compared with."""

    ports: Ports
    modem: str | None = None  # the device (a stable symlink); None: GSM off
    smtp: bool = True
    twilio_account: str | None = None
    twilio_api: str = "http://127.0.0.1:9"
    gsm_sweep_seconds: float = 0.5
    reconnect_min_seconds: float = 1
    reconnect_max_seconds: float = 60
    spool_drain_seconds: float = 5
    connect_timeout_seconds: float = 5
    volume: int = 1_000_000  # web rate limits, far above the load

    def yaml(self) -> str:
        gsm = (
            f"  gsm:\n    sweep_interval_seconds: {self.gsm_sweep_seconds}\n"
            f"    reconnect_min_seconds: {self.reconnect_min_seconds}\n"
            f"    reconnect_max_seconds: {self.reconnect_max_seconds}\n"
            f"    modems:\n      - name: modem-1\n        device: {self.modem}\n"
            if self.modem
            else "  gsm:\n    enabled: false\n"
        )
        smtp = (
            f"  smtp:\n    port: {self.ports.smtp}\n"
            if self.smtp
            else "  smtp:\n    enabled: false\n"
        )
        twilio = (
            f"  twilio:\n    enabled: true\n    account_sid: {self.twilio_account}\n"
            f"    public_url: {self.public}\n    api_url: {self.twilio_api}\n"
            if self.twilio_account
            else ""
        )
        return (
            f"database:\n  connect_timeout_seconds: {self.connect_timeout_seconds}\n"
            f"storage:\n  spool_drain_interval_seconds: {self.spool_drain_seconds}\n"
            f"http:\n  port: {self.ports.http}\n"
            f"channels:\n{smtp}{gsm}{twilio}"
            "  sip:\n    enabled: false\n"
            "  web:\n    min_fill_seconds: 0\n"
            f"    letters_per_ip_per_hour: {self.volume}\n"
            f"    letters_per_phone_per_day: {self.volume}\n"
            "stt:\n  workers: 0\n"
        )

    @property
    def public(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"


class Gateway:
    """`hotline serve` on a config, started and killed as often as asked; every life's log
    is kept to be searched afterwards."""

    def __init__(self, workdir: Path, settings: Settings, env: dict[str, str]) -> None:
        self.config = workdir / "config.yaml"
        self.config.write_text(settings.yaml(), encoding="utf-8")
        self.settings = settings
        self.env = {**os.environ, **env}
        self.lives: list[Child] = []

    @property
    def child(self) -> Child:
        return self.lives[-1]

    def cli(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--config", str(self.config), *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def start(self) -> float:
        """Start a life and wait until it serves; the seconds it took."""
        began = time.monotonic()
        child = Child(
            [sys.executable, "-m", "gateway.cli", "--config", str(self.config), "serve"], self.env
        )
        self.lives.append(child)
        child.wait_for_line("Uvicorn running", timeout=120)
        return time.monotonic() - began

    def kill(self) -> None:
        self.child.proc.kill()
        self.child.wait()

    def stop(self) -> None:
        """Stop the last life; keep every life's log beside the config."""
        for n, child in enumerate(self.lives):
            child.stop()
            log = self.config.with_name(f"gateway-{n}.log")
            log.write_text("".join(child.lines), encoding="utf-8")

    def deaths(self) -> list[str]:
        """Log lines of a channel or task that fell over, in every life."""
        return [
            line.rstrip()
            for child in self.lives
            for line in child.lines
            if any(re.search(rf"\b{event}\b", line) for event in DEATHS)
        ]

    def log_lines(self, needle: str) -> list[str]:
        return [line for child in self.lives for line in child.lines if needle in line]


@dataclass
class Sample:
    at: float  # monotonic
    status: int  # 0: no answer
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def down(self) -> list[str]:
        return sorted(p for p, s in self.body.get("parts", {}).items() if s != "ok")


class Watcher:
    """Asks /healthz every ``every`` seconds and keeps every answer."""

    def __init__(self, base: str, every: float) -> None:
        self.base = base
        self.every = every
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=self.every * 4) as client:
            while not self._stop.is_set():
                began = time.monotonic()
                try:
                    answer = client.get("/healthz")
                    sample = Sample(began, answer.status_code, answer.json())
                except (httpx.HTTPError, ValueError):
                    sample = Sample(began, 0)
                with self._changed:
                    self.samples.append(sample)
                    self._changed.notify_all()
                self._stop.wait(max(0.0, self.every - (time.monotonic() - began)))

    def wait_for(
        self, check: Callable[[Sample], bool], since: float, timeout: float
    ) -> Sample | None:
        """The first sample taken after ``since`` that passes ``check``."""

        def found() -> Sample | None:
            return next((s for s in self.samples if s.at >= since and check(s)), None)

        with self._changed:
            return self._changed.wait_for(found, timeout=timeout)


def metric(base: str, name: str) -> float:
    """The sum of a Prometheus metric's samples on /metrics (0 when absent)."""
    body = httpx.get(base + "/metrics", timeout=10).text
    total = 0.0
    for line in body.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# -- what every part prints with and runs on ------------------------------------------------


def say(line: str = "") -> None:
    print(line, flush=True)


def secs(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f} s"


def counts(counter: Counter[str] | Counter[int]) -> str:
    return ", ".join(f"{k}×{v}" for k, v in sorted(counter.items())) or "none"


@dataclass
class Rig:
    gateway: Gateway
    schema: Schema
    modem: Modem | None
    twilio: TwilioApi | None
    line: TcpProxy | None

    @property
    def base(self) -> str:
        return self.gateway.settings.public

    def letters(self) -> int:
        with self.schema.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Letter)).scalar_one())


@contextmanager
def rig(
    label: str, workdir: Path, *, modem: bool, smtp: bool, twilio: bool, cut: bool = False
) -> Iterator[Rig]:
    """A schema, a modem simulator, a Twilio account, maybe a cuttable line to PostgreSQL,
    and a gateway configured for them (not started)."""
    with ExitStack() as stack:
        folder = workdir / label
        folder.mkdir()
        schema = Schema()
        stack.callback(schema.drop)
        line = None
        if cut:
            line = TcpProxy(schema.upstream)
            line.up()
            stack.callback(line.down)
        sim = Modem(folder) if modem else None
        if sim is not None:
            stack.callback(sim.close)
        api = TwilioApi() if twilio else None
        settings = Settings(
            Ports(free_port(), free_port()),
            modem=str(sim.symlink) if sim else None,
            smtp=smtp,
            twilio_account=api.account_sid if api else None,
        )
        env = {
            "HOTLINE_DATABASE_URL": schema.url_via(line.port if line else None),
            "HOTLINE_WEB_SECRET": WEB_SECRET,
            **({"HOTLINE_TWILIO_AUTH_TOKEN": api.auth_token} if api else {}),
        }
        gateway = Gateway(folder, settings, env)
        stack.callback(gateway.stop)
        yield Rig(gateway, schema, sim, api, line)
