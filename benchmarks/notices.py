"""How soon a letter stored by another process is routed, as a ratio of one stored by the
gateway itself, on PostgreSQL, in the same run.

    .venv/bin/python -m benchmarks.notices [--letters 100] [--rate 5] [--database-url URL]

`hotline serve` runs with SMTP alone and its route lane as shipped. Two kinds of letter
arrive in turn at a steady rate: mail through its SMTP port (its own intake wakes the route
lane at once: the baseline, which nothing can beat) and contacts stored by this process
through an Intake of its own on its own engine, as a SIP worker stores a voicemail or
another node its mail. Each letter's latency is the database's routing event minus its
received event (both written on this machine's clock). A letter counts only once stored
with the text sent and routed; the rest are printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from benchmarks.common import POSTGRES, Tally, percentile, postgres_schema
from benchmarks.smtp import RECIPIENT, SENDER, mail, start_gateway
from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.contract.kinds import ROUTE
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.models import Event, Letter
from store.pii import ENV, Keyring
from tests.support.processes import free_port

SHANGHAI = "Asia/Shanghai"


@dataclass
class Kind:
    name: str
    texts: dict[str, str]  # subject -> the text sent
    tally: Tally
    latencies: list[float]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=100, help="of each kind")
    parser.add_argument("--rate", type=float, default=5.0, help="letters a second, both kinds")
    parser.add_argument("--database-url", default=POSTGRES)
    args = parser.parse_args()
    url, drop = postgres_schema(args.database_url)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run(args, url, Path(tmp))
    finally:
        drop()


def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    from zoneinfo import ZoneInfo

    port = free_port()
    key = Keyring.new_key()
    os.environ[ENV] = key  # the gateway's and ours: both write citizens' details
    gateway = start_gateway(port, workdir, url, routing=True)
    engine = make_engine(url, pii=Keyring.parse(key))
    metrics = Metrics()
    intake = Intake(
        make_sessionmaker(engine),
        AttachmentStore(workdir / "other" / "attachments"),
        Spool(workdir / "other" / "spool", metrics),
        metrics,
        ZoneInfo(SHANGHAI),
        standing_jobs=(ROUTE,),
    )
    local = Kind("stored by serve (SMTP)", {}, Tally(), [])
    other = Kind("stored by another process", {}, Tally(), [])
    run_id = f"n{int(time.time())}"
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
            began = time.monotonic()
            for n in range(2 * args.letters):
                time.sleep(max(0.0, began + n / args.rate - time.monotonic()))
                m = mail(run_id, n)
                if n % 2 == 0:
                    smtp.sendmail(SENDER, [RECIPIENT], m.raw)
                    local.texts[m.subject] = m.text
                else:
                    contact = IncomingContact(
                        channel=Channel.SMS,
                        source="other-process",
                        external_id=f"{run_id}-{n}",
                        received_at=datetime.now(UTC),
                        citizen=Citizen(phone=f"+86138{n:08d}"),
                        subject=m.subject,
                        text=m.text,
                    )
                    intake.store(contact)
                    other.texts[m.subject] = m.text
        time.sleep(3)  # the last letters' routing
        measure(engine, local)
        measure(engine, other)
    finally:
        engine.dispose()
        gateway.stop()
    report(args, local, other)


def measure(engine: Engine, path: Kind) -> None:
    received, routed = aliased(Event), aliased(Event)
    query = (
        select(Letter.subject, Letter.text, Letter.status, received.at, routed.at)
        .join(received, (received.letter_id == Letter.id) & (received.kind == "received"))
        .outerjoin(routed, (routed.letter_id == Letter.id) & (routed.actor == "system:routing"))
        .where(Letter.subject.in_(list(path.texts)))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    seen: dict[str, float] = {}
    for subject, text, status, at_received, at_routed in rows:
        if text != path.texts[subject]:
            path.tally.fail("stored with other text")
        elif at_routed is None or status == "received":
            path.tally.fail("stored, never routed")
        else:
            late = (at_routed - at_received).total_seconds()
            seen[subject] = min(late, seen.get(subject, late))
    path.tally.fail("never stored", len(set(path.texts) - {r[0] for r in rows}))
    path.tally.verified = len(seen)
    path.latencies = list(seen.values())


def report(args: argparse.Namespace, local: Kind, other: Kind) -> None:
    print(f"{args.letters} letters of each kind at {args.rate:g}/s in all, PostgreSQL")
    for path in (local, other):
        print(
            f"  {path.name}: {path.tally.verified} routed, "
            f"received to routed p50 {percentile(path.latencies, 50) * 1000:.0f} ms, "
            f"p99 {percentile(path.latencies, 99) * 1000:.0f} ms; "
            f"failures {dict(path.tally.failures) or 'none'}"
        )
    for p in (50, 99):
        base, measured = percentile(local.latencies, p), percentile(other.latencies, p)
        if base > 0:
            print(f"  p{p}: another process's letters take {measured / base:.2f}x serve's own")


if __name__ == "__main__":
    main()
