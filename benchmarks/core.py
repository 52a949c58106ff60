"""The routing core at scale: routing decisions per second, and the chasing sweep and the
ten-day bulletin over 100k and 1M letters (they must stay interactive as the city grows).

    .venv/bin/python -m benchmarks.core [--backend sqlite|postgresql] [--sizes 100000,1000000]

Ratios are against a baseline measured in the same run: routing against jieba's own
segmentation of the same texts (the unavoidable part), and the growth of each query from
the smaller size to the larger (flat means the indexes carry it).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url

from gateway.contract.config import Config, load_config
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Assignment, Department, Letter
from store.pii import Keyring

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# A throwaway key: these databases live for one run.
PII = Keyring.parse(Keyring.new_key())
TEXTS = [
    "我要投诉翠屏区人民路的路灯坏了三天，晚上很黑",
    "请问办理居住证需要什么材料",
    "南溪区某小区物业乱收费，希望有关部门处理",
    "叙州区工地夜间施工噪音太大影响休息",
    "公交车司机态度差，建议加强管理",
    "公司拖欠工资三个月了，求助",
]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def routing_rate(config: Config, n: int) -> tuple[float, float]:
    workflow = Workflow(config.routing, config.deadlines, WorkCalendar(config.zone), lambda: NOW)
    rules = workflow.rules
    texts = [random.Random(i).choice(TEXTS) + f"（第{i}号）" for i in range(n)]
    rules.words(texts[0])  # load jieba's dictionary outside the timing
    started = time.perf_counter()
    for t in texts:
        rules.words(t)
    segmentation = n / (time.perf_counter() - started)
    started = time.perf_counter()
    for t in texts:
        words = rules.words(t)
        category = rules.classify(words)
        rules.route(category, t, rules.district(t))
    return n / (time.perf_counter() - started), segmentation


def database(backend: str, workdir: Path) -> tuple[Engine, str | None]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{workdir / f'core-{uuid.uuid4().hex}.db'}", pii=PII)
        upgrade(engine)
        return engine, None
    schema = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    with create_engine(POSTGRES).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False), pii=PII)
    upgrade(engine)
    return engine, schema


def fill(engine: Engine, have: int, upto: int, departments: list[int]) -> None:
    """Open letters with assignments; 1 in 1,000 past its deadline, the rest due later."""
    rng = random.Random(have)
    for start in range(have, upto, 10_000):
        letters, assignments = [], []
        for i in range(start, min(start + 10_000, upto)):
            received = NOW - timedelta(days=rng.randint(0, 60), minutes=rng.randint(0, 1440))
            due = NOW - timedelta(hours=1) if i % 1000 == 0 else NOW + timedelta(days=30)
            letters.append(
                {
                    "id": i + 1,
                    "tracking_number": f"B{i:014d}",
                    "verification_code": "000000",
                    "channel": rng.choice(["phone", "sms", "email", "web"]),
                    "source": "bench",
                    "external_id": f"b{i}",
                    "received_at": received,
                    "status": "assigned",
                    "category": rng.choice(["complaint", "inquiry", "help"]),
                    "subject": "",
                    "text": rng.choice(TEXTS),
                    "anonymous": False,
                    "confidential": False,
                    "publish": False,
                    "due_at": due,
                    "mode": "assign",
                    "reply_type": "time_limited",
                }
            )
            assignments.append(
                {
                    "letter_id": i + 1,
                    "department_id": rng.choice(departments),
                    "mode": "assign",
                    "reply_type": "time_limited",
                    "lead": True,
                    "status": "assigned",
                    "assigned_at": received,
                    "due_at": due,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Letter), letters)
            conn.execute(insert(Assignment), assignments)


def timed(action: object) -> float:
    started = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--decisions", type=int, default=5000)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    rate, segmentation = routing_rate(config, args.decisions)
    print(
        f"routing: {rate:.0f} decisions/s; jieba segmentation alone {segmentation:.0f}/s; "
        f"routing/segmentation = {rate / segmentation:.2f}"
    )
    sizes = [int(s) for s in args.sizes.split(",")]
    with TemporaryDirectory() as tmp:
        engine, schema = database(args.backend, Path(tmp))
        sessions = make_sessionmaker(engine)
        workflow = Workflow(
            config.routing, config.deadlines, WorkCalendar(config.zone), lambda: NOW
        )
        with sessions.begin() as session:
            workflow.sync_departments(session)
        with engine.connect() as conn:
            departments = list(conn.execute(select(Department.id)).scalars())
        results = []
        have = 0
        try:
            for size in sizes:
                fill(engine, have, size, departments)
                have = size
                with engine.begin() as conn:
                    conn.execute(text("ANALYZE"))
                first = timed(lambda: workflow.sweep(sessions, NOW))  # issues the urges
                again = timed(lambda: workflow.sweep(sessions, NOW))  # nothing new: the norm
                bulletin = _bulletin_time(engine, config)
                results.append((size, first, again, bulletin))
                print(
                    f"{args.backend} {size:,} open letters: sweep issuing {size // 1000} urges "
                    f"{first:.2f} s, idle sweep {again:.3f} s, bulletin {bulletin:.2f} s"
                )
        finally:
            engine.dispose()
            if schema:
                with create_engine(POSTGRES).begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        (small, *_), (large, *_) = results[0], results[-1]
        for label, i in (("idle sweep", 2), ("bulletin", 3)):
            growth = results[-1][i] / results[0][i]
            print(f"{label}: {large // small}x the letters, {growth:.2f}x the time")


def _bulletin_time(engine: Engine, config: Config) -> float:
    from gateway.core import stats

    start, end = NOW - timedelta(days=10), NOW
    sessions = make_sessionmaker(engine)

    def run() -> None:
        with sessions() as session:
            stats.build_bulletin(session, "bench", start, end, config.zone)

    return timed(run)


if __name__ == "__main__":
    main()
