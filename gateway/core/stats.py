"""The figures of a 通报 (旬, week or month): volume, departments, hot topics, 综合考评,
and the seats' call queue (人工服务)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    extract,
    func,
    literal,
    literal_column,
    or_,
    select,
)
from sqlalchemy.orm import Session

from gateway.contract.config import CATEGORIES
from gateway.contract.contact import Channel
from gateway.contract.redaction import scrub
from gateway.core.queue_figures import QueueFigures, queue_figures
from gateway.core.segmentation import Segmenter
from store.models import Assignment, Citizen, Department, Event, Letter

CHANNELS = tuple(c.value for c in Channel)
UNCLASSIFIED = "unclassified"
# Lifecycle order for tables; a status not listed here comes after these.
STATUSES = (
    "received",
    "triage",
    "rejected",
    "duplicate",
    "escalated",
    "assigned",
    "signed",
    "promised",
    "replied",
    "closed",
    "visit_answer",  # a citizen's SMS or mail answering 回访, recorded on the letter visited
)
# Words jieba's stock dictionary cuts badly in hotline letters (路灯不亮 -> 路 / 灯不亮).
HOTLINE_WORDS = (
    "路灯",
    "不亮",
    "停水",
    "停电",
    "噪音",
    "扰民",
    "供水",
    "井盖",
    "积水",
    "占道经营",
    "违章建筑",
    "拖欠工资",
    "物业",
)
# Words of two or more characters that say nothing about the matter raised; single
# characters (的, 了, 请) are dropped anyway.
STOPWORDS = frozenset(
    """
    我们 你们 他们 她们 它们 自己 这个 那个 这些 那些 这里 那里 这样 那样 什么 怎么 为什么
    怎么办 如何 哪里 多少 已经 一直 现在 目前 今天 昨天 每天 时候 一个 一些 没有 可以 能否
    能够 是否 还是 或者 而且 但是 因为 所以 如果 虽然 然后 进行 希望 要求 需要 请问 问题
    情况 反映 相关 有关 部门 市民 热线 尽快 谢谢 感谢 你好 您好 本人 我家 同志 领导 麻烦
    处理 解决 回复 答复 来信 来电 关于 影响
    """.split()  # noqa: SIM905 - a block of words reads better than 80 quoted ones
)
_SEGMENTER = Segmenter(HOTLINE_WORDS)


@dataclass(frozen=True)
class Count:
    key: str
    count: int


@dataclass(frozen=True)
class DayVolume:
    day: date  # local calendar day in the bulletin's zone
    total: int
    by_channel: tuple[Count, ...]  # every channel of Volume.by_channel, in that order


@dataclass(frozen=True)
class Volume:
    """Letters received in the period (any status, rejected and duplicates included)."""

    total: int
    by_channel: tuple[Count, ...]  # every known channel (zeros too), then unknown ones
    by_category: tuple[Count, ...]  # every category, then UNCLASSIFIED for NULL
    by_status: tuple[Count, ...]  # current status, every known one in lifecycle order
    # Letters of the period with a (not returned) assignment to the department, by
    # department code, most first; a joint letter counts for each of its departments.
    by_department: tuple[Count, ...]
    by_day: tuple[DayVolume, ...]  # every local day the period touches, zeros too


@dataclass(frozen=True)
class DepartmentFigures:
    """One department's handling. The assignments counted are those made in the period
    and not returned (退件); replies count when made before the period's end, so a
    bulletin computed again later says the same (as far as the rows still tell: a
    follow-up visit that reopens a letter clears its reply time)."""

    code: str
    name: str
    assigned: int
    replied: int
    replied_on_time: int  # replied_at <= due_at; an assignment without a deadline counts
    # Any assignment made before the end, not returned, not replied by the end and due
    # before it: the backlog from earlier periods included.
    overdue_open: int
    handling_hours: float | None  # mean of replied_at - assigned_at over `replied`
    # Events dated in the period whose department_id is this department:
    returns: int
    urges: int
    supervisions: int
    forced: int
    extensions_requested: int
    extensions_approved: int
    visited: int  # follow-up visits (回访) of letters the department led, answered
    satisfied: int  # 满意
    mostly_satisfied: int = 0  # 基本满意
    # Visits the citizen left unanswered (asked, then given to an operator to call).
    unanswered: int = 0

    @property
    def reply_rate(self) -> float | None:
        """replied / assigned."""
        return _ratio(self.replied, self.assigned)

    @property
    def on_time_rate(self) -> float | None:
        """replied_on_time / replied: how timely the answers were (reply_rate says how many)."""
        return _ratio(self.replied_on_time, self.replied)

    @property
    def unsatisfied(self) -> int:
        """不满意: the visits that reopened a letter."""
        return self.visited - self.satisfied - self.mostly_satisfied

    @property
    def satisfaction_rate(self) -> float | None:
        """(satisfied + mostly satisfied) / visited: 满意率 counts 基本满意 as satisfied."""
        return _ratio(self.satisfied + self.mostly_satisfied, self.visited)


@dataclass(frozen=True)
class HotTopics:
    words: tuple[Count, ...]  # most frequent first, ties by the word
    districts: tuple[Count, ...]
    sampled: int  # letters whose subject and text were segmented
    sample_limit: int


@dataclass(frozen=True)
class AssessmentWeights:
    """综合考评 weights: five parts summing to 100 points, and penalties per event.

    workload: assigned letters, against the busiest department (10).
    reply_rate, timeliness (on-time rate), satisfaction (satisfaction rate): 25 each.
    process (quality of process, 15) loses per_urge (1) per 催办, per_supervision (3) per
    督办, per_forced (5) per 强制办理, per_return (0.5) per 退件. It may go below zero, so
    that heavy penalties still tell departments apart; the total is kept within 0-100.
    """

    workload: float = 10.0
    reply_rate: float = 25.0
    timeliness: float = 25.0
    satisfaction: float = 25.0
    process: float = 15.0
    per_urge: float = 1.0
    per_supervision: float = 3.0
    per_forced: float = 5.0
    per_return: float = 0.5

    def __post_init__(self) -> None:
        negative = [f.name for f in fields(self) if getattr(self, f.name) < 0]
        if negative:
            raise ValueError(f"assessment weights cannot be negative: {negative}")
        parts = self.workload + self.reply_rate + self.timeliness + self.satisfaction
        if not math.isclose(parts + self.process, 100.0):
            raise ValueError(
                f"the five assessment parts must sum to 100, not {parts + self.process}"
            )


DEFAULT_WEIGHTS = AssessmentWeights()


@dataclass(frozen=True)
class Assessment:
    """One department's 综合考评. The part scores are points before rescaling; None when
    the rate has no denominator (nothing replied, nobody visited), in which case the
    other rated parts are scaled up to fill its share of the score."""

    rank: int
    code: str
    name: str
    score: float  # 0-100, two decimals
    workload: float
    reply_rate: float | None
    timeliness: float | None
    satisfaction: float | None
    process: float  # weights.process - penalties
    penalties: float


@dataclass(frozen=True)
class Bulletin:
    """Everything one 通报 says about the half-open period [start, end)."""

    title: str
    start: datetime
    end: datetime
    zone: ZoneInfo
    volume: Volume
    departments: tuple[DepartmentFigures, ...]
    hot_topics: HotTopics
    assessment: tuple[Assessment, ...]
    weights: AssessmentWeights
    queue: QueueFigures  # callers of the seats' queue (人工服务), gateway/core/queue_figures.py


def build_bulletin(
    session: Session,
    title: str,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
    *,
    weights: AssessmentWeights = DEFAULT_WEIGHTS,
    top: int = 20,
    sample: int = 5000,
    progress: Callable[[str], object] | None = None,
) -> Bulletin:
    """All figures of [start, end); the caller names the period in `title`. ``progress`` is
    told each of the BULLETIN_STEPS as it is done (a long period takes a while)."""
    told = progress or (lambda _step: None)
    departments = department_figures(session, start, end)
    told("departments")
    counted = volume(session, start, end, zone)
    told("volume")
    topics = hot_topics(session, start, end, top=top, sample=sample)
    told("hot_topics")
    queue = queue_figures(session, start, end)
    told("queue")
    return Bulletin(
        title=title,
        start=start,
        end=end,
        zone=zone,
        volume=counted,
        departments=departments,
        hot_topics=topics,
        assessment=assess(departments, weights),
        weights=weights,
        queue=queue,
    )


BULLETIN_STEPS = ("departments", "volume", "hot_topics", "queue")


# -- volume -------------------------------------------------------------------------------


def volume(session: Session, start: datetime, end: datetime, zone: ZoneInfo) -> Volume:
    """Letters received in [start, end), counted in one scan of the period (index on
    received_at) grouped by (local day, channel, category, status) - a few hundred groups
    for a 旬 - and folded here into the totals.

    Local days are bucketed against their UTC boundaries computed in Python from `zone`,
    so a day is right on both backends and across a DST change (none in Asia/Shanghai).
    """
    _check_period(start, end)
    days = _local_days(start, end, zone)
    starts = [datetime.combine(d, time(), zone).astimezone(UTC) for d in days[1:]]
    letters = (
        select(
            _day_index(starts, 0, len(days)).label("day"),
            Letter.channel,
            Letter.category,
            Letter.status,
        )
        .where(_received_in(start, end))
        .subquery()
    )
    # Grouped outside the subquery: PostgreSQL would not see the CASE in GROUP BY, with its
    # own bound parameters, as the one selected.
    groups = (letters.c.day, letters.c.channel, letters.c.category, letters.c.status)
    rows = session.execute(select(*groups, func.count()).group_by(*groups))
    by_channel: Counter[str] = Counter()
    by_category: Counter[str] = Counter()
    by_status: Counter[str] = Counter()
    per_day: defaultdict[int, Counter[str]] = defaultdict(Counter)
    for index, channel, category, status, n in rows:
        by_channel[channel] += n
        by_category[category or UNCLASSIFIED] += n
        by_status[status] += n
        per_day[index][channel] += n
    channels = _ordered(by_channel, CHANNELS)
    return Volume(
        total=sum(by_channel.values()),
        by_channel=channels,
        by_category=_ordered(by_category, (*CATEGORIES, UNCLASSIFIED)),
        by_status=_ordered(by_status, STATUSES),
        by_department=_ranked(_letters_per_department(session, start, end)),
        by_day=tuple(
            DayVolume(
                day,
                sum(per_day[i].values()),
                tuple(Count(c.key, per_day[i][c.key]) for c in channels),
            )
            for i, day in enumerate(days)
        ),
    )


def _local_days(start: datetime, end: datetime, zone: ZoneInfo) -> list[date]:
    first = start.astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _day_index(starts: Sequence[datetime], lo: int, hi: int) -> ColumnElement[int]:
    """The index in [lo, hi) of the local day a letter came on, as a balanced CASE over
    the days' first instants (starts[i - 1] begins day i): log2(days) comparisons a row."""
    if hi - lo == 1:
        return literal(lo)
    mid = (lo + hi) // 2
    return case(
        (Letter.received_at < starts[mid - 1], _day_index(starts, lo, mid)),
        else_=_day_index(starts, mid, hi),
    )


def _letters_per_department(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    rows = session.execute(
        select(Department.code, func.count(Assignment.letter_id.distinct()))
        .join(Assignment, Assignment.department_id == Department.id)
        .join(Letter, Letter.id == Assignment.letter_id)
        .where(
            _received_in(start, end),
            Assignment.status != "returned",
            # Always true (a letter is assigned after it came), and it lets the period's
            # assignments be found by their index instead of a scan of them all.
            Assignment.assigned_at >= start,
        )
        .group_by(Department.code)
    )
    return {code: n for code, n in rows}


# -- departments --------------------------------------------------------------------------

_EVENT_FIELDS = {
    "returned": "returns",
    "urged": "urges",
    "supervised": "supervisions",
    "forced": "forced",
    "extension_requested": "extensions_requested",
    "extension_decided": "extensions_approved",
    "visited": "visited",
    "visit_unanswered": "unanswered",
}


def department_figures(
    session: Session, start: datetime, end: datetime
) -> tuple[DepartmentFigures, ...]:
    """Every active department, and any inactive one with figures, by code (see
    DepartmentFigures for what each number counts)."""
    _check_period(start, end)
    handled = _handling(session, start, end)
    overdue = _overdue(session, end)
    events = _events(session, start, end)
    result = []
    for id_, code, name, active in session.execute(
        select(Department.id, Department.code, Department.name, Department.active).order_by(
            Department.code
        )
    ):
        assigned, replied, on_time, hours = handled.get(id_, (0, 0, 0, None))
        counts = events.get(id_, {})
        figures = DepartmentFigures(
            code=code,
            name=name,
            assigned=assigned,
            replied=replied,
            replied_on_time=on_time,
            overdue_open=overdue.get(id_, 0),
            handling_hours=hours,
            returns=counts.get("returns", 0),
            urges=counts.get("urges", 0),
            supervisions=counts.get("supervisions", 0),
            forced=counts.get("forced", 0),
            extensions_requested=counts.get("extensions_requested", 0),
            extensions_approved=counts.get("extensions_approved", 0),
            visited=counts.get("visited", 0),
            satisfied=counts.get("satisfied", 0),
            mostly_satisfied=counts.get("mostly_satisfied", 0),
            unanswered=counts.get("unanswered", 0),
        )
        if active or _has_record(figures):
            result.append(figures)
    return tuple(result)


def _handling(
    session: Session, start: datetime, end: datetime
) -> dict[int, tuple[int, int, int, float | None]]:
    a = Assignment
    replied = and_(a.replied_at.is_not(None), a.replied_at < end)
    on_time = and_(replied, or_(a.due_at.is_(None), a.replied_at <= a.due_at))
    hours = _handling_hours(session)
    rows = session.execute(
        select(
            a.department_id,
            func.count(),
            func.sum(case((replied, 1), else_=0)),
            func.sum(case((on_time, 1), else_=0)),
            func.avg(case((replied, hours))),  # NULL for the unreplied: avg skips them
        )
        .where(a.assigned_at >= start, a.assigned_at < end, a.status != "returned")
        .group_by(a.department_id)
    )
    return {id_: (n, int(r), int(t), None if h is None else float(h)) for id_, n, r, t, h in rows}


def _overdue(session: Session, end: datetime) -> dict[int, int]:
    """Assignments past due at ``end`` and not replied by then. Counted in two parts, still
    open and replied late, each a range of the overdue index (replied_at, due_at, ...): as
    one OR, SQLite walked every assignment (half a second at a million letters)."""
    a = Assignment
    # assigned_at behind coalesce(): analysed where nothing is replied yet (a new city's
    # table, benchmarks/core.py), SQLite took replied_at IS NULL for no filter and walked
    # the assigned_at index instead, every assignment made before the end (two seconds).
    made = func.coalesce(a.assigned_at, a.assigned_at) < end
    due = (a.status != "returned", made, a.due_at < end)
    # Grouped by an expression, not the column: SQLite would otherwise walk the department
    # index for its order (every assignment) rather than take the few from replied_at's.
    department = (a.department_id + literal_column("0")).label("department")
    counts: Counter[int] = Counter()
    for unreplied in (a.replied_at.is_(None), a.replied_at >= end):
        rows = session.execute(
            select(department, func.count()).where(*due, unreplied).group_by(department)
        )
        counts.update({id_: n for id_, n in rows})
    return dict(counts)


def _events(session: Session, start: datetime, end: datetime) -> dict[int, dict[str, int]]:
    e = Event
    # An extension counts when granted. A visit closed the letter when the citizen was
    # satisfied or mostly so (satisfaction says which; visits before it was kept: satisfied).
    granted = and_(e.kind == "extension_decided", e.detail["approved"].as_boolean())
    closed = and_(e.kind == "visited", e.detail["satisfied"].as_boolean())
    mostly = and_(closed, e.detail["satisfaction"].as_string() == "mostly_satisfied")
    rows = session.execute(
        select(
            e.department_id,
            e.kind,
            func.count(),
            func.sum(case((closed, 1), else_=0)),
            func.sum(case((mostly, 1), else_=0)),
        )
        .where(
            e.kind.in_(_EVENT_FIELDS),  # with `at`: the ix_events_kind_at index
            e.at >= start,
            e.at < end,
            e.department_id.is_not(None),
            or_(e.kind != "extension_decided", granted),
        )
        .group_by(e.department_id, e.kind)
    )
    counts: defaultdict[int, dict[str, int]] = defaultdict(dict)
    for id_, kind, n, happy, fairly in rows:
        counts[id_][_EVENT_FIELDS[kind]] = n
        if kind == "visited":
            counts[id_]["satisfied"] = int(happy) - int(fairly)
            counts[id_]["mostly_satisfied"] = int(fairly)
    return counts


def _handling_hours(session: Session) -> ColumnElement[Any]:
    """replied_at - assigned_at in hours (PostgreSQL gives a Decimal, SQLite a float)."""
    later, earlier = Assignment.replied_at, Assignment.assigned_at
    if session.get_bind().dialect.name == "sqlite":
        # SQLite keeps UTC text; julianday() reads it as fractional days.
        return (func.julianday(later) - func.julianday(earlier)) * 24.0
    return extract("epoch", later - earlier) / 3600.0


def _has_record(f: DepartmentFigures) -> bool:
    return bool(f.assigned or f.overdue_open or f.urges or f.supervisions or f.forced or f.returns)


# -- hot topics ---------------------------------------------------------------------------


def hot_topics(
    session: Session, start: datetime, end: datetime, *, top: int = 20, sample: int = 5000
) -> HotTopics:
    """The `top` most frequent words and districts of the period's letters, rejected ones
    (spam, out of scope) left out.

    Words come from the subjects and texts of at most `sample` letters, the most recent of
    the period, so a period of a million letters is not read into memory; `sampled` says
    how many were used. Districts are counted over all the period's letters in the database.
    Words are cut by jieba (its stock dictionary plus HOTLINE_WORDS); single characters,
    numbers and STOPWORDS are dropped, and so are contact details and the citizen's name
    (an ID number ending in X, an e-mail's parts or a name would otherwise rank as words).
    """
    _check_period(start, end)
    if top < 1 or sample < 0:
        raise ValueError("top must be at least 1 and sample not negative")
    kept = and_(_received_in(start, end), Letter.status != "rejected")
    recent = session.execute(
        select(Letter.subject, Letter.text, Citizen.name)
        .outerjoin(Citizen, Citizen.id == Letter.citizen_id)
        .where(kept)
        .order_by(Letter.received_at.desc(), Letter.id.desc())
        .limit(sample)
    ).all()
    words: Counter[str] = Counter()
    for subject, text, name in recent:
        clean = scrub(f"{subject}\n{text}", [name])
        words.update(w for w in _segment(clean) if _is_topic_word(w))
    # Grouped by an expression: by the column, SQLite (analysed) took the district index for
    # its order and read every letter of the period from the table, not from the period's
    # covering index.
    district = func.coalesce(Letter.district, Letter.district).label("district")
    districts = session.execute(
        select(district, func.count()).where(kept, Letter.district.is_not(None)).group_by(district)
    )
    return HotTopics(
        words=_ranked(words, top),
        # A city has a few dozen districts: ranked here so ties order the same on both
        # backends, whatever PostgreSQL's collation.
        districts=_ranked({d: n for d, n in districts if d is not None}, top),
        sampled=len(recent),
        sample_limit=sample,
    )


def _segment(text: str) -> list[str]:
    return _SEGMENTER.cut(text)


@cache
def _is_topic_word(word: str) -> bool:
    return len(word) >= 2 and word not in STOPWORDS and any(c.isalpha() for c in word)


# -- 综合考评 -------------------------------------------------------------------------------


def assess(
    figures: Iterable[DepartmentFigures], weights: AssessmentWeights = DEFAULT_WEIGHTS
) -> tuple[Assessment, ...]:
    """Score each department 0-100 and rank them, best first, equal scores by code.

    A department with nothing assigned, overdue or chased in the period is not ranked.
    Workload is assigned / the busiest department's assigned; a rate without a
    denominator is left out and the other rated parts scaled up to fill its share.
    """
    ranked = [f for f in figures if _has_record(f)]
    busiest = max((f.assigned for f in ranked), default=0)
    scored = sorted((_score(f, busiest, weights) for f in ranked), key=lambda a: (-a.score, a.code))
    return tuple(replace(a, rank=n) for n, a in enumerate(scored, start=1))


def _score(f: DepartmentFigures, busiest: int, w: AssessmentWeights) -> Assessment:
    rates: dict[str, tuple[float, float | None]] = {
        "workload": (w.workload, f.assigned / busiest if busiest else 0.0),
        "reply_rate": (w.reply_rate, f.reply_rate),
        "timeliness": (w.timeliness, f.on_time_rate),
        "satisfaction": (w.satisfaction, f.satisfaction_rate),
    }
    points = {name: None if r is None else weight * r for name, (weight, r) in rates.items()}
    budget = sum(weight for weight, _ in rates.values())
    rated = sum(weight for weight, r in rates.values() if r is not None)
    earned = sum(p for p in points.values() if p is not None)
    penalties = (
        w.per_urge * f.urges
        + w.per_supervision * f.supervisions
        + w.per_forced * f.forced
        + w.per_return * f.returns
    )
    process = w.process - penalties
    score = (earned * budget / rated if rated else 0.0) + process
    return Assessment(
        rank=0,
        code=f.code,
        name=f.name,
        score=round(min(100.0, max(0.0, score)), 2),
        workload=points["workload"] or 0.0,
        reply_rate=points["reply_rate"],
        timeliness=points["timeliness"],
        satisfaction=points["satisfaction"],
        process=process,
        penalties=penalties,
    )


# -- helpers ------------------------------------------------------------------------------


def _check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's bounds must be aware datetimes")
    if not start < end:
        raise ValueError(f"empty period: {start.isoformat()} is not before {end.isoformat()}")


def _received_in(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Letter.received_at >= start, Letter.received_at < end)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _ordered(counts: Mapping[str, int], known: Sequence[str]) -> tuple[Count, ...]:
    """Every known key in its order, zeros included (a chart's axis), then others found."""
    others = sorted(k for k in counts if k not in known)
    return tuple(Count(k, counts.get(k, 0)) for k in (*known, *others))


def _ranked(counts: Mapping[str, int], top: int | None = None) -> tuple[Count, ...]:
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(Count(k, n) for k, n in ordered[:top])
