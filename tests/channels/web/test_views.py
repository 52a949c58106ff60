"""What the citizen's site reads out of the store: a published letter (选登) with nothing of
its citizen left in it, and a letter's progress with its lead department's deadline."""

from __future__ import annotations

import json

from sqlalchemy import Engine, select

from channels.web.views import progress, published_letter
from gateway.contract.config import DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import DEPARTMENT, Actor, Workflow
from store.db import make_sessionmaker
from store.models import Letter
from tests.conftest import SHANGHAI, Parts, make_contact
from tests.gateway.test_workflow import MONDAY, ROUTING, Clock
from tests.support.canaries import COMPLAINANT

CITY_ADMIN = Actor(DEPARTMENT, "li", "city-admin")


def test_a_published_letter_shows_nothing_of_its_citizen_not_even_their_address(
    parts: Parts, engine: Engine
) -> None:
    c = COMPLAINANT
    said = f"我叫{c.name}，住{c.address}，电话{c.dashed}，邮箱{c.email}。人民路的路灯坏了。"
    number = parts.intake.accept_sync(
        make_contact(
            1,
            text=said,
            subject=f"{c.name}反映路灯",
            citizen=c.citizen(),
            publish_consent=True,
        )
    ).tracking_number
    assert number is not None
    sessions = make_sessionmaker(engine)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), Clock(MONDAY))
    with sessions.begin() as session:
        workflow.sync_departments(session)
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        workflow.process(session, letter)
        workflow.sign(session, letter, CITY_ADMIN)
        due = letter.due_at
        shown = progress(session, letter, SHANGHAI, {})
        workflow.reply(session, letter, f"已联系{c.name}，路灯已修复。", CITY_ADMIN, public=True)

    assert due is not None and shown["due"] == due.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    with sessions() as session:
        view = published_letter(session, number, SHANGHAI)
    assert view is not None and "人民路的路灯坏了" in view["text"]
    assert c.leaks(json.dumps(view, ensure_ascii=False)) == []
