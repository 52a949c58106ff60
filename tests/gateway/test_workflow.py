"""The routing core: automatic processing, the state table, department actions, chasing."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import DeadlinesConfig, DepartmentConfig, RouteRule, RoutingConfig
from gateway.contract.contact import Citizen
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import (
    DEPARTMENT,
    LEADER,
    OPERATOR,
    SUPERVISOR,
    SYSTEM,
    TRANSITIONS,
    Actor,
    Workflow,
    WorkflowError,
)
from store.db import make_sessionmaker
from store.models import Assignment, Chase, Event, Letter, OutboxMessage
from tests.conftest import SHANGHAI, Parts, make_contact

ROUTING = RoutingConfig(
    departments=[
        DepartmentConfig(code="city-admin", name="市城市管理局", contacts=["cg@h.local"]),
        DepartmentConfig(code="environment", name="市生态环境局", contacts=["hb@h.local"]),
        DepartmentConfig(code="housing", name="市住房和城乡建设局"),
    ],
    rules=[
        RouteRule(department="city-admin", keywords=["路灯", "井盖"]),
        RouteRule(department="environment", keywords=["噪音"]),
        RouteRule(
            department="housing",
            keywords=["烂尾楼"],
            reply_type="joint",
            with_departments=["city-admin"],
        ),
    ],
    category_keywords={"complaint": ["投诉"], "inquiry": ["咨询", "请问"], "report": ["举报"]},
    districts=["翠屏区", "南溪区"],
)
# Monday 2026-11-23 10:00 in Shanghai.
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
OPERATOR_ZHANG = Actor(OPERATOR, "zhang")
CITY_ADMIN = Actor(DEPARTMENT, "li", "city-admin")
ENVIRONMENT = Actor(DEPARTMENT, "wang", "environment")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Core:
    workflow: Workflow
    clock: Clock
    sessions: sessionmaker[Session]
    parts: Parts
    serial: Iterator[int]

    def letter(self, text: str, **changes: object) -> int:
        """A new letter through intake, processed by the routing core; its id."""
        contact = make_contact(
            next(self.serial),
            text=text,
            subject="",
            received_at=self.clock.now,
            attachments=(),
            **changes,
        )
        number = self.parts.intake.accept_sync(contact).tracking_number
        with self.sessions.begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            self.workflow.process(session, letter)
            return letter.id

    def act(self, letter_id: int, action: str, *args: object, **kwargs: object) -> None:
        with self.sessions.begin() as session:
            letter = session.get(Letter, letter_id)
            getattr(self.workflow, action)(session, letter, *args, **kwargs)

    def get(self, letter_id: int) -> Letter:
        with self.sessions() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            return letter

    def events(self, letter_id: int) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(Event.kind).where(Event.letter_id == letter_id).order_by(Event.id)
                )
            )


@pytest.fixture
def core(parts: Parts, engine: Engine) -> Core:
    clock = Clock(MONDAY)
    parts.intake.clock = clock
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), clock)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
    return Core(workflow, clock, sessions, parts, itertools.count(1))


def test_a_streetlight_complaint_is_classified_routed_and_given_a_deadline(core: Core) -> None:
    letter_id = core.letter("我要投诉翠屏区人民路的路灯坏了三天")

    letter = core.get(letter_id)
    assert (letter.status, letter.category, letter.district) == ("assigned", "complaint", "翠屏区")
    # 7 working days from Monday 23 Nov: Wednesday 2 Dec, at the end of office hours.
    assert letter.due_at == datetime(2026, 12, 2, 17, 30, tzinfo=SHANGHAI)
    assert core.events(letter_id) == ["received", "classified", "assigned"]


def test_a_letter_no_rule_matches_waits_in_triage(core: Core) -> None:
    letter_id = core.letter("请问办理居住证需要什么材料")
    assert (core.get(letter_id).status, core.get(letter_id).category) == ("triage", "inquiry")


@pytest.mark.parametrize(
    ("text", "changes", "reason"),
    [
        ("全场优惠，加微信领取推广礼品", {}, "advertising"),
        ("这个案子法院已受理，我要反映", {}, "judicial"),
        ("我要举报某单位违规", {"citizen": Citizen(name="张三")}, "unidentified"),
        ("", {}, "empty"),
    ],
    ids=["advertising", "judicial", "report-no-way-to-reach", "empty"],
)
def test_letters_outside_the_hotlines_scope_are_rejected_with_a_reason(
    core: Core, text: str, changes: dict[str, object], reason: str
) -> None:
    letter_id = core.letter(text, **changes)
    letter = core.get(letter_id)
    assert (letter.status, letter.rejection) == ("rejected", reason)


def test_the_same_streetlight_again_from_the_same_phone_is_linked_not_dispatched(
    core: Core,
) -> None:
    first = core.letter("翠屏区人民路的路灯坏了三天，请修理")
    core.clock.now += timedelta(hours=3)
    again = core.letter("翠屏区人民路的路灯坏了三天了，请尽快修理")

    letter = core.get(again)
    assert (letter.status, letter.duplicate_of_id) == ("duplicate", first)
    with core.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Assignment)) == 1


@pytest.mark.parametrize(
    ("consent", "published"),
    [(None, False), (True, True), (False, False)],
    ids=["never-asked", "consented", "refused"],
)
def test_a_department_signs_and_replies_and_the_citizen_is_told_by_sms(
    core: Core, consent: bool | None, published: bool
) -> None:
    letter_id = core.letter("南溪区的路灯坏了", publish_consent=consent)
    core.act(letter_id, "sign", CITY_ADMIN)
    core.act(letter_id, "reply", "已安排维修，今晚恢复照明。", CITY_ADMIN, public=True)

    letter = core.get(letter_id)
    # 选登 only with consent: an SMS citizen was never asked.
    assert (letter.status, letter.publish) == ("replied", published)
    with core.sessions() as session:
        sms = session.scalars(select(OutboxMessage)).one()
    assert sms.kind == "sms" and sms.destination == "+8613800138000"
    assert "已安排维修" in sms.payload["body"]


def test_a_department_cannot_act_on_another_departments_letter(core: Core) -> None:
    letter_id = core.letter("路灯坏了")
    with pytest.raises(WorkflowError, match="not assigned to environment"):
        core.act(letter_id, "sign", ENVIRONMENT)
    assert core.get(letter_id).status == "assigned"


@pytest.mark.parametrize(
    ("action", "args", "refusal"),
    [
        ("assign", (["city-admin"], "assign", "tomorrow", OPERATOR_ZHANG), "unknown reply type"),
        ("reclassify", ("gossip", OPERATOR_ZHANG), "unknown category"),
        ("reject", ("boring", OPERATOR_ZHANG), "unknown rejection reason"),
    ],
    ids=["reply-type", "category", "rejection"],
)
def test_an_unknown_code_from_a_form_or_the_command_line_is_refused_unstored(
    core: Core, action: str, args: tuple[object, ...], refusal: str
) -> None:
    letter_id = core.letter("请问办理居住证需要什么材料")  # waits in triage
    with pytest.raises(WorkflowError, match=refusal):
        core.act(letter_id, action, *args)
    letter = core.get(letter_id)
    assert (letter.status, letter.category, letter.reply_type) == ("triage", "inquiry", None)
    assert core.events(letter_id) == ["received", "classified", "triage"]


def test_a_return_is_allowed_the_same_working_day_only(core: Core) -> None:
    today = core.letter("路灯坏了")
    core.clock.now += timedelta(hours=2)
    core.act(today, "return_letter", "不属于本单位职责，应由供电公司处理", CITY_ADMIN)
    assert core.get(today).status == "triage"

    later = core.letter("井盖丢了")
    core.clock.now += timedelta(days=1)
    with pytest.raises(WorkflowError, match="working day it came"):
        core.act(later, "return_letter", "不归我们管", CITY_ADMIN)
    with pytest.raises(WorkflowError, match="needs a reason"):
        core.act(later, "return_letter", " ", CITY_ADMIN)


def test_a_promised_letter_gets_an_interim_reply_then_the_final_one(core: Core) -> None:
    letter_id = core.letter("井盖丢了")
    core.act(letter_id, "sign", CITY_ADMIN)
    promised = datetime(2026, 12, 10, 9, 30, tzinfo=UTC)
    core.act(letter_id, "reply", "已列入维修计划", CITY_ADMIN, final=False, promised_at=promised)
    assert (core.get(letter_id).status, core.get(letter_id).due_at) == ("promised", promised)

    core.act(letter_id, "reply", "已修复", CITY_ADMIN)
    assert core.get(letter_id).status == "replied"


def test_a_joint_letter_needs_the_co_departments_opinion_before_the_lead_replies(
    core: Core,
) -> None:
    letter_id = core.letter("小区旁边的烂尾楼很危险")
    housing = Actor(DEPARTMENT, "zhao", "housing")
    core.act(letter_id, "sign", housing)
    with pytest.raises(WorkflowError, match="co-departments"):
        core.act(letter_id, "reply", "已处理", housing)

    core.act(letter_id, "opinion", "同意住建局意见，配合清理", CITY_ADMIN)
    core.act(letter_id, "reply", "已会同城管局处理", housing)
    assert core.get(letter_id).status == "replied"
    # 15 working days for a joint letter.
    assert core.get(letter_id).due_at == datetime(2026, 12, 14, 17, 30, tzinfo=SHANGHAI)


def test_an_escalated_letter_is_assigned_per_the_leaders_instruction(core: Core) -> None:
    letter_id = core.letter("请问办理居住证需要什么材料")
    core.act(letter_id, "escalate", OPERATOR_ZHANG)
    core.act(
        letter_id, "instruct", "请住建局阅处", ["housing"], "time_limited", Actor(LEADER, "mayor")
    )
    letter = core.get(letter_id)
    assert (letter.status, letter.mode) == ("assigned", "escalate")
    assert "instructed" in core.events(letter_id)


def test_an_approved_extension_moves_the_deadline(core: Core) -> None:
    letter_id = core.letter("路灯坏了")
    before = core.get(letter_id).due_at
    core.act(letter_id, "request_extension", "需要采购灯具", CITY_ADMIN)
    core.act(letter_id, "decide_extension", True, OPERATOR_ZHANG)
    after = core.get(letter_id).due_at
    assert before is not None and after is not None and after > before


def test_an_approved_extension_adds_five_working_days_to_the_due_date(core: Core) -> None:
    core.clock.now = datetime(2026, 12, 7, 10, 0, tzinfo=SHANGHAI)  # a Monday
    letter_id = core.letter("我要投诉路灯坏了")
    assert core.get(letter_id).due_at == datetime(2026, 12, 16, 17, 30, tzinfo=SHANGHAI)
    core.act(letter_id, "request_extension", "需要采购灯具", CITY_ADMIN)
    core.act(letter_id, "decide_extension", True, OPERATOR_ZHANG)
    # Thursday 17, Friday 18, Monday 21, Tuesday 22, Wednesday 23.
    extended = datetime(2026, 12, 23, 17, 30, tzinfo=SHANGHAI)
    assert core.get(letter_id).due_at == extended
    with core.sessions() as session:
        told = [m.payload.get("body", "") for m in session.scalars(select(OutboxMessage))]
        due_dates = session.scalars(
            select(Assignment.due_at).where(Assignment.letter_id == letter_id)
        ).all()
    assert any("2026年12月23日" in body for body in told)
    assert due_dates and all(due == extended for due in due_dates)


def test_an_unsatisfied_follow_up_visit_reopens_the_letter(core: Core) -> None:
    letter_id = core.letter("路灯坏了")
    core.act(letter_id, "sign", CITY_ADMIN)
    core.act(letter_id, "reply", "已修好", CITY_ADMIN)
    core.act(letter_id, "visit", "unsatisfied", OPERATOR_ZHANG, "灯还是不亮")
    assert core.get(letter_id).status == "signed"

    core.act(letter_id, "reply", "已更换灯具", CITY_ADMIN)
    core.act(letter_id, "visit", "satisfied", OPERATOR_ZHANG)
    letter = core.get(letter_id)
    assert (letter.status, letter.satisfaction) == ("closed", "satisfied")


STATES = sorted({state for state, _ in TRANSITIONS} | {"rejected", "duplicate", "closed"})
ACTIONS = sorted({action for _, action in TRANSITIONS})
ROLES = [OPERATOR, DEPARTMENT, SUPERVISOR, LEADER, SYSTEM]


@pytest.mark.parametrize("state", STATES)
def test_every_action_the_table_does_not_allow_is_refused_and_changes_nothing(
    core: Core, state: str
) -> None:
    letter = Letter(status=state, tracking_number="x", category=None)
    for action, role in itertools.product(ACTIONS, ROLES):
        rule = TRANSITIONS.get((state, action))
        if rule is not None and role in rule[1]:
            assert core.workflow._check(letter, action, Actor(role, "t")) == (rule[0] or state)
        else:
            with pytest.raises(WorkflowError):
                core.workflow._check(letter, action, Actor(role, "t"))
        assert letter.status == state


def chases(core: Core) -> list[tuple[str, int]]:
    with core.sessions() as session:
        return sorted(
            (kind, i) for kind, i in session.execute(select(Chase.kind, Chase.assignment_id))
        )


def test_the_sweep_warns_urges_and_supervises_each_assignment_once(core: Core) -> None:
    letter_id = core.letter("路灯坏了")
    due = core.get(letter_id).due_at
    assert due is not None

    core.clock.now = due - timedelta(hours=2)
    assert core.workflow.sweep(core.sessions, core.clock.now) == {
        "warning": 1,
        "urge": 0,
        "supervise": 0,
        "visit_asked": 0,
        "visit_unanswered": 0,
    }
    core.clock.now = due + timedelta(minutes=1)
    assert core.workflow.sweep(core.sessions, core.clock.now)["urge"] == 1
    assert core.workflow.sweep(core.sessions, core.clock.now)["urge"] == 0
    core.clock.now = due + timedelta(hours=49)
    assert core.workflow.sweep(core.sessions, core.clock.now)["supervise"] == 1
    assert core.events(letter_id)[-3:] == ["warned", "urged", "supervised"]


def test_concurrent_sweeps_issue_each_urge_notice_once(core: Core) -> None:
    ids = [
        core.letter(f"第{n}处路灯坏了", citizen=Citizen(phone=f"+861380013{n:04d}"))
        for n in range(12)
    ]
    due = core.get(ids[0]).due_at
    assert due is not None
    now = due + timedelta(minutes=5)
    start = threading.Barrier(4)

    def sweep(_: int) -> int:
        start.wait()
        return core.workflow.sweep(core.sessions, now, batch=5)["urge"]

    with ThreadPoolExecutor(4) as pool:
        urged = sum(pool.map(sweep, range(4)))

    assert urged == 12
    assert len([c for c in chases(core) if c[0] == "urge"]) == 12


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_gateway_processes_sweeping_together_urge_each_letter_once(
    core: Core, database_url: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    ids = [
        core.letter(f"第{n}处井盖丢了", citizen=Citizen(phone=f"+861390013{n:04d}"))
        for n in range(30)
    ]
    with core.sessions.begin() as session:  # all of them overdue by now
        for assignment in session.scalars(select(Assignment)):
            assignment.due_at = datetime.now(UTC) - timedelta(hours=1)
    config = tmp_path / "config.yaml"
    config.write_text(
        "routing:\n  departments:\n    - {code: city-admin, name: 市城市管理局}\n", "utf-8"
    )
    env = {**os.environ, "HOTLINE_DATABASE_URL": database_url}
    command = [sys.executable, "-m", "gateway.cli", "--config", str(config), "sweep"]
    sweeps = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in sweeps]

    assert all(p.returncode == 0 for p in sweeps)
    urged = sum(int(out.split("urge=")[1].split()[0]) for out in outputs)
    assert urged == len(ids)
    with core.sessions() as session:
        events = session.scalar(select(func.count()).where(Event.kind == "urged"))
    assert events == len(ids)
