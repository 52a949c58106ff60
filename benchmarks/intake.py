"""Intake throughput against a plain Core insert, and tracking-number lookups at 10k vs 1M.

    .venv/bin/python benchmarks/intake.py [--backend sqlite|postgresql|both] [--letters N]

Prints ratios measured in the same run (absolute times on a shared machine are noise):
- accept/core: letters per second through Intake.accept (one commit per letter: citizen,
  letter, event, sequence) over a Core insert of the same rows (one commit each);
- lookup 1M/10k: the time of a tracking-number lookup with 1M letters over with 10k;
- accept 1M/10k: letters per second through Intake.accept with 1M letters stored over
  with 10k (its check for a letter already stored must not grow with the table).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from gateway.contract import tracking
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store import letters
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Citizen, Event, Letter
from tests.conftest import PII, SHANGHAI, make_contact

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def fresh_database(backend: str, workdir: Path) -> tuple[Engine, str | None]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex}.db'}", pii=PII)
        upgrade(engine)
        return engine, None
    schema = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False), pii=PII)
    upgrade(engine)
    return engine, schema


def drop(schema: str | None) -> None:
    if schema:
        admin = create_engine(POSTGRES)
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def accept_rate(engine: Engine, workdir: Path, n: int, offset: int) -> float:
    metrics = Metrics()
    intake = Intake(
        make_sessionmaker(engine),
        AttachmentStore(workdir / "files"),
        Spool(workdir / "spool", metrics),
        metrics,
        SHANGHAI,
    )
    contacts = [replace(make_contact(offset + i), attachments=()) for i in range(n)]
    started = time.perf_counter()
    for contact in contacts:
        intake.accept_sync(contact)
    return n / (time.perf_counter() - started)


def core_rate(engine: Engine, n: int, offset: int) -> float:
    """The same rows as intake writes, inserted with Core, one commit per letter."""
    now = datetime.now(UTC)
    template = make_contact(0)
    started = time.perf_counter()
    for i in range(n):
        with engine.begin() as conn:
            citizen_id = conn.execute(
                insert(Citizen).values(name="张三", phone="+8613800138000").returning(Citizen.id)
            ).scalar_one()
            letter_id = conn.execute(
                insert(Letter)
                .values(
                    tracking_number=tracking.tracking_number(date(2001, 1, 1), offset + i + 1),
                    verification_code="000000",
                    channel="sms",
                    source="core",
                    external_id=str(offset + i),
                    received_at=now,
                    status="received",
                    subject=template.subject,
                    text=template.text,
                    anonymous=False,
                    confidential=False,
                    citizen_id=citizen_id,
                )
                .returning(Letter.id)
            ).scalar_one()
            conn.execute(
                insert(Event).values(
                    letter_id=letter_id, at=now, actor="core", kind="received", detail={}
                )
            )
    return n / (time.perf_counter() - started)


def fill(engine: Engine, upto: int, have: int) -> list[str]:
    """Bulk-load letters (one day per 999,999) until ``upto`` exist; return their numbers."""
    now = datetime.now(UTC)
    numbers = []
    batch: list[dict[str, object]] = []
    for i in range(have, upto):
        day = date(2020, 1, 1) + timedelta(days=i // 999_999)
        number = tracking.tracking_number(day, i % 999_999 + 1)
        numbers.append(number)
        batch.append(
            {
                "tracking_number": number,
                "verification_code": "000000",
                "channel": "web",
                "source": "bulk",
                "external_id": f"bulk-{i}",
                "received_at": now,
                "status": "received",
                "subject": "",
                "text": "测试",
                "anonymous": False,
                "confidential": False,
            }
        )
        if len(batch) == 20_000:
            with engine.begin() as conn:
                conn.execute(insert(Letter), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Letter), batch)
    return numbers


def lookup_time(engine: Engine, numbers: list[str], probes: int) -> float:
    sessions = make_sessionmaker(engine)
    rng = random.Random(7)
    sample = [rng.choice(numbers) for _ in range(probes)]
    rounds = []
    for _ in range(3):
        started = time.perf_counter()
        with sessions() as session:
            for number in sample:
                assert letters.find_by_tracking_number(session, number) is not None
        rounds.append((time.perf_counter() - started) / probes)
    return statistics.median(rounds)


def run(backend: str, n: int, big: int, probes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        engine, schema = fresh_database(backend, workdir)
        try:
            # Interleave the two so drift on a noisy machine hits both alike.
            accept, core = [], []
            for r in range(3):
                accept.append(accept_rate(engine, workdir, n, offset=r * n))
                core.append(core_rate(engine, n, offset=r * n))
            a, c = statistics.median(accept), statistics.median(core)
            print(f"{backend}: accept {a:.0f}/s, core insert {c:.0f}/s, accept/core = {a / c:.2f}")
        finally:
            engine.dispose()
            drop(schema)
        engine, schema = fresh_database(backend, workdir)
        try:
            numbers = fill(engine, 10_000, 0)
            small = lookup_time(engine, numbers, probes)
            accept_small = accept_rate(engine, workdir, n, offset=10 * n)
            numbers += fill(engine, big, 10_000)
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
            large = lookup_time(engine, numbers, probes)
            accept_large = accept_rate(engine, workdir, n, offset=11 * n)
            print(
                f"{backend}: lookup at 10k {small * 1e6:.0f} us, at {big:,} {large * 1e6:.0f} us, "
                f"{big // 1000}k/10k = {large / small:.2f}"
            )
            # Intake's own check for a letter already stored must not grow with the table.
            print(
                f"{backend}: accept at 10k {accept_small:.0f}/s, at {big:,} {accept_large:.0f}/s, "
                f"{big // 1000}k/10k = {accept_large / accept_small:.2f}"
            )
        finally:
            engine.dispose()
            drop(schema)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--letters", type=int, default=1000)
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=2000)
    args = parser.parse_args()
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        run(backend, args.letters, args.big, args.probes)


if __name__ == "__main__":
    main()
