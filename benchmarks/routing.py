"""Route jobs verifiably done per second with the letters table empty and with N letters in
hand from the last week, measured in one run: finding a letter's duplicate candidates must
not read the table, so big/empty should stay near 1.

    .venv/bin/python -m benchmarks.routing [--backend sqlite|postgresql] [--letters 7200]
        [--routes 300] [--rounds 3]

Every round routes the same letters twice, each time on a database of its own (a temporary
SQLite file, or a schema made and dropped here on PostgreSQL): once on an empty one, once on
one holding N letters from the week's duplicate window, spread over the districts, each with
its own citizen and its done route job, most of them in hand (the very letters a new one is
compared with). The letters come in through Intake, which queues their route jobs; the jobs
run as the route lane runs them (claim, RouteHandler, complete), one at a time.

A letter counts only when its job is done and the letter came out as its words say: its
category, its lead department (or triage when no rule names one), or, for a repeat, linked
to the letter it repeats (by the same phone written another way, by the same e-mail, or by
another citizen about the same place). Anything else is printed beside the rate as a
failure, never counted in it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

from sqlalchemy import Engine, create_engine, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from gateway.contract.config import Config, load_config
from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.contract.kinds import ROUTE
from gateway.core.duplicates import similarity
from gateway.engine.dispatch import RouteHandler, workflow_for
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from gateway.engine.workers import JobRunner
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.jobs import JobQueue
from store.migrate import upgrade
from store.models import Assignment, Department, Job, Letter
from store.models import Citizen as CitizenRow
from store.pii import Keyring

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
# A throwaway key: these databases live for one run.
PII = Keyring.parse(Keyring.new_key())

# What the routed letters say, each part labelled with what config.yaml makes of it.
LEADS = [("我要投诉", "complaint"), ("请问", "inquiry"), ("求助，", "help"), ("建议", "suggestion")]
PROBLEMS = [
    ("路灯不亮", "city-admin"),
    ("井盖丢失", "city-admin"),
    ("垃圾堆放没人清运", "city-admin"),
    ("有人占道经营", "city-admin"),
    ("夜间施工噪音很大", "environment"),
    ("工厂偷偷排污", "environment"),
    ("餐馆油烟异味刺鼻", "environment"),
    ("公交车不按站停靠", "transport"),
    ("出租车拒载乘客", "transport"),
    ("物业不管电梯故障", "housing"),
    ("燃气管道有漏气", "housing"),
    ("超市卖过期食品", "market"),
    ("商家价格标签造假", "market"),
    ("公司拖欠工资半年", "labour"),
    ("单位一直不交社保", "labour"),
    ("居住证办了两个月没拿到", None),
    ("户口迁移手续跑了五趟", None),
]
STREETS = [
    "人民路",
    "南岸西路",
    "酒都路",
    "长江大道",
    "蜀南大道",
    "鲁家园街",
    "大观楼街",
    "北大街",
    "中山街",
    "走马街",
]
PLACES = [
    "学校门口",
    "小学对面",
    "医院对面",
    "公园东门",
    "十字路口",
    "银行门口",
    "邮局旁边",
    "桥头",
    "巷子里",
]
DETAILS = [
    "已经持续了三天",
    "晚上十点以后最严重",
    "老人孩子出行很不方便",
    "附近居民反映过很多次",
    "上周打过电话没有人来",
    "下雨天更加严重",
    "影响周边几十户人家",
    "我们多次联系都没有结果",
    "已经拍了照片留存",
    "上下班高峰期特别明显",
    "周末也是一样",
    "前几天还有人因此受伤",
    "物管说这事不归他们负责",
    "好几个月都没解决",
    "孩子上学每天都要经过",
    "昨天夜里又发生了一次",
    "隔壁单元的人也受到影响",
    "街道办来看过一次就走了",
    "我七十多岁走路不方便",
    "拨打过好几次电话",
    "到现在都没有任何回复",
    "天一黑就看不清楚",
    "已经有人摔倒过",
]
# The letters already stored speak of other things, so that none of them repeats a routed
# one: they are compared, and must not match.
OLD_STREETS = [
    "临港大道",
    "岷江西路",
    "天池路",
    "北环路",
    "翠柏大道",
    "红星路",
    "龙头山路",
    "白沙湾路",
]
OLD_MATTERS = [
    "停车场收费标准不公开",
    "楼道堆满杂物堵住通道",
    "树枝遮挡交通信号灯",
    "广场舞音响开到深夜",
    "共享单车乱停乱放",
    "绿化带被人毁坏种菜",
    "防盗门禁系统长期损坏",
    "窨井盖发出响声",
    "河道漂浮物长时间无人打捞",
    "人行道地砖松动翘起",
]
# Names of shops and buildings, from characters no keyword, district or screening word of
# config.yaml has, so that they change no routing decision.
NAMING = "东西北春秋金银林森和平康福寿旺宏远青云海星光明月天泉石田园鑫达恒昌盛隆祥瑞"
OLD_STATUSES = ["assigned"] * 75 + ["triage"] * 10 + ["replied"] * 8 + ["closed"] * 7


@dataclass(frozen=True)
class Expected:
    """What routing must make of one letter: (status, category, lead department or the
    index of the letter it repeats)."""

    status: str
    category: str
    department: str | None = None
    repeats: int | None = None


def workload(config: Config, n: int, seed: int) -> list[tuple[IncomingContact, Expected]]:
    """n letters in the order they arrive: two new matters, then a repeat of an earlier
    one, by turns from the same phone (written another way, no district named), the same
    e-mail (no district) or another citizen about the same place."""
    rng = random.Random(seed)
    threshold = config.routing.duplicate_similarity - 0.1
    districts = config.routing.districts
    letters: list[tuple[IncomingContact, Expected]] = []
    originals: list[int] = []
    said: dict[int, tuple[str, str, str, str]] = {}  # index -> district, rest, phone, e-mail
    by_district: dict[str, list[str]] = {d: [] for d in districts}
    kinds = ["phone", "email", "place"]
    repeated = 0
    for i in range(n):
        now = datetime.now(UTC)
        if i % 3 < 2 or not originals:
            (lead, category), (problem, department) = rng.choice(LEADS), rng.choice(PROBLEMS)
            for _ in range(10_000):
                district = rng.choice(districts)
                name = "".join(rng.sample(NAMING, 4))
                rest = (
                    f"{rng.choice(STREETS)}{rng.randint(1, 300)}号{name}{rng.choice(PLACES)}"
                    f"{problem}，{rng.choice(DETAILS)}。"
                )
                words = lead + district + rest
                if all(_ratio(words, seen) < threshold for seen in by_district[district]):
                    break
            else:
                raise SystemExit(f"no new matter unlike the others after {i} letters")
            by_district[district].append(words)
            phone, email = f"+86138{i:08d}", f"citizen{i}@example.cn"
            said[i] = (district, lead + "|" + rest, phone, email)
            originals.append(i)
            status = "assigned" if department else "triage"
            citizen = Citizen(name="市民", phone=phone, email=email)
            letters.append(
                (_sms(seed, i, words, citizen, now), Expected(status, category, department))
            )
            continue
        first = rng.choice(originals[-20:])
        district, lead_rest, phone, email = said[first]
        lead, rest = lead_rest.split("|")
        category = letters[first][1].category
        kind = kinds[repeated % len(kinds)]
        repeated += 1
        if kind == "phone":  # the same number as a person types it, the place left out
            words, citizen = f"{lead}{rest}还是没有人管。", Citizen(phone=f"138 {phone[6:]}")
        elif kind == "email":
            words, citizen = f"{lead}{rest}麻烦再看看。", Citizen(name="市民", email=email)
        else:  # a neighbour about the same place
            words = f"{lead}{district}{rest}邻居也是这样。"
            citizen = Citizen(name="邻居", phone=f"+86139{i:08d}")
        expected = Expected("duplicate", category, repeats=first)
        letters.append((_sms(seed, i, words, citizen, now), expected))
    return letters


def _ratio(a: str, b: str) -> float:
    return similarity(a, b)  # the measure 并单 itself applies


def _sms(seed: int, i: int, words: str, citizen: Citizen, at: datetime) -> IncomingContact:
    return IncomingContact(
        channel=Channel.SMS,
        source="modem-1",
        external_id=f"bench:{seed}:{i}",
        received_at=at,
        citizen=citizen,
        subject="",
        text=words,
    )


def fill(engine: Engine, config: Config, n: int, seed: int) -> None:
    """n letters received over the duplicate window, each with its citizen and its done
    route job; a few linked as duplicates of the one before."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    window = timedelta(days=config.routing.duplicate_window_days)
    for start in range(0, n, 5_000):
        size = min(5_000, n - start)
        with engine.begin() as conn:
            citizens = list(
                conn.scalars(
                    insert(CitizenRow).returning(CitizenRow.id, sort_by_parameter_order=True),
                    [{"name": "市民", "phone": f"+86137{start + k:08d}"} for k in range(size)],
                )
            )
            rows = []
            for k, citizen_id in enumerate(citizens):
                received = now - window * rng.uniform(0.01, 0.99)
                district = rng.choice(config.routing.districts)
                words = (
                    f"{district}{rng.choice(OLD_STREETS)}{rng.randint(1, 999)}号"
                    f"{'，'.join(rng.sample(OLD_MATTERS, 2))}。"
                )
                rows.append(
                    {
                        "tracking_number": f"F{start + k:014d}",
                        "verification_code": "000000",
                        "channel": "sms",
                        "source": "bench",
                        "external_id": f"old:{start + k}",
                        "received_at": received,
                        "status": rng.choice(OLD_STATUSES),
                        "category": "complaint",
                        "subject": "",
                        "text": words,
                        "anonymous": False,
                        "confidential": False,
                        "publish": False,
                        "citizen_id": citizen_id,
                        "district": district,
                        "mode": "assign",
                        "reply_type": "time_limited",
                    }
                )
            ids = list(
                conn.scalars(
                    insert(Letter).returning(Letter.id, sort_by_parameter_order=True), rows
                )
            )
            conn.execute(
                insert(Job),
                [
                    {
                        "kind": ROUTE,
                        "letter_id": letter_id,
                        "payload": {},
                        "status": "done",
                        "attempts": 1,
                        "run_after": row["received_at"],
                        "created_at": row["received_at"],
                        "finished_at": row["received_at"],
                    }
                    for letter_id, row in zip(ids, rows, strict=True)
                ],
            )
    with engine.begin() as conn:
        # One in 30 was itself a repeat: linked, so never a candidate.
        conn.execute(
            update(Letter)
            .where(Letter.source == "bench", Letter.id % 30 == 0)
            .values(status="duplicate", duplicate_of_id=Letter.id - 1)
        )
        if engine.dialect.name == "postgresql":
            conn.execute(text("ANALYZE"))  # as autovacuum would after such a load


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{workdir / f'routing-{uuid.uuid4().hex}.db'}", pii=PII)
        upgrade(engine)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    schema = f"hotline_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={schema}"})
    engine = make_engine(url.render_as_string(hide_password=False), pii=PII)
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass(frozen=True)
class Result:
    routed: int
    seconds: float
    failures: list[str]

    @property
    def rate(self) -> float:
        return self.routed / self.seconds


def route_all(
    engine: Engine, config: Config, letters: list[tuple[IncomingContact, Expected]], root: Path
) -> Result:
    sessions = make_sessionmaker(engine)
    metrics = Metrics()
    intake = Intake(
        sessions,
        AttachmentStore(root / "attachments"),
        Spool(root / "spool", metrics),
        metrics,
        config.zone,
        standing_jobs=(ROUTE,),
    )
    workflow = workflow_for(config, lambda: datetime.now(UTC))
    with sessions.begin() as session:
        workflow.sync_departments(session)
    numbers = [intake.accept_sync(contact).tracking_number for contact, _ in letters]
    runner = JobRunner(JobQueue(sessions), {ROUTE: RouteHandler(sessions, workflow)}, config.jobs)
    workflow.rules.words("翠屏区路灯")  # jieba's dictionary is loaded outside the timing
    started = time.perf_counter()
    ran = 0
    while runner.run_one([ROUTE]):
        ran += 1
    seconds = time.perf_counter() - started
    failures = [] if ran == len(letters) else [f"{ran} route jobs ran for {len(letters)}"]
    routed = 0
    with sessions() as session:
        ids: dict[str, int] = {
            number: letter_id
            for number, letter_id in session.execute(
                select(Letter.tracking_number, Letter.id).where(Letter.tracking_number.in_(numbers))
            )
        }
        for n, (number, (_, expected)) in enumerate(zip(numbers, letters, strict=True)):
            got = _outcome(session, ids.get(number or ""))
            want = (
                expected.status,
                expected.category,
                expected.department,
                None if expected.repeats is None else numbers[expected.repeats],
            )
            if got == want:
                routed += 1
            else:
                failures.append(f"letter {n} ({number}): {got}, expected {want}")
    return Result(routed, seconds, failures)


def _outcome(
    session: Session, letter_id: int | None
) -> tuple[str, str | None, str | None, str | None] | None:
    if letter_id is None:
        return None
    letter = session.get(Letter, letter_id)
    assert letter is not None
    job = session.scalar(select(Job.status).where(Job.letter_id == letter_id, Job.kind == ROUTE))
    if job != "done":
        return (f"job {job}", None, None, None)
    lead = session.scalar(
        select(Department.code)
        .join(Assignment, Assignment.department_id == Department.id)
        .where(Assignment.letter_id == letter_id, Assignment.lead.is_(True))
    )
    original = None
    if letter.duplicate_of_id is not None:
        original = session.scalar(
            select(Letter.tracking_number).where(Letter.id == letter.duplicate_of_id)
        )
    return (letter.status, letter.category, lead, original)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--letters", type=int, default=7_200, help="letters already stored")
    parser.add_argument("--routes", type=int, default=300, help="route jobs timed per table")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    empty: list[Result] = []
    big: list[Result] = []
    with TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            letters = workload(config, args.routes, seed=r)
            for results, stored in ((empty, 0), (big, args.letters)):
                with database(args.backend, Path(tmp)) as engine:
                    if stored:
                        fill(engine, config, stored, seed=r)
                    result = route_all(engine, config, letters, Path(tmp) / uuid.uuid4().hex)
                results.append(result)
                print(
                    f"round {r + 1} {args.backend} {stored:>7,} letters stored: "
                    f"{result.rate:6.1f} route jobs/s verified "
                    f"({result.routed}/{len(letters)} in {result.seconds:.2f} s), "
                    f"{len(result.failures)} failures",
                    flush=True,
                )
                for failure in result.failures[:5]:
                    print(f"    {failure}")
    base = statistics.median(r.rate for r in empty)
    grown = statistics.median(r.rate for r in big)
    failed = sum(len(r.failures) for r in (*empty, *big))
    print(
        f"{args.backend}: empty table {base:.1f}/s, {args.letters:,} letters {grown:.1f}/s "
        f"(medians of {args.rounds}); big/empty = {grown / base:.2f}; failures {failed}"
    )


if __name__ == "__main__":
    main()
