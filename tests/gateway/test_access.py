"""The access policy itself (gateway/core/access.py), below every front end: which letters a
reader may see, whose lead department a letter is, what of its citizen and which of its
files each reader gets. The same promises end to end: tests/api, tests/console."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import DeadlinesConfig
from gateway.contract.contact import Citizen as Sender
from gateway.core.access import (
    CITIZEN_FIELDS,
    PUBLISHED,
    Sight,
    Viewer,
    citizen_view,
    citizens_letter,
    file_shown,
    gives_away,
    hidden,
    lead_assignment,
    lead_department,
    sight,
    visible_to,
    words,
)
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import DEPARTMENT, OPERATOR, Actor, Workflow, WorkflowError
from gateway.frontends.console.accounts import Staff
from gateway.frontends.console.scope import viewer as console_viewer
from store.db import make_sessionmaker
from store.models import Citizen, Department, Letter
from tests.conftest import SHANGHAI, Parts, make_contact
from tests.gateway.test_workflow import MONDAY, ROUTING, Clock
from tests.support.canaries import COMPLAINANT, REPORTER

DEPARTMENTS = ["city-admin", "environment", "housing"]
OPERATOR_ZHANG = Actor(OPERATOR, "zhang")


def staff(role: str, department_id: int | None = None) -> Staff:
    return Staff(1, "u", "U", role, department_id, None, 1, "csrf")


# Every kind of reader, as its front end makes it.
READERS: dict[str, Viewer] = {
    "department token": Viewer.token("city-admin", pii=False),
    "department token with pii": Viewer.token("city-admin", pii=True),
    "hotline token": Viewer.token(None, pii=False),
    "auditor token": Viewer.token(None, pii=True),
    "clerk": console_viewer(staff("department", 1)),
    "operator": console_viewer(staff("operator")),
    "operator after a reveal": console_viewer(staff("operator"), revealed=True),
    "leader": console_viewer(staff("leader")),
    "webhook endpoint": Viewer.endpoint(include_pii=False),
    "webhook endpoint with pii": Viewer.endpoint(include_pii=True),
}
FULL, MASKED, WITHHELD = Sight.FULL, Sight.MASKED, Sight.WITHHELD
# reader: (a complainant, a hidden citizen, whether the hidden citizen's voicemail is given)
SEEN = {
    "department token": (MASKED, WITHHELD, False),
    "department token with pii": (FULL, WITHHELD, False),
    "hotline token": (MASKED, WITHHELD, False),
    "auditor token": (FULL, FULL, True),
    "clerk": (MASKED, WITHHELD, False),
    "operator": (MASKED, MASKED, True),
    "operator after a reveal": (FULL, FULL, True),
    "leader": (MASKED, MASKED, True),
    "webhook endpoint": (MASKED, WITHHELD, False),
    "webhook endpoint with pii": (FULL, WITHHELD, False),
}


def letter_like(**changes: Any) -> SimpleNamespace:
    fields = {"category": "complaint", "anonymous": False, "confidential": False, "channel": "sms"}
    return SimpleNamespace(**{**fields, **changes})


# Each way a citizen is hidden from departments: all read as a reporter's letter.
HIDING = {
    "report": {"category": "report"},
    "anonymous": {"anonymous": True},
    "confidential": {"confidential": True},
}


@pytest.mark.parametrize("why", list(HIDING))
@pytest.mark.parametrize("reader", list(SEEN))
def test_each_reader_sees_a_complainant_and_a_hidden_citizen_as_the_policy_says(
    reader: str, why: str
) -> None:
    complaint, report = letter_like(), letter_like(**HIDING[why])
    complainant, reporter, voicemail = SEEN[reader]
    viewer = READERS[reader]

    assert sight(complaint, viewer) is complainant
    assert sight(report, viewer) is reporter
    assert file_shown(report, "audio/wav", viewer) is voicemail
    assert file_shown(complaint, "audio/wav", viewer)  # a complainant's own words
    assert file_shown(report, "image/jpeg", viewer)  # the matter itself


def test_only_a_department_reader_is_kept_to_its_letters() -> None:
    scoped = {name for name, v in READERS.items() if v.department is not None}
    assert scoped == {"department token", "department token with pii", "clerk"}
    assert all(not READERS[name].centre for name in scoped)


# -- the promises, for any reader and any letter ----------------------------------------------

SENDERS = [COMPLAINANT.citizen(), REPORTER.citizen(), Sender(name="司马光", phone="0831-2345678")]
LETTERS = st.builds(
    letter_like,
    category=st.sampled_from(["complaint", "report", "help", None]),
    anonymous=st.booleans(),
    confidential=st.booleans(),
    channel=st.sampled_from(["sms", "fax", "phone", "web"]),
)
VIEWERS = st.builds(
    Viewer,
    department=st.one_of(st.none(), st.sampled_from(DEPARTMENTS), st.integers(1, 9)),
    centre=st.booleans(),
    pii=st.booleans(),
    revealed=st.booleans(),
)


def stored(sender: Sender) -> Citizen:
    return Citizen(
        name=sender.name,
        phone=sender.phone,
        email=sender.email,
        id_number=sender.id_number,
        address=sender.address,
    )


def details(citizen: Citizen) -> dict[str, str]:
    return {f: getattr(citizen, f) for f in ("name", "phone", "email", "id_number", "address")}


@settings(max_examples=300, deadline=None, database=None)
@given(LETTERS, VIEWERS, st.sampled_from(SENDERS))
def test_a_citizen_is_seen_in_full_only_by_a_reader_using_the_right_to(
    letter: SimpleNamespace, viewer: Viewer, sender: Sender
) -> None:
    citizen = stored(sender)
    seen = sight(letter, viewer)
    view = citizen_view(citizen, seen)
    written = " ".join(v for v in details(citizen).values() if v)
    read = words(letter, citizen, seen)(written)

    if seen is FULL:
        assert viewer.pii and viewer.revealed
        assert viewer.centre or not hidden(letter)  # a hidden citizen: the centre's alone
        assert view == {f: getattr(citizen, f) for f in CITIZEN_FIELDS} and read == written
        return
    if viewer.pii and viewer.revealed and not hidden(letter):
        pytest.fail("the right used shows a citizen nobody hides")
    if hidden(letter) and not viewer.centre:
        assert seen is WITHHELD and view is None
    shown = " ".join(str(v) for v in (view or {}).values())
    for field, value in details(citizen).items():
        if value is None:
            continue
        assert value not in shown, field
        # A complainant's address stays in their words: often where the matter is.
        if field != "address" or hidden(letter) or seen is WITHHELD:
            assert value not in read, field


@settings(max_examples=200, deadline=None, database=None)
@given(LETTERS, VIEWERS, st.sampled_from(["audio/wav", "image/png", "image/jpeg", "text/plain"]))
def test_a_file_that_gives_a_hidden_citizen_away_reaches_only_the_centre_with_the_right(
    letter: SimpleNamespace, viewer: Viewer, media_type: str
) -> None:
    shown = file_shown(letter, media_type, viewer)
    if not hidden(letter):
        assert shown and not gives_away(letter, media_type)
    elif media_type.startswith("audio/") or letter.channel == "fax":
        assert gives_away(letter, media_type)
        assert shown == (viewer.centre and viewer.pii)
    else:
        assert shown  # a photo of the matter is the matter


def test_the_public_reads_a_published_letter_without_any_detail_of_its_citizen() -> None:
    citizen = stored(COMPLAINANT.citizen())
    text = f"我住{COMPLAINANT.address}，电话{COMPLAINANT.dashed}，我叫{COMPLAINANT.name}。"
    clean = words(letter_like(), citizen, WITHHELD)(text)
    assert COMPLAINANT.leaks(clean) == [] and clean.startswith("我住***")
    assert citizen_view(citizen, WITHHELD) is None


# -- which letters, against the store -------------------------------------------------------


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

    def seen(self, viewer: Viewer, ids: list[int]) -> set[int]:
        with self.sessions() as session:
            query = select(Letter.id).where(Letter.id.in_(ids), visible_to(viewer))
            return set(session.scalars(query))

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


ROUND = st.lists(st.sampled_from(DEPARTMENTS), min_size=1, max_size=3, unique=True)
# Each letter's history: assigned in rounds (all but the last returned), and how the last
# one ends: still with its departments, signed by the lead, or returned too.
HISTORY = st.tuples(
    st.lists(ROUND, max_size=3), st.sampled_from(["assigned", "signed", "returned"])
)


def clerk_of(lead: str) -> Actor:
    return Actor(DEPARTMENT, "clerk", lead)


def live(desk: Desk, history: tuple[list[list[str]], str]) -> tuple[int, set[str], str | None]:
    """A letter through its history; its id, the departments holding it, and its lead."""
    rounds, ending = history
    letter_id = desk.letter()
    for n, departments in enumerate(rounds):
        kind = "joint" if len(departments) > 1 else "time_limited"
        desk.act(letter_id, "assign", departments, "assign", kind, OPERATOR_ZHANG)
        last = n == len(rounds) - 1
        if last and ending == "signed":
            desk.act(letter_id, "sign", clerk_of(departments[0]))
        if not last or ending == "returned":
            desk.act(letter_id, "return_letter", "不属于本单位职责", clerk_of(departments[-1]))
    if not rounds or ending == "returned":
        return letter_id, set(), None
    return letter_id, set(rounds[-1]), rounds[-1][0]


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(HISTORY, min_size=1, max_size=4))
def test_a_department_sees_exactly_the_letters_it_holds_and_leads_the_ones_it_was_given_first(
    desk: Desk, histories: list[tuple[list[list[str]], str]]
) -> None:
    letters = [live(desk, history) for history in histories]
    ids = [letter_id for letter_id, _, _ in letters]
    with desk.sessions() as session:
        codes: dict[str, int] = {
            c: i for c, i in session.execute(select(Department.code, Department.id))
        }

    for department in DEPARTMENTS:
        held = {letter_id for letter_id, holders, _ in letters if department in holders}
        # By its code (an API token) and by its id (a console clerk): the same letters.
        assert desk.seen(Viewer.token(department, pii=True), ids) == held
        assert desk.seen(Viewer(codes[department], centre=False), ids) == held
    for unscoped in (Viewer.token(None, pii=False), Viewer.endpoint(True), READERS["operator"]):
        assert desk.seen(unscoped, ids) == set(ids)
    assert [desk.lead(letter_id) for letter_id in ids] == [lead for _, _, lead in letters]


def test_a_department_acts_only_on_a_letter_it_still_holds(desk: Desk) -> None:
    letter_id = desk.letter()
    desk.act(letter_id, "assign", ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
    with pytest.raises(WorkflowError, match="not assigned to environment"):
        desk.act(letter_id, "sign", clerk_of("environment"))
    desk.act(letter_id, "return_letter", "不属于本单位职责", clerk_of("city-admin"))
    desk.act(letter_id, "assign", ["environment"], "assign", "time_limited", OPERATOR_ZHANG)
    with pytest.raises(WorkflowError, match="not assigned to city-admin"):
        desk.act(letter_id, "sign", clerk_of("city-admin"))
    desk.act(letter_id, "sign", clerk_of("environment"))


def test_an_unsatisfied_visit_never_hands_a_letter_back_to_a_department_that_returned_it(
    desk: Desk,
) -> None:
    letter_id = desk.letter()
    desk.act(letter_id, "assign", ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
    desk.act(letter_id, "return_letter", "不属于本单位职责", clerk_of("city-admin"))
    desk.act(letter_id, "answer", "办事大厅工作日9点开门。", OPERATOR_ZHANG)  # 直办
    desk.act(letter_id, "visit", "unsatisfied", OPERATOR_ZHANG, "不满意")

    with desk.sessions() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None and (letter.status, letter.satisfaction) == (
            "closed",
            "unsatisfied",
        )
    assert desk.seen(Viewer.token("city-admin", pii=False), [letter_id]) == set()
    assert desk.lead(letter_id) is None


def test_the_citizen_finds_their_letter_only_with_its_code(desk: Desk) -> None:
    accepted = desk.parts.intake.accept_sync(make_contact(99, attachments=()))
    number, code = accepted.tracking_number, accepted.verification_code
    assert number is not None and code is not None
    with desk.sessions() as session:
        found = citizens_letter(session, number, f" {code} ")
        assert found is not None and found.tracking_number == number
        assert (
            citizens_letter(session, number, code[:-1] + ("0" if code[-1] != "0" else "1")) is None
        )
        assert citizens_letter(session, "2026", code) is None  # not even a number
        # A letter no one published, or one made confidential, is not the public's.
        published = select(Letter.id).where(*PUBLISHED)
        assert found.id not in set(session.scalars(published))
        found.publish = True
        session.flush()
        assert found.id in set(session.scalars(published))
        found.confidential = True
        session.flush()
        assert found.id not in set(session.scalars(published))
