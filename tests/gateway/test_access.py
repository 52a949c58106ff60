"""The access policy itself (gateway/core/access.py), below every front end: whose lead
department a letter is. The same promises end to end: tests/api, tests/console."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import DeadlinesConfig
from gateway.contract.contact import Citizen as Sender
from gateway.core.access import lead_assignment, lead_department
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import DEPARTMENT, OPERATOR, Actor, Workflow
from store.db import make_sessionmaker
from store.models import Letter
from tests.conftest import SHANGHAI, Parts, make_contact
from tests.gateway.test_workflow import MONDAY, ROUTING, Clock

OPERATOR_ZHANG = Actor(OPERATOR, "zhang")


@dataclass
class Desk:
    workflow: Workflow
    sessions: sessionmaker[Session]
    parts: Parts
    serial: itertools.count[int]

    def letter(self) -> int:
        """A letter no rule routes: it waits in triage for an operator."""
        n = next(self.serial)  # each its own citizen: not one matter written in twice
        citizen = Sender(phone=f"+86138{n:08d}")
        contact = make_contact(n, text="请问办事大厅几点开门？", citizen=citizen, attachments=())
        number = self.parts.intake.accept_sync(contact).tracking_number
        with self.sessions.begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            self.workflow.process(session, letter)
            assert letter.status == "triage", letter.status
            return letter.id

    def act(self, letter_id: int, action: str, *args: object) -> None:
        with self.sessions.begin() as session:
            getattr(self.workflow, action)(session, session.get(Letter, letter_id), *args)

    def lead(self, letter_id: int) -> str | None:
        with self.sessions() as session:
            # Correlated, as a page lists it, and for one letter: the same department.
            listed = session.scalar(select(lead_department()).where(Letter.id == letter_id))
            one = session.scalar(select(lead_department(letter_id)))
            lead = session.scalars(lead_assignment(letter_id)).first()
            assert listed == one == (lead.department.code if lead else None)
            return one


@pytest.fixture
def desk(parts: Parts, engine: Engine) -> Desk:
    clock = Clock(MONDAY)  # a working day: a return is allowed the day a letter came
    parts.intake.clock = clock
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), clock)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
    return Desk(workflow, sessions, parts, itertools.count(1))


def clerk_of(lead: str) -> Actor:
    return Actor(DEPARTMENT, "clerk", lead)


def test_the_lead_department_holds_a_letter_until_it_returns_it(desk: Desk) -> None:
    letter_id = desk.letter()
    assert desk.lead(letter_id) is None
    desk.act(letter_id, "assign", ["housing", "city-admin"], "assign", "joint", OPERATOR_ZHANG)
    assert desk.lead(letter_id) == "housing"
    desk.act(letter_id, "return_letter", "不属于本单位职责", clerk_of("city-admin"))
    assert desk.lead(letter_id) is None
    desk.act(letter_id, "assign", ["environment"], "assign", "time_limited", OPERATOR_ZHANG)
    assert desk.lead(letter_id) == "environment"
    desk.act(letter_id, "sign", clerk_of("environment"))
    assert desk.lead(letter_id) == "environment"


def test_an_unsatisfied_visit_never_hands_a_letter_back_to_a_department_that_returned_it(
    desk: Desk,
) -> None:
    letter_id = desk.letter()
    desk.act(letter_id, "assign", ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
    desk.act(letter_id, "return_letter", "不属于本单位职责", clerk_of("city-admin"))
    desk.act(letter_id, "answer", "办事大厅工作日9点开门。", OPERATOR_ZHANG)  # 直办
    desk.act(letter_id, "visit", False, OPERATOR_ZHANG, "不满意")

    with desk.sessions() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        assert (letter.status, letter.satisfaction) == ("closed", "unsatisfied")
    assert desk.lead(letter_id) is None
