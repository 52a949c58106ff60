"""The console's pages at 1M letters: median and p95 render time of the inbox, dashboard,
supervision board, a clerk's queue and one letter, signed in as the staff who use them.

    .venv/bin/python -m benchmarks.console [--letters 1000000] [--postgresql [URL]] [--analyze]

The database (a temporary SQLite file, or a schema of its own on PostgreSQL, dropped at the
end) is filled straight through Core inserts with a year of letters spread as a city's
would be: most closed, about 1% new, about 3% open with deadlines, some of those overdue.
Each page is fetched in-process through the real ASGI app; the baseline is the same app's
sign-in form in the same rounds (a template rendered, no letter queried), so the ratio is
the cost of the page's own queries. Only right answers are timed: a 200 that is the page
(not the sign-in form; the letter's page names the letter). Any other answer is counted
beside its page, which stays in the table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, insert, select, text
from starlette.applications import Starlette

from benchmarks.common import postgres_schema
from gateway.contract.config import Config, load_config
from gateway.contract.tracking import tracking_number
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import OPEN_ASSIGNMENT, Workflow
from gateway.frontends.console import accounts
from gateway.frontends.console.app import Console
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Assignment, Chase, Citizen, Department, Event, Letter, Reply
from store.pii import Keyring

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get(
    "HOTLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
BATCH = 10_000
PASSWORD = "correct horse battery"
# username -> (role, department)
STAFF = {
    "zhang": ("operator", None),
    "ling": ("leader", None),
    "li": ("department", "city-admin"),
}
# (label, who, path); the letter page's path is filled in once the data is there.
PAGES = (
    ("/console/inbox", "zhang", "/console/inbox"),
    ("/console/inbox?status=all", "zhang", "/console/inbox?status=all"),
    ("/console/inbox?channel=sms", "zhang", "/console/inbox?channel=sms"),
    ("/console/dashboard", "ling", "/console/dashboard"),
    ("/console/supervision", "zhang", "/console/supervision"),
    ("/console/queue", "li", "/console/queue"),
    ("/console/letters/<n>", "zhang", "/console/letters/{number}"),
)
BASELINE = "/console/login"

CHANNELS: Mapping[str, float] = {"phone": 55, "web": 18, "sms": 12, "email": 10, "fax": 5}
CATEGORIES: Mapping[str, float] = {
    "complaint": 35,
    "inquiry": 25,
    "help": 14,
    "suggestion": 10,
    "report": 8,
    "opinion": 5,
    "other": 3,
}
# Letter status by age: a week old, a month old, older. New (received, triage) ~1.3% of
# all, open with a department (assigned, signed, promised) ~3%, the rest mostly closed.
STATUS_BY_AGE: tuple[tuple[int, Mapping[str, float]], ...] = (
    (
        7,
        {
            "received": 5,
            "triage": 40,
            "escalated": 1,
            "assigned": 20,
            "signed": 15,
            "promised": 4,
            "replied": 8,
            "closed": 2,
            "rejected": 3,
            "duplicate": 2,
        },
    ),
    (
        30,
        {
            "triage": 5,
            "assigned": 8,
            "signed": 12,
            "promised": 8,
            "replied": 30,
            "closed": 31,
            "rejected": 3,
            "duplicate": 3,
        },
    ),
    (
        366,
        {
            "triage": 0.1,
            "escalated": 0.1,
            "assigned": 0.1,
            "signed": 0.1,
            "promised": 0.1,
            "replied": 3.5,
            "closed": 90,
            "rejected": 3,
            "duplicate": 3,
        },
    ),
)
DISTRICTS = ["翠屏区", "南溪区", "叙州区", "江安县", "长宁县", "高县", "珙县", "筠连县", "兴文县"]
STREETS = ["人民路", "南岸东路", "酒都路", "蜀南大道", "长江大道", "西郊路", "鲁家园", "白沙湾"]
# (subject, text with {place}, department); the department is what the city's rules pick.
MATTERS = [
    ("路灯不亮", "{place}的路灯已经坏了三天，晚上很黑，请尽快修理。", "city-admin"),
    ("井盖缺失", "{place}有一个井盖丢了，行人很危险，希望尽快处理。", "city-admin"),
    ("占道经营", "{place}每天晚上有人占道摆摊，车辆无法通行。", "city-admin"),
    ("夜间施工噪音", "{place}工地夜间施工噪音太大，影响居民休息，请查处。", "environment"),
    ("污水排放", "{place}附近有工厂向河里排污，水有异味。", "environment"),
    ("公交班次太少", "{place}的公交车班次太少，早高峰等车超过半小时。", "transport"),
    ("道路破损", "{place}道路破损严重，雨天积水，建议修补。", "transport"),
    ("物业乱收费", "{place}小区物业乱收费，业主多次反映无果。", "housing"),
    ("燃气管道老化", "{place}小区燃气管道老化，担心安全，请有关部门检查。", "housing"),
    ("食品安全", "{place}一家餐馆卫生条件差，吃后腹泻，请监管部门查处。", "market"),
    ("价格欺诈", "{place}超市标价与结算价格不符，涉嫌价格欺诈。", "market"),
    ("拖欠工资", "我在{place}的工地干活，公司拖欠工资三个月了，求助。", "labour"),
    ("社保转移", "请问从外地转入{place}的社保关系怎么办理？", "labour"),
]
REPLIES = [
    "经核查，已安排人员现场处理，问题已解决。感谢您对我市工作的关心和支持。",
    "您反映的问题已转交属地街道办理，并将持续跟进，如有疑问请致电本单位。",
    "经调查，情况属实，已依法责令整改，后续将加强日常巡查。",
]


def weighted(rng: random.Random, table: Mapping[str, float]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


@dataclass
class Rows:
    """One batch of rows for each table, with the ids the next batch continues from."""

    letters: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    chases: list[dict[str, Any]] = field(default_factory=list)

    def event(self, letter_id: int, at: datetime, actor: str, kind: str, **detail: Any) -> None:
        department = detail.pop("department_id", None)
        self.events.append(
            {
                "letter_id": letter_id,
                "department_id": department,
                "at": min(at, NOW),
                "actor": actor,
                "kind": kind,
                "detail": detail,
            }
        )


class Filler:
    """Generates the city's letters in received order, ids given here (1, 2, ...)."""

    def __init__(self, total: int, departments: dict[str, int], citizens: int) -> None:
        self.total = total
        self.departments = departments
        self.codes = list(departments)
        self.citizen_every = max(1, total // citizens)
        self.rng = random.Random(12345)
        self.sequences: Counter[date] = Counter()
        self.assignment_id = 0

    def batches(self) -> Iterator[Rows]:
        for start in range(0, self.total, BATCH):
            rows = Rows()
            for i in range(start, min(start + BATCH, self.total)):
                self._letter(rows, i)
            yield rows

    def _letter(self, rows: Rows, i: int) -> None:
        rng, letter_id = self.rng, i + 1
        received = NOW - YEAR + YEAR * (i / self.total) + timedelta(seconds=rng.random() * 30)
        age = (NOW - received).days
        status = weighted(rng, next(s for limit, s in STATUS_BY_AGE if age < limit))
        channel, category = weighted(rng, CHANNELS), weighted(rng, CATEGORIES)
        subject, template, department = rng.choice(MATTERS)
        place = f"{rng.choice(DISTRICTS)}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
        day = (received + timedelta(hours=8)).date()  # the city's day (UTC+8)
        self.sequences[day] += 1
        letter: dict[str, Any] = {
            "id": letter_id,
            "tracking_number": tracking_number(day, self.sequences[day]),
            "verification_code": f"{rng.randrange(10**6):06d}",
            "channel": channel,
            "source": f"bench-{channel}",
            "external_id": f"bench-{letter_id}",
            "received_at": received,
            "status": status,
            "category": None if status == "received" else category,
            "subject": subject if channel in ("email", "web") else "",
            "text": template.format(place=place),
            "anonymous": rng.random() < 0.03,
            "confidential": rng.random() < 0.02,
            "citizen_id": (i // self.citizen_every + 1) if i % self.citizen_every == 0 else None,
            "district": place[:3],
            "rejection": "empty" if status == "rejected" else None,
            "duplicate_of_id": max(1, letter_id - rng.randint(1, 500))
            if status == "duplicate" and letter_id > 1
            else None,
            "publish": False,
            "mode": None,
            "reply_type": None,
            "due_at": None,
            "replied_at": None,
            "closed_at": None,
            "satisfaction": None,
        }
        rows.letters.append(letter)
        rows.event(letter_id, received, f"channel:bench-{channel}", "received", channel=channel)
        if status in ("received", "rejected", "duplicate", "escalated", "triage"):
            if status != "received":
                rows.event(letter_id, received + timedelta(minutes=1), "system:routing", status)
            return
        direct = status in ("replied", "closed") and rng.random() < 0.08
        if direct:  # 直办: the hotline answered itself
            letter["mode"], letter["reply_type"] = "direct", None
            self._replied(rows, letter, received + timedelta(hours=rng.uniform(0.2, 8)), None)
            return
        self._assigned(rows, letter, received, status, department)

    def _assigned(
        self, rows: Rows, letter: dict[str, Any], received: datetime, status: str, code: str
    ) -> None:
        rng, letter_id = self.rng, letter["id"]
        if rng.random() < 0.3:  # what no keyword rule caught, an operator dispatched
            code = rng.choice(self.codes)
        lead = self.departments[code]
        joint = rng.random() < 0.05
        co = self.departments[rng.choice([c for c in self.codes if c != code])] if joint else None
        assigned_at = received + timedelta(minutes=rng.uniform(2, 240))
        if status in OPEN_ASSIGNMENT:
            # Open ones: most due within the next two weeks, some already past it.
            floor = assigned_at + timedelta(hours=4)
            due = max(floor, NOW + timedelta(days=rng.uniform(-3, 12)))
        else:
            due = assigned_at + timedelta(days=rng.choice([5, 9, 21 if joint else 9]))
        letter.update(
            mode="assign",
            reply_type="joint" if joint else "time_limited",
            due_at=due,
        )
        signed_at = assigned_at + timedelta(hours=rng.uniform(0.5, 20))
        for department, is_lead in ((lead, True), (co, False)):
            if department is None:
                continue
            self.assignment_id += 1
            row = {
                "id": self.assignment_id,
                "letter_id": letter_id,
                "department_id": department,
                "mode": "assign",
                "reply_type": letter["reply_type"],
                "lead": is_lead,
                "status": status if status in OPEN_ASSIGNMENT else "replied",
                "assigned_at": assigned_at,
                "due_at": due,
                "signed_at": None if status == "assigned" else min(signed_at, NOW),
                "replied_at": None,
                "promised_at": due if status == "promised" else None,
            }
            rows.assignments.append(row)
            rows.event(
                letter_id,
                assigned_at,
                "system:routing",
                "assigned",
                department_id=department,
                lead=is_lead,
                reply_type=letter["reply_type"],
                due_at=due.isoformat(),
            )
            if status != "assigned":
                rows.event(
                    letter_id, signed_at, "department:bench", "signed", department_id=department
                )
            if status in OPEN_ASSIGNMENT and is_lead:
                self._chased(rows, row)
            if not is_lead and status in ("replied", "closed"):
                at = min(signed_at + timedelta(days=rng.uniform(0.5, 4)), NOW)
                row["replied_at"] = at
                rows.replies.append(self._reply(letter_id, department, "opinion", at))
        if status == "promised":
            at = min(signed_at + timedelta(hours=2), NOW)
            rows.replies.append(self._reply(letter_id, lead, "interim", at))
        if status in ("replied", "closed"):
            at = signed_at + timedelta(days=rng.uniform(0.3, 8))
            rows.assignments[-1 if co is None else -2]["replied_at"] = min(at, NOW)
            self._replied(rows, letter, at, lead)

    def _replied(
        self, rows: Rows, letter: dict[str, Any], at: datetime, department: int | None
    ) -> None:
        at = min(at, NOW - timedelta(minutes=5))
        letter["replied_at"] = at
        rows.replies.append(self._reply(letter["id"], department, "final", at))
        rows.event(
            letter["id"], at, "department:bench", "replied", department_id=department, reply="final"
        )
        if letter["status"] == "closed":
            closed = min(at + timedelta(days=self.rng.uniform(0.5, 3)), NOW)
            letter["closed_at"], letter["satisfaction"] = closed, "satisfied"
            rows.event(letter["id"], closed, "operator:bench", "visited", satisfied=True)

    def _reply(
        self, letter_id: int, department: int | None, kind: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "letter_id": letter_id,
            "department_id": department,
            "kind": kind,
            "text": self.rng.choice(REPLIES),
            "public": False,
            "author": "department:bench",
            "at": at,
        }

    def _chased(self, rows: Rows, assignment: dict[str, Any]) -> None:
        """What the sweep would have issued by now: a warning, an urge, a supervision."""
        due: datetime = assignment["due_at"]
        chases = []
        if due - timedelta(hours=24) <= NOW:
            chases.append(("warning", "warned", due - timedelta(hours=24)))
        if due <= NOW:
            chases.append(("urge", "urged", due + timedelta(minutes=10)))
        if due + timedelta(hours=48) <= NOW:
            chases.append(("supervise", "supervised", due + timedelta(hours=48, minutes=10)))
        for kind, event, at in chases:
            at = min(max(at, assignment["assigned_at"]), NOW)
            rows.chases.append({"assignment_id": assignment["id"], "kind": kind, "at": at})
            rows.event(
                assignment["letter_id"],
                at,
                "system:sweep",
                event,
                department_id=assignment["department_id"],
                due_at=due.isoformat(),
            )


def load(engine: Engine, config: Config, letters: int, analyze: bool = False) -> Counter[str]:
    """The schema, the departments and staff, then ``letters`` letters; returns row counts.

    SQLite is left without ANALYZE, as the gateway leaves it: with sqlite_stat1 (this
    SQLite has no STAT4) the planner believes every status holds a tenth of the letters.
    """
    upgrade(engine)
    workflow = workflow_of(config)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
        for username, (role, department) in STAFF.items():
            accounts.add_user(session, username, f"用户{username}", role, PASSWORD, NOW, department)
    with engine.connect() as conn:
        departments = {c: i for c, i in conn.execute(select(Department.code, Department.id))}
    citizens = max(10, letters // 200)
    rng = random.Random(1)
    with engine.begin() as conn:  # through the PII type: encrypted, with lookup hashes
        conn.execute(
            insert(Citizen),
            [
                {
                    "name": rng.choice("张王李赵刘陈杨黄周吴") + rng.choice("伟芳娜敏静丽强磊军洋"),
                    "phone": f"+86138{rng.randrange(10**8):08d}",
                    "email": f"citizen{n}@example.cn" if n % 3 == 0 else None,
                    "id_number": None,
                    "address": None,
                    "ip": None,
                }
                for n in range(citizens)
            ],
        )
    counts: Counter[str] = Counter(citizens=citizens)
    for rows in Filler(letters, departments, citizens).batches():
        with engine.begin() as conn:
            for model, batch in (
                (Letter, rows.letters),
                (Assignment, rows.assignments),
                (Reply, rows.replies),
                (Event, rows.events),
                (Chase, rows.chases),
            ):
                if batch:
                    conn.execute(insert(model), batch)
                    counts[str(model.__tablename__)] += len(batch)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            for table in ("letters", "assignments"):  # ids were given: move the sequences on
                sequence = f"pg_get_serial_sequence('{table}', 'id')"
                conn.execute(text(f"SELECT setval({sequence}, max(id)) FROM {table}"))
        # What autovacuum would have done by now on a live server: statistics, and the
        # visibility map that lets index-only scans skip the heap.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    elif analyze:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return counts


def workflow_of(config: Config) -> Workflow:
    return Workflow(config.routing, config.deadlines, WorkCalendar(config.zone), lambda: NOW)


def sample_letter(engine: Engine) -> str:
    """An open letter with a citizen, assignments, replies and history: the fullest page."""
    with engine.connect() as conn:
        number = conn.execute(
            select(Letter.tracking_number)
            .where(Letter.citizen_id.is_not(None), Letter.status == "promised")
            .order_by(Letter.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        if number is None:
            number = conn.execute(
                select(Letter.tracking_number).order_by(Letter.id.desc()).limit(1)
            ).scalar_one()
    return str(number)


async def sign_in(app: Starlette, username: str) -> httpx.AsyncClient:
    client = browser(app)
    form = await client.get("/console/login")
    token = re.search(r'name="token" value="([^"]+)"', form.text)
    assert token, form.text
    answer = await client.post(
        "/console/login", data={"username": username, "password": PASSWORD, "token": token[1]}
    )
    assert answer.status_code == 303, answer.text
    return client


def browser(app: Starlette) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://hotline.test")


def looks_right(label: str, answer: httpx.Response, number: str) -> str | None:
    """Why this answer is not the page asked for, or None: a 200 that is the page itself
    (the sign-in form only for the baseline; the letter's page names the letter)."""
    if answer.status_code != 200:
        return f"HTTP {answer.status_code}"
    login_form = 'name="password"' in answer.text
    if label == BASELINE:
        return None if login_form else "not the sign-in form"
    if login_form:
        return "the sign-in form instead"
    if "<n>" in label and number not in answer.text:
        return "without the letter's number"
    return None


@dataclass
class Samples:
    """A page's render times (right answers only) and what the other answers were."""

    times: list[float] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


async def measure(app: Starlette, number: str, rounds: int, warmup: int) -> dict[str, Samples]:
    """Every page once per round, the baseline among them: noise hits them all alike. A
    wrong answer is counted beside its page, never timed, and the page stays measured."""
    clients = {name: await sign_in(app, name) for name in STAFF}
    anonymous = browser(app)
    pages: list[tuple[str, httpx.AsyncClient, str]] = [(BASELINE, anonymous, BASELINE)]
    for label, who, path in PAGES:
        pages.append((label, clients[who], path.format(number=number)))
    samples: dict[str, Samples] = {label: Samples() for label, _, _ in pages}
    for n in range(warmup + rounds):
        for label, client, url in pages:
            started = time.perf_counter()
            answer = await client.get(url)
            elapsed = time.perf_counter() - started
            if n < warmup:
                continue
            wrong = looks_right(label, answer, number)
            if wrong is None:
                samples[label].times.append(elapsed)
            else:
                samples[label].failures[wrong] += 1
    for client in (*clients.values(), anonymous):
        await client.aclose()
    return samples


def report(backend: str, letters: int, samples: dict[str, Samples]) -> None:
    base = statistics.median(samples[BASELINE].times) if samples[BASELINE].times else 0.0
    rounds = len(samples[BASELINE].times) + sum(samples[BASELINE].failures.values())
    print(f"\n{backend}, {letters:,} letters ({rounds} requests a page):")
    print(f"{'page':32} {'median ms':>10} {'p95 ms':>8} {'page/baseline':>14}  failures")
    for label, page in samples.items():
        shown = f"{label} (baseline)" if label == BASELINE else label
        wrong = ", ".join(f"{n}x {why}" for why, n in page.failures.most_common()) or "none"
        if len(page.times) < 2:
            print(f"{shown:32} {'-':>10} {'-':>8} {'-':>14}  {wrong}")
            continue
        median = statistics.median(page.times)
        p95 = statistics.quantiles(page.times, n=20)[-1]
        ratio = f"{median / base:14.1f}" if base else f"{'n/a':>14}"
        print(f"{shown:32} {median * 1000:10.1f} {p95 * 1000:8.1f} {ratio}  {wrong}")


def run(url: str, args: argparse.Namespace, workdir: Path) -> None:
    letters, rounds, warmup = args.letters, args.rounds, args.warmup
    config = load_config(ROOT / "config.yaml", environ={})
    engine = make_engine(url, pii=Keyring.parse(Keyring.new_key()), pool_size=10)
    try:
        started = time.perf_counter()
        counts = load(engine, config, letters, args.analyze)
        loaded = time.perf_counter() - started
        print(
            f"{engine.dialect.name}: loaded {', '.join(f'{n:,} {t}' for t, n in counts.items())} "
            f"in {loaded:.0f} s"
        )
        show_spread(engine)
        console = Console(
            config,
            make_sessionmaker(engine),
            AttachmentStore(workdir / "attachments"),
            workflow_of(config),
            lambda: NOW,
        )
        app = Starlette(routes=console.routes())
        samples = asyncio.run(measure(app, sample_letter(engine), rounds, warmup))
        report(engine.dialect.name, letters, samples)
    finally:
        engine.dispose()


def show_spread(engine: Engine) -> None:
    with engine.connect() as conn:
        by_status = select(Letter.status, func.count()).group_by(Letter.status)
        statuses = {status: n for status, n in conn.execute(by_status)}
        overdue = conn.execute(
            select(func.count())
            .select_from(Assignment)
            .where(Assignment.status.in_(OPEN_ASSIGNMENT), Assignment.due_at <= NOW)
        ).scalar_one()
    print(f"statuses: {statuses}; overdue open assignments: {overdue:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--letters", type=int, default=1_000_000)
    parser.add_argument(
        "--postgresql",
        nargs="?",
        const=POSTGRES,
        metavar="URL",
        help=f"run on PostgreSQL (default {POSTGRES}) in a schema made and dropped here",
    )
    parser.add_argument(
        "--analyze",
        action="store_true",
        help="run ANALYZE on SQLite too (as PRAGMA optimize would); PostgreSQL always is",
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgresql is None:
            url = f"sqlite:///{Path(tmp) / 'console.db'}"
            run(url, args, Path(tmp))
            return
        url, drop = postgres_schema(args.postgresql)
        try:
            run(url, args, Path(tmp))
        finally:
            drop()


if __name__ == "__main__":
    main()
