"""The ten-day bulletin (十日通报) over a city's worth of letters (issue 16: under a second at
a million), against the bare SQL that counts the same figures on the same database.

    .venv/bin/python -m benchmarks.bulletin [--backend sqlite|postgresql] [--letters 1000000]

The letters are spread over 60 days and look like a city's: every channel, category and
status, districts, rejections, joint letters, replies on time and late, returns, urges
and follow-up visits. The bulletin of the last ten days is built `--rounds` times, each
beside one round of the baseline: the plain GROUP BY queries that give the same counts
(volume by day and channel, category, status, district; letters per department;
assignments, replies and overdue ones per department; events by kind) and jieba's own cut
of the texts that hot topics reads. The figure is the median bulletin over the median
baseline. Every bulletin is checked against the counts kept while seeding; a mismatch is
printed as a failure and fails the run.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, text

from benchmarks import core
from benchmarks.common import POSTGRES, Tally, postgres_schema, ratio
from gateway.contract.config import load_config
from gateway.core import stats
from gateway.core.deadlines import WorkCalendar
from gateway.core.segmentation import Segmenter
from gateway.core.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Assignment, Department, Event, Letter, UtcDateTime
from store.pii import Keyring

ROOT = Path(__file__).resolve().parents[1]
PII = Keyring.parse(Keyring.new_key())  # a throwaway key: the database lives for one run
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
START, END = NOW - timedelta(days=10), NOW
PERIOD = {"start": START, "end": END}
TEXTS = [
    *core.TEXTS,
    "小区门口井盖缺失，老人小孩经过很危险",
    "连续两天停水，没有任何通知",
]
DISTRICTS = ["翠屏区", "南溪区", "叙州区", "江安县", "长宁县", "高县", "珙县", "筠连县"]
CATEGORIES = ["complaint", "help", "suggestion", "inquiry", "report", "opinion", "other", None]
# (status, weight): what becomes of letters; the assigned ones have assignments.
STATUSES = [
    ("received", 2),
    ("rejected", 5),
    ("duplicate", 3),
    ("assigned", 25),
    ("replied", 25),
    ("closed", 40),
]
ASSIGNED = {"assigned", "replied", "closed"}


@dataclass
class Expected:
    """What the bulletin of [START, END) must say, kept while seeding."""

    total: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    kept: int = 0  # not rejected: what hot topics may read
    by_district: Counter[str] = field(default_factory=Counter)  # rejected ones left out
    assigned: Counter[int] = field(default_factory=Counter)  # by department id
    replied: Counter[int] = field(default_factory=Counter)
    overdue: Counter[int] = field(default_factory=Counter)
    urges: Counter[int] = field(default_factory=Counter)
    visited: Counter[int] = field(default_factory=Counter)


def seed(engine: Engine, letters: int, departments: list[int]) -> Expected:
    rng = random.Random(16)
    expected = Expected()
    statuses, weights = zip(*STATUSES, strict=True)
    assignment_id = event_id = 0
    for first in range(0, letters, 10_000):
        rows: dict[str, list[dict[str, Any]]] = {"letters": [], "assignments": [], "events": []}
        for i in range(first, min(first + 10_000, letters)):
            received = NOW - timedelta(days=60) + timedelta(seconds=rng.randrange(61 * 86400))
            status = rng.choices(statuses, weights)[0]
            channel = rng.choice(["phone", "sms", "email", "fax", "web"])
            district = rng.choice([*DISTRICTS, None])
            rows["letters"].append(
                {
                    "id": i + 1,
                    "tracking_number": f"B{i:014d}",
                    "verification_code": "000000",
                    "channel": channel,
                    "source": "bench",
                    "external_id": f"b{i}",
                    "received_at": received,
                    "status": status,
                    "category": rng.choice(CATEGORIES),
                    "subject": "",
                    "text": f"{rng.choice(TEXTS)}（{i}）",
                    "anonymous": False,
                    "confidential": False,
                    "publish": False,
                    "district": district,
                }
            )
            period = START <= received < END
            if period:
                expected.total += 1
                expected.by_channel[channel] += 1
                expected.by_status[status] += 1
                if status != "rejected":
                    expected.kept += 1
                    if district:
                        expected.by_district[district] += 1
            if status not in ASSIGNED:
                continue
            # One in ten is joint (会签件): two departments.
            for lead in (True, False) if rng.random() < 0.1 else (True,):
                assignment_id += 1
                department = rng.choice(departments)
                assigned = received + timedelta(minutes=rng.randrange(1, 600))
                due = assigned + timedelta(days=5)
                returned = rng.random() < 0.03
                replied = None
                if not returned and status != "assigned":
                    replied = assigned + timedelta(hours=rng.randrange(1, 200))
                rows["assignments"].append(
                    {
                        "id": assignment_id,
                        "letter_id": i + 1,
                        "department_id": department,
                        "mode": "assign",
                        "reply_type": "time_limited",
                        "lead": lead,
                        "status": "returned" if returned else status,
                        "assigned_at": assigned,
                        "due_at": due,
                        "replied_at": replied,
                    }
                )
                events: list[tuple[str, datetime, dict[str, bool]]] = []
                if returned:
                    events.append(("returned", assigned + timedelta(hours=2), {}))
                if rng.random() < 0.05:
                    events.append(("urged", assigned + timedelta(days=3), {}))
                if status == "closed" and lead and replied is not None:
                    happy = {"satisfied": rng.random() < 0.8}
                    events.append(("visited", replied + timedelta(days=1), happy))
                for kind, at, detail in events:
                    event_id += 1
                    rows["events"].append(
                        {
                            "id": event_id,
                            "letter_id": i + 1,
                            "department_id": department,
                            "at": at,
                            "actor": "bench",
                            "kind": kind,
                            "detail": detail,
                        }
                    )
                    if START <= at < END and kind == "urged":
                        expected.urges[department] += 1
                    elif START <= at < END and kind == "visited":
                        expected.visited[department] += 1
                if returned:
                    continue
                if START <= assigned < END:
                    expected.assigned[department] += 1
                    if replied is not None and replied < END:
                        expected.replied[department] += 1
                if assigned < END and due < END and (replied is None or replied >= END):
                    expected.overdue[department] += 1
        with engine.begin() as conn:
            conn.execute(insert(Letter), rows["letters"])
            conn.execute(insert(Assignment), rows["assignments"])
            if rows["events"]:
                conn.execute(insert(Event), rows["events"])
    return expected


def check(bulletin: stats.Bulletin, expected: Expected, ids: dict[str, int], tally: Tally) -> None:
    v = bulletin.volume
    by_code = {d.code: d for d in bulletin.departments}

    def per_department(name: str) -> dict[int, int]:
        return {ids[code]: getattr(d, name) for code, d in by_code.items() if getattr(d, name)}

    checks = {
        "total": (v.total, expected.total),
        "by channel": (
            {c.key: c.count for c in v.by_channel if c.count},
            dict(expected.by_channel),
        ),
        "by status": ({c.key: c.count for c in v.by_status if c.count}, dict(expected.by_status)),
        "by day": (sum(d.total for d in v.by_day), expected.total),
        "districts": (
            {c.key: c.count for c in bulletin.hot_topics.districts},
            dict(expected.by_district),
        ),
        "assigned": (per_department("assigned"), dict(expected.assigned)),
        "replied": (per_department("replied"), dict(expected.replied)),
        "overdue": (per_department("overdue_open"), dict(expected.overdue)),
        "urges": (per_department("urges"), dict(expected.urges)),
        "visited": (per_department("visited"), dict(expected.visited)),
        "hot words sampled": (bulletin.hot_topics.sampled, min(expected.kept, 5000)),
    }
    for name, (got, want) in checks.items():
        if got == want:
            tally.verified += 1
        else:
            tally.fail(f"{name}: bulletin {str(got)[:120]} != seeded {str(want)[:120]}")


def baseline_queries(engine: Engine) -> list[Callable[[Any], list[Any]]]:
    """The same counts as plain SQL, one GROUP BY each (each bounded the way its index can
    answer, as anyone writing it by hand against this schema would): what any report of
    this database has to read."""
    day = "CAST(received_at AS DATE)"
    if engine.dialect.name == "sqlite":
        day = "substr(received_at, 1, 10)"  # stored as UTC text
    period = "received_at >= :start AND received_at < :end"
    overdue = "status != 'returned' AND assigned_at < :end AND due_at < :end"
    kinds = "'returned', 'urged', 'visited', 'extension_requested', 'extension_decided'"
    sqls = [
        f"SELECT {day}, channel, category, status, count(*) FROM letters WHERE {period}"
        " GROUP BY 1, 2, 3, 4",
        # Grouped by an expression: by the column, SQLite reads the district index's order.
        f"SELECT coalesce(district, district), count(*) FROM letters WHERE {period}"
        " AND status != 'rejected' AND district IS NOT NULL GROUP BY 1",
        "SELECT a.department_id, count(DISTINCT a.letter_id) FROM letters l"
        " JOIN assignments a ON a.letter_id = l.id WHERE l.received_at >= :start"
        " AND l.received_at < :end AND a.assigned_at >= :start AND a.status != 'returned'"
        " GROUP BY a.department_id",
        "SELECT department_id, count(*), count(replied_at) FROM assignments"
        " WHERE assigned_at >= :start AND assigned_at < :end AND status != 'returned'"
        " GROUP BY department_id",
        # Grouped by an expression: by the column, SQLite walks the department index.
        f"SELECT department_id + 0, count(*) FROM assignments WHERE replied_at IS NULL"
        f" AND {overdue} GROUP BY 1",
        f"SELECT department_id + 0, count(*) FROM assignments WHERE replied_at >= :end"
        f" AND {overdue} GROUP BY 1",
        f"SELECT department_id, kind, count(*) FROM events WHERE kind IN ({kinds})"
        " AND at >= :start AND at < :end AND department_id IS NOT NULL"
        " GROUP BY department_id, kind",
        f"SELECT text FROM letters WHERE {period} AND status != 'rejected'"
        " ORDER BY received_at DESC LIMIT 5000",
    ]
    # Bound as the models store them (SQLite keeps UTC text).
    moments = [bindparam(name, value, type_=UtcDateTime()) for name, value in PERIOD.items()]

    def query(sql: str) -> Callable[[Any], list[Any]]:
        statement = text(sql).bindparams(*(m for m in moments if f":{m.key}" in sql))
        return lambda conn: list(conn.execute(statement).all())

    return [query(sql) for sql in sqls]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--letters", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    with TemporaryDirectory() as tmp:
        drop: Callable[[], None] = lambda: None  # noqa: E731
        if args.backend == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bulletin.db'}"
        else:
            url, drop = postgres_schema(POSTGRES)
        engine = make_engine(url, pii=PII)
        try:
            upgrade(engine)
            sessions = make_sessionmaker(engine)
            workflow = Workflow(
                config.routing, config.deadlines, WorkCalendar(config.zone), lambda: NOW
            )
            with sessions.begin() as session:
                workflow.sync_departments(session)
            with engine.connect() as conn:
                ids = {
                    code: id_ for code, id_ in conn.execute(select(Department.code, Department.id))
                }
            began = time.perf_counter()
            expected = seed(engine, args.letters, sorted(ids.values()))
            # The statistics a live database keeps (PostgreSQL's autovacuum also sets the
            # visibility map that lets index-only scans skip the table).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE" if args.backend == "postgresql" else "ANALYZE"))
            print(
                f"{args.backend}: {args.letters:,} letters seeded in "
                f"{time.perf_counter() - began:.0f} s, {expected.total:,} in the ten days"
            )
            bulletins, baselines, tally = measure(engine, config.zone, args.rounds, expected, ids)
        finally:
            engine.dispose()
            drop()
    bulletin, baseline = statistics.median(bulletins), statistics.median(baselines)
    print(
        f"bulletin {bulletin:.3f} s (min {min(bulletins):.3f}), baseline SQL + jieba "
        f"{baseline:.3f} s (min {min(baselines):.3f}); bulletin/baseline = "
        f"{ratio(bulletin, baseline)}; {tally.verified} checks verified, {tally.problems()}"
    )
    if tally.failures:
        sys.exit(1)


def measure(
    engine: Engine, zone: Any, rounds: int, expected: Expected, ids: dict[str, int]
) -> tuple[list[float], list[float], Tally]:
    sessions = make_sessionmaker(engine)
    queries = baseline_queries(engine)
    segmenter = Segmenter(stats.HOTLINE_WORDS)
    segmenter.cut(TEXTS[0])  # jieba's dictionary loads outside the timing
    tally = Tally()
    bulletins, baselines, sqls = [], [], []
    for n in range(rounds + 1):  # the first round warms caches and is not counted
        began = time.perf_counter()
        with sessions() as session:
            bulletin = stats.build_bulletin(session, "bench", START, END, zone)
        took = time.perf_counter() - began
        check(bulletin, expected, ids, tally)
        began = time.perf_counter()
        with engine.connect() as conn:
            results = [q(conn) for q in queries]
        sql = time.perf_counter() - began
        for (words,) in results[-1]:
            segmenter.cut(words)
        base = time.perf_counter() - began
        if n:
            bulletins.append(took)
            baselines.append(base)
            sqls.append(sql)
    print(f"of the baseline, its SQL alone {statistics.median(sqls):.3f} s (median)")
    return bulletins, baselines, tally


if __name__ == "__main__":
    main()
