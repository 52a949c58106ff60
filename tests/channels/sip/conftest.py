"""A SIP worker process (`hotline sip worker`) with short prompts, for calls in tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gateway.contract.config import load_config
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Job, Letter, MissedCall
from tests.channels.sip.heard import tone_prompts
from tests.conftest import PII, require_tool
from tests.support.processes import Child, free_port


def short_prompts(directory: Path) -> Path:
    """A tone per prompt (sox): the calls in tests need not wait out Mandarin sentences,
    and what a caller heard reads back as prompt names (heard.py)."""
    return tone_prompts(directory, require_tool("sox"))


@dataclass
class Worker:
    child: Child
    port: int
    engine: Engine
    root: Path

    @property
    def uri(self) -> str:
        return f"sip:12345@127.0.0.1:{self.port}"

    def letters(self) -> list[Letter]:
        with make_sessionmaker(self.engine)() as s:
            rows = list(s.scalars(select(Letter).order_by(Letter.id)))
            for row in rows:
                _ = row.attachments, row.citizen
            return rows

    def jobs(self, kind: str) -> list[Job]:
        with make_sessionmaker(self.engine)() as s:
            return list(s.scalars(select(Job).where(Job.kind == kind)))

    def missed(self) -> list[MissedCall]:
        with make_sessionmaker(self.engine)() as s:
            rows = list(s.scalars(select(MissedCall)))
            for row in rows:
                _ = row.citizen
            return rows


def sip_config(
    root: Path,
    port: int,
    agent: str | None = None,
    database: str | None = None,
    number_timeout: float = 4,
    **sip: object,
) -> Path:
    prompts = short_prompts(root / "prompts")
    lines = {
        "port": port,
        "prompts_dir": str(prompts),
        **sip,
    }
    sip_yaml = "".join(f"    {k}: {v!r}\n".replace("'", '"') for k, v in lines.items())
    config = root / "config.yaml"
    config.write_text(
        "channels:\n  smtp: {enabled: false}\n  gsm: {enabled: false}\n"
        f"  sip:\n{sip_yaml}"
        "stt: {workers: 0}\nrouting: {enabled: false}\n"
        "ivr:\n  menu_timeout_seconds: 1\n  no_input_repeats: 1\n"
        f"  agent: {{uri: {agent or 'null'}, answer_timeout_seconds: 3,"
        " working_hours: {start: '00:00', end: '00:00'}}\n"
        "  voicemail: {silence_seconds: 3, min_seconds: 1, max_seconds: 30,"
        f" number_timeout_seconds: {number_timeout}}}\n"
        + (f"database: {{url: '{database}', connect_timeout_seconds: 3}}\n" if database else ""),
        encoding="utf-8",
    )
    return config


StartWorker = Callable[..., Worker]


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[StartWorker]:
    started: list[Worker] = []

    def start(
        agent: str | None = None,
        database: str | None = None,
        number_timeout: float = 4,
        **sip: object,
    ) -> Worker:
        """The worker's port: the channel's own with one worker; with more (behind a
        Kamailio the test stands in for, at ``port``) worker 0's loopback port.
        ``database``: a URL the worker cannot store through (an outage), in place of its
        own SQLite file."""
        port = int(sip.pop("port", 0)) or free_port()  # type: ignore[call-overload]
        config = sip_config(tmp_path, port, agent, database, number_timeout, **sip)
        engine = make_engine(load_config(config).database.url, pii=PII)
        if database is None:
            upgrade(engine)
        child = Child(
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "sip", "worker"],
            dict(os.environ),
        )
        child.wait_for_line("sip.worker.ready")
        listening = int(sip["worker_base_port"]) if sip.get("workers", 1) != 1 else port  # type: ignore[call-overload]
        worker = Worker(child, listening, engine, tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.child.stop()
        worker.engine.dispose()


@pytest.fixture
def engine_of() -> Iterator[list[Engine]]:
    """Engines a test opens on a gateway's database (test_queue_calls.open_store), disposed
    at its end."""
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()
