"""Mail the gateway's SMTP channel verifiably stored (and, with --routing, routed) per second,
as a ratio of what an aiosmtpd that only says 250 acknowledges in the same run.

    .venv/bin/python -m benchmarks.smtp [--mails 400] [--clients 8] [--rounds 3]
        [--routing] [--postgresql [URL]]

Both servers run as their own process on loopback and are driven by the same client:
several concurrent connections, each sending its share with smtplib, rounds interleaved.
The gateway runs as `hotline serve` on a database of its own (a temporary SQLite file, or a
schema made and dropped here on PostgreSQL).

A mail counts for the gateway only when its 250 named a tracking number and the letter
under that number is in the database afterwards with the subject and text sent. With
--routing, routing runs as `serve` runs it (the route lane) and a letter counts as routed
once it has its routing outcome in the database (a status past "received" and the routing
event); routed/s runs from the first mail to the last routing event. A 4xx/5xx, a reply
without a tracking number, a letter missing or different, a client thread that died, a
letter never routed: each is printed beside the rate, never counted in it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import smtplib
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import yaml
from sqlalchemy import Engine, create_engine, func, select

from benchmarks.common import (
    POSTGRES,
    Tally,
    median_rate,
    percentile,
    postgres_schema,
    race,
    ratio,
    summed,
)
from store.models import Event, Letter
from tests.support.processes import Child, free_port

ROOT = Path(__file__).resolve().parents[1]
SENDER = "citizen@example.cn"
RECIPIENT = "12345@hotline.local"
TRACKING = re.compile(r"\bOK (\S+)\s*$")
# What a city's mail is about, so routing meets assignments, triage and duplicates alike.
MATTERS = [
    ("路灯不亮", "{place}的路灯已经坏了三天，晚上很黑，请尽快修理。"),
    ("夜间施工噪音", "{place}工地夜间施工噪音太大，影响居民休息，请查处。"),
    ("公交班次太少", "{place}的公交车班次太少，早高峰等车超过半小时。"),
    ("物业乱收费", "{place}小区物业乱收费，业主多次反映无果。"),
    ("拖欠工资", "我在{place}的工地干活，公司拖欠工资三个月了，求助。"),
    ("咨询", "请问在{place}办理居住证需要什么材料？"),
]
DISTRICTS = ["翠屏区", "南溪区", "叙州区", "江安县", "长宁县"]
STREETS = ["人民路", "南岸东路", "酒都路", "蜀南大道", "长江大道", "西郊路"]


@dataclass(frozen=True)
class Mail:
    n: int
    subject: str
    text: str
    raw: bytes


def mail(run: str, n: int) -> Mail:
    subject, template = MATTERS[n % len(MATTERS)]
    place = f"{DISTRICTS[n // 7 % len(DISTRICTS)]}{STREETS[n // 3 % len(STREETS)]}{n}号"
    subject = f"{subject}（{run}-{n}）"
    body = template.format(place=place) + f"\n编号 {run}-{n}。\n"
    m = EmailMessage()
    m["From"] = f"市民{n} <citizen{n}@example.cn>"
    m["To"] = RECIPIENT
    m["Subject"] = subject
    m["Message-ID"] = f"<{run}-{n}@example.cn>"
    m.set_content(body * 5)
    return Mail(n, subject, (body * 5).strip(), m.as_bytes(policy=SMTP))


@dataclass
class Round:
    """One round's client side: each mail's final reply (code, text, wall-clock time)."""

    replies: dict[int, tuple[int, str, float]] = field(default_factory=dict)
    began: float = 0.0  # wall clock, to compare with the times the database records
    tally: Tally = field(default_factory=Tally)


def drive(port: int, mails: list[Mail], clients: int) -> Round:
    result = Round()

    def client(share: list[Mail]) -> Callable[[Callable[[], None]], None]:
        def work(start: Callable[[], None]) -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.ehlo()
                start()
                for m in share:
                    code, reply = send(smtp, m)
                    result.replies[m.n] = (code, reply, time.time())

        return work

    result.began = time.time()
    result.tally = race([client(mails[i::clients]) for i in range(clients)])
    unanswered = len(mails) - len(result.replies)
    result.tally.fail("mails never answered (their client thread died)", unanswered)
    return result


def send(smtp: smtplib.SMTP, m: Mail) -> tuple[int, str]:
    """The reply that ended this mail's transaction: the DATA reply, or the first refusal."""
    try:
        code, reply = smtp.mail(SENDER)
        if code == 250:
            code, reply = smtp.rcpt(RECIPIENT)
        if code == 250:
            code, reply = smtp.data(m.raw)
            return code, reply.decode(errors="replace")
        smtp.rset()
    except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354)
        smtp.rset()
        error = exc.smtp_error
        return exc.smtp_code, error.decode(errors="replace") if isinstance(error, bytes) else error
    return code, reply.decode(errors="replace")


def verify_baseline(mails: list[Mail], sent: Round) -> Tally:
    """The no-op server stores nothing: its every 250 counts."""
    tally = sent.tally
    for m in mails:
        if m.n in sent.replies:
            code = sent.replies[m.n][0]
            if code == 250:
                tally.verified += 1
            else:
                tally.fail(f"{code} replies")
    return tally


def letters_after(engine: Engine, first: int) -> dict[str, tuple[int, str, str, str]]:
    """tracking number -> (id, subject, text, status) of every letter from id ``first`` on."""
    query = select(Letter.tracking_number, Letter.id, Letter.subject, Letter.text, Letter.status)
    with engine.connect() as conn:
        rows = conn.execute(query.where(Letter.id >= first))
        return {r[0]: (r[1], r[2], r[3], r[4]) for r in rows}


def next_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(Letter.id), 0))).scalar_one()) + 1


def verify_stored(
    engine: Engine, mails: list[Mail], sent: Round, first: int
) -> tuple[Tally, dict[int, int]]:
    """Acknowledged with a tracking number and found under it, whole: the tally, and the
    letter id of each such mail."""
    tally = sent.tally
    stored = letters_after(engine, first)
    numbers: dict[int, str] = {}
    for m in mails:
        if m.n not in sent.replies:
            continue
        code, reply, _ = sent.replies[m.n]
        found = TRACKING.search(reply)
        if code != 250:
            tally.fail(f"{code} replies")
        elif found is None:
            tally.fail("250s without a tracking number")
        else:
            numbers[m.n] = found[1]
    given = Counter(numbers.values())
    ids: dict[int, int] = {}
    for m in mails:
        number = numbers.get(m.n)
        if number is None:
            continue
        row = stored.get(number)
        if given[number] > 1:
            tally.fail("tracking numbers given to two mails")
        elif row is None:
            tally.fail("acknowledged, not in the database")
        elif (row[1], row[2].strip()) != (m.subject, m.text):
            tally.fail("stored with another subject or text")
        else:
            tally.verified += 1
            ids[m.n] = row[0]
    tally.fail("letters stored that no 250 named", len(set(stored) - set(numbers.values())))
    return tally, ids


def wait_routed(engine: Engine, first: int, settle: float) -> None:
    """Until no letter from id ``first`` on is still "received", or none has moved on for
    ``settle`` seconds. The letters are another process's: their state is read, not told."""
    left, moved = -1, time.monotonic()
    query = select(func.count()).where(Letter.id >= first, Letter.status == "received")
    while True:
        with engine.connect() as conn:
            now_left = int(conn.execute(query).scalar_one())
        if now_left == 0:
            return
        if now_left != left:
            left, moved = now_left, time.monotonic()
        elif time.monotonic() - moved > settle:
            return
        time.sleep(0.1)  # the measured times come from the database, not from this loop


@dataclass
class Routed:
    tally: Tally
    outcomes: Counter[str]
    latencies: list[float]  # seconds from a mail's 250 to its routing outcome


def verify_routed(
    engine: Engine, mails: list[Mail], sent: Round, ids: dict[int, int], first: int
) -> Routed:
    """Of the letters verified stored, those with their routing outcome: a status past
    "received" and the routing's event; routed/s runs to the last such event."""
    query = (
        select(Letter.id, Letter.status, func.max(Event.at))
        .join(Event, Event.letter_id == Letter.id)
        .where(Letter.id >= first, Event.actor == "system:routing")
        .group_by(Letter.id, Letter.status)
    )
    with engine.connect() as conn:
        done = {r[0]: (r[1], r[2]) for r in conn.execute(query)}
    tally, outcomes, latencies, last = Tally(), Counter[str](), [], sent.began
    for m in mails:
        letter = ids.get(m.n)
        if letter is None:
            continue  # not verified stored: counted there
        status, at = done.get(letter, ("received", None))
        if status == "received" or at is None:
            tally.fail("stored, never routed")
            continue
        routed_at = at.replace(tzinfo=UTC).timestamp() if at.tzinfo is None else at.timestamp()
        tally.verified += 1
        outcomes[status] += 1
        latencies.append(routed_at - sent.replies[m.n][2])
        last = max(last, routed_at)
    tally.seconds = last - sent.began
    return Routed(tally, outcomes, latencies)


def baseline_server(port: int) -> None:
    from aiosmtpd.smtp import SMTP as Server

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(lambda: Server(Accept()), "127.0.0.1", port)
        print("Uvicorn running (baseline ready)", file=sys.stderr, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_baseline(port: int) -> Child:
    child = Child(
        [sys.executable, "-m", "benchmarks.smtp", "--serve-baseline", str(port)], dict(os.environ)
    )
    child.wait_for_line("Uvicorn running")
    return child


def start_gateway(
    port: int, workdir: Path, database_url: str, routing: bool, route_processes: int | None
) -> Child:
    """`hotline serve` with SMTP alone, routing by the shipped config's departments and rules."""
    shipped = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    if route_processes is not None:
        shipped["jobs"]["lanes"]["route"]["processes"] = route_processes
    config = {
        "database": {"url": database_url},
        "http": {"port": free_port()},
        "channels": {"smtp": {"port": port}, "gsm": {"enabled": False}, "sip": {"enabled": False}},
        "stt": {"workers": 0},
        "ocr": {"enabled": False},
        "routing": {**shipped["routing"], "enabled": routing},
        "deadlines": shipped["deadlines"],
        "jobs": shipped["jobs"],
        "logging": {"level": "INFO"},
    }
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    args = [sys.executable, "-m", "gateway.cli", "--config", str(path), "serve"]
    env = {k: v for k, v in os.environ.items() if k != "HOTLINE_DATABASE_URL"}
    child = Child(args, env)
    child.wait_for_line("Uvicorn running")
    return child


def measure(args: argparse.Namespace, workdir: Path, database_url: str) -> None:
    engine = create_engine(database_url)
    baseline: list[Tally] = []
    acknowledged: list[Tally] = []
    routed: list[Routed] = []
    ports = {"baseline": free_port(), "gateway": free_port()}
    procs: list[Child] = []
    try:
        procs.append(start_baseline(ports["baseline"]))
        procs.append(
            start_gateway(
                ports["gateway"], workdir, database_url, args.routing, args.route_processes
            )
        )
        warm = [mail("warm", n) for n in range(50)]
        for port in ports.values():  # connections, caches and the first pages of the file
            drive(port, warm, args.clients)
        if args.routing:
            wait_routed(engine, 1, args.settle)
        for r in range(args.rounds):  # interleaved, so drift hits both alike
            mails = [mail(f"r{r}", n) for n in range(args.mails)]
            baseline.append(verify_baseline(mails, drive(ports["baseline"], mails, args.clients)))
            first = next_id(engine)
            sent = drive(ports["gateway"], mails, args.clients)
            if args.routing:
                wait_routed(engine, first, args.settle)
            tally, ids = verify_stored(engine, mails, sent, first)
            acknowledged.append(tally)
            if args.routing:
                routed.append(verify_routed(engine, mails, sent, ids, first))
    finally:
        for child in procs:
            child.stop()
        engine.dispose()
    report(args, database_url, baseline, acknowledged, routed)


def report(
    args: argparse.Namespace,
    database_url: str,
    baseline: list[Tally],
    acknowledged: list[Tally],
    routed: list[Routed],
) -> None:
    base, acked = median_rate(baseline), median_rate(acknowledged)
    sent = args.mails * args.rounds
    print(
        f"smtp ({args.clients} connections, {args.rounds} rounds of {args.mails} mails, "
        f"{database_url.split(':')[0].split('+')[0]}, routing {'on' if args.routing else 'off'}; "
        "medians of rounds):"
    )
    print(
        f"  250-only aiosmtpd: {base:.0f} acknowledged/s "
        f"({summed(baseline).verified}/{sent} 250s; {summed(baseline).problems()})"
    )
    print(
        f"  gateway: {acked:.0f} acknowledged and verified stored/s "
        f"({summed(acknowledged).verified}/{sent}; {summed(acknowledged).problems()}); "
        f"acknowledged/baseline = {ratio(acked, base)}"
    )
    if routed:
        rate = median_rate([r.tally for r in routed])
        outcomes: Counter[str] = Counter()
        latencies: list[float] = []
        for r in routed:
            outcomes.update(r.outcomes)
            latencies.extend(r.latencies)
        total = summed(r.tally for r in routed)
        print(
            f"  gateway routed: {rate:.0f}/s from the first mail to the last routing outcome "
            f"({total.verified}/{sent}: {dict(outcomes.most_common())}; {total.problems()}); "
            f"250 to routed p50 {percentile(latencies, 50):.2f} s, "
            f"p99 {percentile(latencies, 99):.2f} s; routed/baseline = {ratio(rate, base)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mails", type=int, default=400)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgresql",
        nargs="?",
        const=POSTGRES,
        metavar="URL",
        help=f"run on PostgreSQL (default {POSTGRES}) in a schema made and dropped here",
    )
    parser.add_argument(
        "--routing",
        action="store_true",
        help="route every letter as serve does by default, and count until each is routed",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=60,
        help="with --routing: stop waiting once no letter was routed for this many seconds",
    )
    parser.add_argument(
        "--route-processes",
        type=int,
        default=None,
        metavar="N",
        help="with --routing: the route lane in N worker processes (default: as config.yaml)",
    )
    parser.add_argument("--serve-baseline", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        baseline_server(args.serve_baseline)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgresql is None:
            measure(args, Path(tmp), f"sqlite:///{Path(tmp) / 'hotline.db'}")
            return
        url, drop = postgres_schema(args.postgresql)
        try:
            measure(args, Path(tmp), url)
        finally:
            drop()


if __name__ == "__main__":
    main()
