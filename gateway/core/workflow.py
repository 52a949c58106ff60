"""The letter's life after intake: dispatch, department actions, chasing, follow-up visit.

Every action is checked against one table of (state, action) -> (next state, roles); an
action the table does not allow raises WorkflowError and changes nothing. Used alike by the
CLI, the API and the console, each inside its own transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.contract.config import (
    CATEGORIES,
    REJECTIONS,
    REPLY_TYPES,
    DeadlinesConfig,
    RoutingConfig,
)
from gateway.contract.labels import STATUS_LABELS
from gateway.contract.logs import log_event
from gateway.core.deadlines import WorkCalendar
from gateway.core.messages import queue_message
from gateway.core.routing import Rules, body, content
from store.letters import record_event
from store.models import Assignment, Chase, Department, Letter, Reply

log = logging.getLogger(__name__)

OPERATOR, DEPARTMENT, SUPERVISOR, LEADER, SYSTEM = (
    "operator",
    "department",
    "supervisor",
    "leader",
    "system",
)
OPEN_ASSIGNMENT = ("assigned", "signed", "promised")
_ACTIVE = ("assigned", "signed", "promised")

# (state, action) -> (next state or None to stay, roles allowed)
TRANSITIONS: dict[tuple[str, str], tuple[str | None, frozenset[str]]] = {}


def _allow(states: Sequence[str], action: str, to: str | None, *roles: str) -> None:
    for state in states:
        TRANSITIONS[(state, action)] = (to, frozenset(roles))


_allow(["received"], "process", None, SYSTEM)
_allow(["received", "triage"], "reject", "rejected", OPERATOR, SYSTEM)
_allow(["received", "triage"], "assign", "assigned", OPERATOR, SYSTEM)
_allow(["triage"], "answer", "replied", OPERATOR)  # 直办
_allow(["triage"], "escalate", "escalated", OPERATOR)  # 呈办
_allow(["escalated"], "instruct", "assigned", LEADER)
_allow(["assigned"], "sign", "signed", DEPARTMENT)
_allow(["signed"], "reply_interim", "promised", DEPARTMENT)
_allow(["signed", "promised"], "reply_final", "replied", DEPARTMENT)
_allow(["assigned", "signed"], "return", "triage", DEPARTMENT)  # 退件
_allow(_ACTIVE, "opinion", None, DEPARTMENT)  # a co-department's part of a joint letter
_allow(_ACTIVE, "request_extension", None, DEPARTMENT)
_allow(_ACTIVE, "decide_extension", None, OPERATOR)
_allow(_ACTIVE, "force", None, SUPERVISOR)  # 强制办理
_allow(["replied"], "visit", None, OPERATOR)  # 回访: to closed, or reopened
_allow(["received", "triage", *_ACTIVE, "escalated"], "reclassify", None, OPERATOR)


@dataclass(frozen=True)
class Reading:
    """What routing found for a letter's words (``text``) outside the write lock."""

    text: str
    words: list[str]
    original_id: int | None


class WorkflowError(Exception):
    """An action the rules do not allow here; nothing was changed. ``chinese`` says the
    same to the staff in the console; str() stays English for the CLI, API and logs."""

    def __init__(self, message: str, chinese: str) -> None:
        super().__init__(message)
        self.chinese = chinese


def _known(value: str, known: Sequence[str], what: str, chinese: str) -> None:
    """Codes come from forms and the command line as well as the core: refuse a stranger
    before it is stored (one check for the CLI, the API and the console)."""
    if value not in known:
        raise WorkflowError(
            f"unknown {what} {value!r}; known: {', '.join(known)}", f"未知的{chinese}：{value}"
        )


@dataclass(frozen=True)
class Actor:
    role: str
    name: str
    department: str | None = None  # the department code a clerk acts for

    @property
    def label(self) -> str:
        return f"{self.role}:{self.name}"


class Workflow:
    def __init__(
        self,
        routing: RoutingConfig,
        deadlines: DeadlinesConfig,
        calendar: WorkCalendar,
        clock: Callable[[], datetime],
        notify_departments: bool = False,
    ) -> None:
        self.rules = Rules(routing)
        self.routing = routing
        self.deadlines = deadlines
        self.calendar = calendar
        self.clock = clock
        self.notify_departments = notify_departments

    # -- departments ------------------------------------------------------------------

    def sync_departments(self, session: Session) -> None:
        """Make the departments table say what config.yaml says (new ones added, names
        and contacts updated, removed ones deactivated; none deleted: letters point at them)."""
        known = {d.code: d for d in session.scalars(select(Department))}
        listed = {d.code for d in self.routing.departments}
        for config in self.routing.departments:
            row = known.get(config.code) or Department(code=config.code)
            row.name, row.contacts, row.active = config.name, list(config.contacts), True
            session.add(row)
        for code, row in known.items():
            if code not in listed:
                row.active = False

    def _department(self, session: Session, code: str) -> Department:
        row = session.scalars(select(Department).where(Department.code == code)).one_or_none()
        if row is None or not row.active:
            raise WorkflowError(f"no active department {code!r}", f"没有在用的单位 {code}")
        return row

    # -- the table --------------------------------------------------------------------

    def _check(self, letter: Letter, action: str, actor: Actor) -> str:
        allowed = TRANSITIONS.get((letter.status, action))
        if allowed is None:
            raise WorkflowError(
                f"cannot {action} a letter that is {letter.status}",
                f"信件当前为「{STATUS_LABELS.get(letter.status, letter.status)}」，不能进行此操作",
            )
        to, roles = allowed
        if actor.role not in roles:
            raise WorkflowError(
                f"a {actor.role} cannot {action} (only {', '.join(sorted(roles))})",
                "您的角色不能进行此操作",
            )
        return to or letter.status

    def _event(
        self,
        session: Session,
        letter: Letter,
        actor: Actor,
        event_kind: str,
        department: Department | None = None,
        **detail: Any,
    ) -> None:
        record_event(
            session,
            at=self.clock(),
            actor=actor.label,
            kind=event_kind,
            letter=letter,
            department_id=department.id if department else None,
            **detail,
        )

    def _own_assignment(self, session: Session, letter: Letter, actor: Actor) -> Assignment:
        """A department sees and acts only on its own letters."""
        for assignment in self._assignments(session, letter):
            if assignment.department.code == actor.department:
                return assignment
        raise WorkflowError(
            f"letter {letter.tracking_number} is not assigned to {actor.department}",
            "此信件未交办给本单位（或已办结、已退回）",
        )

    @staticmethod
    def _assignments(session: Session, letter: Letter) -> list[Assignment]:
        return list(
            session.scalars(
                select(Assignment).where(
                    Assignment.letter_id == letter.id, Assignment.status.in_(OPEN_ASSIGNMENT)
                )
            )
        )

    # -- automatic processing of a new letter ---------------------------------------------

    def read(self, session: Session, letter: Letter) -> Reading:
        """The costly part of process(), done apart in a read-only session so that the
        one writer SQLite allows is not held for it: cutting the letter's words and
        looking for the matter it repeats. Changes nothing in the store."""
        text = content(letter)
        with session.no_autoflush:
            letter.district = letter.district or self.rules.district(body(letter))
            original = self.rules.find_duplicate(session, letter, self.clock())
        return Reading(text, self.rules.words(text), original.id if original else None)

    def process(self, session: Session, letter: Letter, reading: Reading | None = None) -> str:
        """Classify, screen, link duplicates and route a new letter; returns its status.
        ``reading``: what read() found, used when the letter's words are still those."""
        system = Actor(SYSTEM, "routing")
        self._check(letter, "process", system)
        if reading is not None and reading.text != content(letter):
            reading = None  # its words changed since (a transcript came): read them again
        words = reading.words if reading else self.rules.words(content(letter))
        if letter.category is None and (category := self.rules.classify(words)):
            letter.category = category
            self._event(session, letter, system, "classified", category=category)
        letter.district = letter.district or self.rules.district(body(letter))
        reason = self.rules.screen(letter, words, letter.citizen, len(letter.attachments))
        if reason is not None:
            self.reject(session, letter, reason, system)
            return letter.status
        if reading is None:
            original = self.rules.find_duplicate(session, letter, self.clock())
        else:
            original = session.get(Letter, reading.original_id) if reading.original_id else None
        if original is not None:
            # 并单: linked to the matter in hand; its reply will answer this citizen too.
            letter.duplicate_of_id, letter.status = original.id, "duplicate"
            self._event(session, letter, system, "duplicate", original=original.tracking_number)
            return letter.status
        decision = self.rules.route(letter.category, body(letter), letter.district)
        letter.status = "triage"
        if decision is None:
            self._event(session, letter, system, "triage")
            return letter.status
        departments = [decision.department, *decision.co_departments]
        self.assign(session, letter, departments, "assign", decision.reply_type, system)
        return letter.status

    # -- the hotline centre -------------------------------------------------------------

    def reject(self, session: Session, letter: Letter, reason: str, actor: Actor) -> None:
        _known(reason, REJECTIONS, "rejection reason", "不予受理理由")
        letter.status = self._check(letter, "reject", actor)
        letter.rejection = reason
        self._event(session, letter, actor, "rejected", reason=reason)
        text = self.routing.screening.replies.get(reason)
        if text and reason not in ("malicious", "advertising"):
            self._tell_citizen(session, letter, text)

    def assign(
        self,
        session: Session,
        letter: Letter,
        departments: Sequence[str],
        mode: str,
        reply_type: str,
        actor: Actor,
    ) -> list[Assignment]:
        """交办 to a lead department (the first) and, for a joint letter, co-departments."""
        _known(reply_type, REPLY_TYPES, "reply type", "答复类型")
        status = self._check(letter, "assign", actor)
        if not departments:
            raise WorkflowError("name at least one department", "请至少选择一个承办单位")
        now = self.clock()
        due = self.deadline(letter, reply_type, now)
        letter.status, letter.mode, letter.reply_type, letter.due_at = status, mode, reply_type, due
        made = []
        for n, code in enumerate(departments):
            department = self._department(session, code)
            assignment = Assignment(
                letter_id=letter.id,
                department_id=department.id,
                mode=mode,
                reply_type=reply_type,
                lead=n == 0,
                status="assigned",
                assigned_at=now,
                due_at=due,
            )
            session.add(assignment)
            made.append(assignment)
            self._event(
                session,
                letter,
                actor,
                "assigned",
                department,
                lead=n == 0,
                reply_type=reply_type,
                due_at=due.isoformat(),
            )
        return made

    def deadline(self, letter: Letter, reply_type: str, now: datetime) -> datetime:
        """When a letter assigned now with this reply type is due (the console previews it)."""
        d = self.deadlines
        if reply_type == "urgent":
            return self.calendar.add_working_hours(now, d.urgent_hours)
        days = d.joint_days if reply_type == "joint" else d.days.get(letter.category or "other", 7)
        return self.calendar.add_working_days(now, days)

    def answer(
        self, session: Session, letter: Letter, text: str, actor: Actor, public: bool = False
    ) -> None:
        """直办: the hotline answers at once on the letter's channel."""
        letter.status = self._check(letter, "answer", actor)
        letter.mode = "direct"
        self._reply(session, letter, None, "final", text, public, actor)

    def escalate(self, session: Session, letter: Letter, actor: Actor, note: str = "") -> None:
        letter.status = self._check(letter, "escalate", actor)
        letter.mode = "escalate"
        self._event(session, letter, actor, "escalated", note=note)

    def instruct(
        self,
        session: Session,
        letter: Letter,
        instruction: str,
        departments: Sequence[str],
        reply_type: str,
        actor: Actor,
    ) -> None:
        """The leader's instruction (批示) is recorded, then the letter is assigned per it."""
        self._check(letter, "instruct", actor)
        self._event(session, letter, actor, "instructed", instruction=instruction)
        letter.status = "triage"  # assign() takes it from triage, as the table says
        self.assign(
            session,
            letter,
            departments,
            "escalate",
            reply_type,
            Actor(SYSTEM, f"instruction-of-{actor.name}"),
        )

    def reclassify(self, session: Session, letter: Letter, category: str, actor: Actor) -> None:
        _known(category, CATEGORIES, "category", "类别")
        self._check(letter, "reclassify", actor)
        self._event(session, letter, actor, "reclassified", old=letter.category, new=category)
        letter.category = category

    # -- the departments ------------------------------------------------------------------

    def sign(self, session: Session, letter: Letter, actor: Actor) -> None:
        assignment = self._own_assignment(session, letter, actor)
        letter.status = self._check(letter, "sign", actor)
        assignment.status, assignment.signed_at = "signed", self.clock()
        self._event(session, letter, actor, "signed", assignment.department)

    def reply(
        self,
        session: Session,
        letter: Letter,
        text: str,
        actor: Actor,
        *,
        final: bool = True,
        public: bool = False,
        promised_at: datetime | None = None,
    ) -> None:
        assignment = self._own_assignment(session, letter, actor)
        if not assignment.lead:
            raise WorkflowError(
                "only the lead department replies; give an opinion instead",
                "只有牵头单位答复来信人；会办单位请提交会办意见",
            )
        if not final:
            if promised_at is None:
                raise WorkflowError(
                    "an interim reply commits to a completion date", "阶段性答复须填写承诺办结日期"
                )
            letter.status = self._check(letter, "reply_interim", actor)
            assignment.status, assignment.promised_at = "promised", promised_at
            letter.due_at = assignment.due_at = promised_at
            self._reply(session, letter, assignment.department, "interim", text, public, actor)
            return
        letter.status = self._check(letter, "reply_final", actor)
        missing = [
            a.department.code
            for a in self._assignments(session, letter)
            if not a.lead and a.status != "replied"
        ]
        if missing:
            raise WorkflowError(
                f"the co-departments have not given their opinion: {missing}",
                f"会办单位尚未提交意见：{'、'.join(missing)}",
            )
        assignment.status, assignment.replied_at = "replied", self.clock()
        self._reply(session, letter, assignment.department, "final", text, public, actor)

    def opinion(self, session: Session, letter: Letter, text: str, actor: Actor) -> None:
        assignment = self._own_assignment(session, letter, actor)
        self._check(letter, "opinion", actor)
        if assignment.lead:
            raise WorkflowError(
                "the lead department replies; opinions come from co-departments",
                "牵头单位请直接答复；会办意见由会办单位提交",
            )
        assignment.status, assignment.replied_at = "replied", self.clock()
        session.add(
            Reply(
                letter_id=letter.id,
                department_id=assignment.department_id,
                kind="opinion",
                text=text,
                public=False,
                author=actor.label,
                at=self.clock(),
            )
        )
        self._event(session, letter, actor, "opinion", assignment.department)

    def return_letter(self, session: Session, letter: Letter, reason: str, actor: Actor) -> None:
        """退件: only on the working day of assignment, with a reason; back to triage."""
        if not reason.strip():
            raise WorkflowError("a return needs a reason", "退件须说明理由")
        assignment = self._own_assignment(session, letter, actor)
        if not self.calendar.same_working_day(assignment.assigned_at, self.clock()):
            raise WorkflowError(
                "a letter can only be returned on the working day it came",
                "退件只能在交办当个工作日内进行",
            )
        letter.status = self._check(letter, "return", actor)
        for other in self._assignments(session, letter):
            other.status = "returned"
        letter.due_at = None
        self._event(session, letter, actor, "returned", assignment.department, reason=reason)

    def request_extension(
        self, session: Session, letter: Letter, reason: str, actor: Actor
    ) -> None:
        assignment = self._own_assignment(session, letter, actor)
        self._check(letter, "request_extension", actor)
        if assignment.due_at is not None and self.clock() >= assignment.due_at:
            raise WorkflowError(
                "an extension must be asked for before the deadline", "延期须在办理期限届满前申请"
            )
        self._event(
            session, letter, actor, "extension_requested", assignment.department, reason=reason
        )

    def decide_extension(
        self, session: Session, letter: Letter, approved: bool, actor: Actor
    ) -> None:
        self._check(letter, "decide_extension", actor)
        lead = next((a for a in self._assignments(session, letter) if a.lead), None)
        if lead is None or lead.due_at is None:
            raise WorkflowError(
                "the letter has no open assignment with a deadline", "此信件没有在办的限期交办"
            )
        if approved:
            due = self.calendar.add_working_days(lead.due_at, self.deadlines.extension_days)
            for assignment in self._assignments(session, letter):
                assignment.due_at = due
            letter.due_at = due
            self._tell_citizen(session, letter, f"您的来信办理期限已延长至{self._local(due)}。")
        self._event(session, letter, actor, "extension_decided", lead.department, approved=approved)

    def force(self, session: Session, letter: Letter, note: str, actor: Actor) -> None:
        """强制办理 by the supervision group."""
        self._check(letter, "force", actor)
        for assignment in self._assignments(session, letter):
            self._event(session, letter, actor, "forced", assignment.department, note=note)

    # -- the citizen ------------------------------------------------------------------------

    def visit(
        self, session: Session, letter: Letter, satisfied: bool, actor: Actor, note: str = ""
    ) -> None:
        """回访: satisfied closes the letter; unsatisfied reopens it to its departments."""
        self._check(letter, "visit", actor)
        letter.satisfaction = "satisfied" if satisfied else "unsatisfied"
        lead = session.scalars(
            select(Assignment)
            .where(Assignment.letter_id == letter.id, Assignment.lead.is_(True))
            .order_by(Assignment.id.desc())
        ).first()
        self._event(
            session,
            letter,
            actor,
            "visited",
            lead.department if lead else None,
            satisfied=satisfied,
            note=note,
        )
        if satisfied or lead is None:
            letter.status, letter.closed_at = "closed", self.clock()
            return
        # The first reply keeps its time: statistics still count it (and its timeliness);
        # the next final reply will set a new one.
        lead.status = letter.status = "signed"
        self._event(session, letter, actor, "reopened", lead.department)

    def _reply(
        self,
        session: Session,
        letter: Letter,
        department: Department | None,
        kind: str,
        text: str,
        public: bool,
        actor: Actor,
    ) -> None:
        now = self.clock()
        session.add(
            Reply(
                letter_id=letter.id,
                department_id=department.id if department else None,
                kind=kind,
                text=text,
                public=public and not letter.confidential,
                author=actor.label,
                at=now,
            )
        )
        if kind == "final":
            letter.replied_at = now
            # 选登 only with the citizen's consent where they were asked.
            letter.publish = (
                public and not letter.confidential and letter.publish_consent is not False
            )
            for duplicate in session.scalars(
                select(Letter).where(Letter.duplicate_of_id == letter.id)
            ):
                self._tell_citizen(session, duplicate, text)  # 并单: one answer for all
        self._event(session, letter, actor, "replied", department, reply=kind, public=public)
        self._tell_citizen(session, letter, text)

    def _tell_citizen(self, session: Session, letter: Letter, text: str) -> None:
        """On the letter's own channel: SMS, e-mail, or a callback for an agent (phone)."""
        citizen = letter.citizen
        if citizen is None:
            return
        subject = f"【12345市民热线】关于您的来信 {letter.tracking_number} 的答复"
        if letter.channel == "email" and citizen.email:
            queue_message(
                session,
                "email",
                letter.id,
                citizen.email,
                {"subject": subject, "body": text},
                self.clock(),
            )
        elif letter.channel in ("sms", "web", "fax") and citizen.phone:
            queue_message(
                session,
                "sms",
                letter.id,
                citizen.phone,
                {"body": f"【12345市民热线】{letter.tracking_number}：{text}"},
                self.clock(),
            )
        elif citizen.phone:
            queue_message(
                session,
                "callback",
                letter.id,
                citizen.phone,
                {"body": text},
                self.clock(),
                deliver=False,
            )

    def _local(self, moment: datetime) -> str:
        return moment.astimezone(self.calendar.zone).strftime("%Y年%m月%d日")

    # -- chasing ----------------------------------------------------------------------------

    def sweep(
        self, session_factory: Callable[[], Any], now: datetime, batch: int = 500
    ) -> dict[str, int]:
        """Warn before deadlines, urge past them, supervise urged letters still unanswered.
        Each notice is issued once per assignment however many nodes sweep (Chase is
        unique per assignment and kind). Returns how many of each were issued."""
        d = self.deadlines
        issued = {"warning": 0, "urge": 0, "supervise": 0}
        plans: list[tuple[str, Any]] = [
            (
                "warning",
                (Assignment.due_at > now)
                & (Assignment.due_at <= now + timedelta(hours=d.warn_before_hours)),
            ),
            ("urge", Assignment.due_at <= now),
        ]
        for kind, due_filter in plans:
            issued[kind] = self._chase(session_factory, kind, due_filter, now, batch)
        urged_before = now - timedelta(hours=d.supervise_after_hours)
        supervise_filter = Assignment.id.in_(
            select(Chase.assignment_id).where(Chase.kind == "urge", Chase.at <= urged_before)
        )
        issued["supervise"] = self._chase(
            session_factory, "supervise", supervise_filter, now, batch
        )
        return issued

    def _chase(
        self,
        session_factory: Callable[[], Any],
        kind: str,
        due_filter: Any,
        now: datetime,
        batch: int,
    ) -> int:
        # No paging by id: each issued (or lost to another node) chase drops its row from
        # the next query, and ordering by deadline lets the (status, due_at) index serve.
        issued = 0
        done = select(Chase.assignment_id).where(Chase.kind == kind)
        while True:
            with session_factory() as session, session.begin():
                rows = list(
                    session.scalars(
                        select(Assignment)
                        .where(
                            Assignment.status.in_(OPEN_ASSIGNMENT),
                            Assignment.due_at.is_not(None),
                            due_filter,
                            Assignment.id.not_in(done),
                        )
                        .order_by(Assignment.due_at)
                        .limit(batch)
                    )
                )
                for assignment in rows:
                    if self._issue(session, assignment, kind, now):
                        issued += 1
            if len(rows) < batch:
                return issued

    def _issue(self, session: Session, assignment: Assignment, kind: str, now: datetime) -> bool:
        try:
            with session.begin_nested():
                session.add(Chase(assignment_id=assignment.id, kind=kind, at=now))
        except sa_exc.IntegrityError:
            return False  # another node issued it first
        letter, department = assignment.letter, assignment.department
        event = {"warning": "warned", "urge": "urged", "supervise": "supervised"}[kind]
        record_event(
            session,
            at=now,
            actor="system:sweep",
            kind=event,
            letter=letter,
            department_id=department.id,
            due_at=assignment.due_at.isoformat() if assignment.due_at else None,
        )
        if kind != "warning" and self.notify_departments:
            title = "催办通知单" if kind == "urge" else "督办通知"
            body = (
                f"{department.name}：\n信件 {letter.tracking_number} 的办理期限为"
                f"{self._local(assignment.due_at or now)}，至今未答复，请抓紧办理并答复。\n"
                "12345市民热线"
            )
            for contact in department.contacts:
                queue_message(
                    session,
                    "email",
                    letter.id,
                    contact,
                    {"subject": f"【12345市民热线】{title} {letter.tracking_number}", "body": body},
                    now,
                )
        log_event(
            log,
            f"sweep.{event}",
            tracking_number=letter.tracking_number,
            department=department.code,
        )
        return True
