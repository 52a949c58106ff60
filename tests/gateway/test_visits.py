"""回访 asked of the citizen and answered by them: the question after the final reply, the
answer by SMS or e-mail through the real intake and route job, the unanswered visit given to
an operator, and the bulletin's satisfaction figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine, event, select

from gateway.contract.config import VisitsConfig
from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.core import reports, stats
from gateway.core.workflow import DEPARTMENT, Actor
from gateway.core.workflow.answers import read_answer
from gateway.core.workflow.asking import sms_question
from gateway.core.workflow.citizen import Media
from store.models import Assignment, Event, Letter, OutboxMessage
from tests.conftest import SHANGHAI, Parts
from tests.support.routing import CALLER, Switchboard

CITY_ADMIN = Actor(DEPARTMENT, "li", "city-admin")
NEIGHBOUR = "+8613900139000"
MAIL = "zhang.san@example.cn"


@dataclass(frozen=True)
class Sent:
    """An outbox message as the citizen or the operator would get it."""

    kind: str
    to: str
    body: str
    deliver: bool


class Visits(Switchboard):
    def sms(self, text: str, sender: str = CALLER) -> int:
        """An SMS as the modem hands it to intake; its letter id."""
        self.serial += 1
        self.clock.now += timedelta(minutes=1)
        return self.store(
            IncomingContact(
                channel=Channel.SMS,
                source="modem-1",
                external_id=f"{sender}:{self.serial}",
                received_at=self.clock.now,
                citizen=Citizen(phone=sender),
                subject="",
                text=text,
            )
        )

    def mail(self, text: str, subject: str = "路灯不亮") -> int:
        self.serial += 1
        self.clock.now += timedelta(minutes=1)
        return self.store(
            IncomingContact(
                channel=Channel.EMAIL,
                source="mail-1",
                external_id=f"<m{self.serial}@example.cn>",
                received_at=self.clock.now,
                citizen=Citizen(name="张三", email=MAIL),
                subject=subject,
                text=text,
            )
        )

    def replied(self, letter_id: int) -> None:
        """The lead department signs and gives its final reply."""
        self.route()
        with self.sessions.begin() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None and letter.status == "assigned"
            self.workflow.sign(session, letter, CITY_ADMIN)
            self.workflow.reply(session, letter, "路灯已修复。", CITY_ADMIN)

    def sweep(self) -> dict[str, int]:
        """The sweep as a node runs it; how many visits it asked and gave to operators."""
        before = self.visit_events()
        self.workflow.sweep(self.sessions, self.clock.now)
        return {k: n - before[k] for k, n in self.visit_events().items()}

    def visit_events(self) -> dict[str, int]:
        with self.sessions() as session:
            kinds = list(session.scalars(select(Event.kind)))
        return {k: kinds.count(k) for k in ("visit_asked", "visit_unanswered")}

    def sent(self, letter_id: int) -> list[Sent]:
        with self.sessions() as session:
            rows = session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.letter_id == letter_id)
                .order_by(OutboxMessage.id)
            )
            return [
                Sent(
                    m.kind,
                    m.destination,
                    m.payload.get("body", ""),
                    m.kind != "callback",
                )
                for m in rows
            ]

    def letter(self, letter_id: int) -> Letter:
        with self.sessions() as session:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            return letter

    def history(self, letter_id: int) -> list[tuple[str, str, dict[str, object]]]:
        with self.sessions() as session:
            rows = session.scalars(
                select(Event).where(Event.letter_id == letter_id).order_by(Event.id)
            )
            return [(e.kind, e.actor, e.detail) for e in rows]

    def lead_status(self, letter_id: int) -> str:
        with self.sessions() as session:
            return session.scalars(
                select(Assignment.status).where(
                    Assignment.letter_id == letter_id, Assignment.lead.is_(True)
                )
            ).one()


@pytest.fixture
def board(parts: Parts, engine: Engine) -> Visits:
    visits = Visits(parts, engine)
    visits.workflow.visits = VisitsConfig(ask_after_hours=0)  # asked with the reply
    return visits


STREETLIGHT = "翠屏区人民路18号门口的路灯已经坏了三天，晚上很黑，请尽快修理。"


def test_a_fax_from_a_landline_is_asked_on_the_mobile_it_gives(board: Visits) -> None:
    letter_id = board.fax(["南溪区的路灯坏了三天", "联系电话 13700137000"])
    board.read_pages()
    board.replied(letter_id)

    [reply, question] = board.sent(letter_id)
    assert (reply.kind, reply.to) == (question.kind, question.to) == ("sms", "+8613700137000")
    assert question.body == sms_question(board.number(letter_id))

    # The citizen answers from that mobile: the fax is visited, not a new letter routed.
    answer = board.sms("3", sender="+8613700137000")
    board.route()
    assert board.letter(answer).status == "visit_answer"
    assert (board.letter(letter_id).satisfaction, board.lead_status(letter_id)) == (
        "unsatisfied",
        "signed",
    )


def test_an_sms_citizens_replied_letter_asks_them_by_sms(board: Visits) -> None:
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    number = board.number(letter_id)

    question = (
        f"【12345市民热线】您的来信（编号{number}）已答复，请问您对办理结果是否满意？"
        "请直接回复数字：1 满意，2 基本满意，3 不满意。"
    )
    assert board.sent(letter_id) == [
        Sent("sms", CALLER, f"【12345市民热线】{number}：路灯已修复。", True),
        Sent("sms", CALLER, question, True),
    ]
    assert len(question) <= 2 * 67  # two UCS2 parts of a concatenated SMS
    letter = board.letter(letter_id)
    assert (letter.status, letter.visit_asked_at) == ("replied", board.clock.now)
    assert board.history(letter_id)[-1][:2] == ("visit_asked", "system:visit")
    assert board.history(letter_id)[-1][2] == {"by": "sms"}
    assert board.sweep()["visit_asked"] == 0  # asked once


ANSWERS = [
    ("3", "unsatisfied", "signed"),
    ("不满意，还是没修", "unsatisfied", "signed"),
    ("还是没修好", "unsatisfied", "signed"),
    ("1", "satisfied", "closed"),
    ("１。", "satisfied", "closed"),
    ("谢谢已经解决了", "satisfied", "closed"),
    ("基本满意", "mostly_satisfied", "closed"),
    ("2 灯亮了，就是有点暗", "mostly_satisfied", "closed"),
]


@pytest.mark.parametrize(("text", "satisfaction", "status"), ANSWERS, ids=[a[0] for a in ANSWERS])
def test_the_citizens_sms_answer_closes_or_reopens_their_letter(
    board: Visits, text: str, satisfaction: str, status: str
) -> None:
    board.workflow.receipts = Media(email=True, sms=True)  # routing sends receipts
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    sent_before = board.sent(letter_id)
    assert [s.kind for s in sent_before] == ["sms", "sms", "sms"]  # receipt, reply, question

    answer_id = board.sms(text)
    assert board.route() == 1

    letter = board.letter(letter_id)
    assert (letter.status, letter.satisfaction) == (status, satisfaction)
    kinds = [kind for kind, _, _ in board.history(letter_id)]
    reopened = ["reopened"] if status == "signed" else []
    assert kinds[-1 - len(reopened) :] == ["visited", *reopened]
    visited = next(d for k, _, d in board.history(letter_id) if k == "visited")
    assert visited == {
        "satisfied": status == "closed",
        "satisfaction": satisfaction,
        "note": text,
        "answer": board.number(answer_id),
        "by": "sms",
    }
    if status == "signed":  # back to its lead department, to be asked again after
        assert board.lead_status(letter_id) == "signed"
        assert (letter.visit_asked_at, letter.visit_callback_at) == (None, None)
    # The answer is kept, linked, and neither routed, screened nor answered.
    answer = board.letter(answer_id)
    assert (answer.status, answer.category, answer.text) == ("visit_answer", None, text)
    assert board.history(answer_id) == [
        ("received", "channel:modem-1", {"channel": "sms", "attachments": 0}),
        (
            "visit_answer",
            "system:visit",
            {"visited": board.number(letter_id), "satisfaction": satisfaction},
        ),
    ]
    assert board.sent(answer_id) == []
    assert board.sent(letter_id) == sent_before  # nothing more told to anyone


def test_free_text_that_says_neither_is_a_note_and_an_operators_call(board: Visits) -> None:
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)

    answer_id = board.sms("我下午都在家，可以打电话给我")
    board.route()

    letter = board.letter(letter_id)
    assert (letter.status, letter.satisfaction) == ("replied", None)
    assert board.history(letter_id)[-1] == (
        "visit_noted",
        "system:visit",
        {"note": "我下午都在家，可以打电话给我", "answer": board.number(answer_id), "by": "sms"},
    )
    assert board.sent(letter_id)[-1] == Sent(
        "callback",
        CALLER,
        "回访答复未说明是否满意：「我下午都在家，可以打电话给我」。请电话询问来信人对信件 "
        f"{board.number(letter_id)} 的办理结果是否满意，并在系统中登记回访。",
        False,
    )
    assert board.letter(answer_id).status == "visit_answer"
    # The operator's call is that task: no second one when the days pass.
    board.clock.now += timedelta(days=10)
    assert board.sweep()["visit_unanswered"] == 0


def test_an_sms_from_someone_else_or_a_new_matter_is_a_new_letter(board: Visits) -> None:
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)

    stranger = board.sms("3", sender=NEIGHBOUR)
    new_matter = board.sms(
        "我要投诉，人民路的井盖丢了好几天了，" * 8  # from the citizen asked, but long
    )
    board.route()

    assert board.letter(letter_id).status == "replied"
    assert board.routed(stranger).status == "triage"
    assert board.routed(new_matter).departments == ("city-admin",)
    assert "visit_answer" not in board.routed(stranger).events


def test_an_unanswered_visit_becomes_one_callback_task(board: Visits) -> None:
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    asked = board.clock.now

    board.clock.now = asked + timedelta(days=3) - timedelta(minutes=1)
    assert board.sweep()["visit_unanswered"] == 0
    board.clock.now = asked + timedelta(days=3)
    assert board.sweep()["visit_unanswered"] == 1
    assert board.sweep()["visit_unanswered"] == 0
    board.clock.now += timedelta(days=5)
    assert board.sweep()["visit_unanswered"] == 0

    callbacks = [s for s in board.sent(letter_id) if s.kind == "callback"]
    assert callbacks == [
        Sent(
            "callback",
            CALLER,
            f"回访未获答复：请电话询问来信人对信件 {board.number(letter_id)} 的办理结果"
            "是否满意（满意/基本满意/不满意），并在系统中登记回访。",
            False,
        )
    ]
    kinds = [kind for kind, _, _ in board.history(letter_id)]
    assert kinds.count("visit_unanswered") == 1
    letter = board.letter(letter_id)
    assert (letter.status, letter.visit_callback_at) == ("replied", asked + timedelta(days=3))
    # The citizen may still answer after the call was given out.
    board.sms("1")
    board.route()
    assert board.letter(letter_id).status == "closed"


def test_the_question_waits_for_the_configured_delay(board: Visits) -> None:
    board.workflow.visits = VisitsConfig(ask_after_hours=2, callback_after_days=1)
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    replied = board.clock.now
    assert [s.kind for s in board.sent(letter_id)] == ["sms"]  # the reply only

    board.clock.now = replied + timedelta(hours=1)
    assert board.sweep()["visit_asked"] == 0
    board.clock.now = replied + timedelta(hours=2)
    assert board.sweep() == {"visit_asked": 1, "visit_unanswered": 0}
    assert board.sweep()["visit_asked"] == 0
    assert board.sent(letter_id)[-1].body == sms_question(board.number(letter_id))
    assert board.letter(letter_id).visit_asked_at == replied + timedelta(hours=2)


def test_an_email_citizen_is_asked_by_email_and_answers_above_the_quote(board: Visits) -> None:
    letter_id = board.mail(STREETLIGHT)
    board.replied(letter_id)
    number = board.number(letter_id)
    with board.sessions() as session:
        question = session.scalars(
            select(OutboxMessage).where(OutboxMessage.letter_id == letter_id)
        ).all()[-1]
        assert (question.kind, question.destination) == ("email", MAIL)
        assert question.payload["subject"] == (
            f"【12345市民热线】回访：您对来信 {number} 的办理结果是否满意？"
        )
        assert (
            "请直接回复本邮件，写上数字：1 满意，2 基本满意，3 不满意。" in question.payload["body"]
        )

    reply = "\n".join(
        [
            "基本满意，灯修好了",
            "",
            "在 2026年11月23日 10:00，12345市民热线 写道：",
            "> 请直接回复本邮件，写上数字：1 满意，2 基本满意，3 不满意。",
        ]
    )
    answer_id = board.mail(reply, subject=f"Re: 回访：您对来信 {number} 的办理结果是否满意？")
    board.route()

    letter = board.letter(letter_id)
    assert (letter.status, letter.satisfaction) == ("closed", "mostly_satisfied")
    assert board.letter(answer_id).status == "visit_answer"


def test_a_mail_saying_neither_is_a_note_and_not_unanswered(board: Visits) -> None:
    letter_id = board.mail(STREETLIGHT)
    board.replied(letter_id)

    board.mail("请问维修的是哪个单位？", subject="Re: 回访")
    board.route()

    assert [kind for kind, _, _ in board.history(letter_id)][-1] == "visit_noted"
    assert [s.kind for s in board.sent(letter_id)] == ["email", "email"]  # no phone to call
    board.clock.now += timedelta(days=10)
    assert board.sweep() == {"visit_asked": 0, "visit_unanswered": 0}
    assert board.letter(letter_id).status == "replied"


def test_an_answer_sent_again_is_linked_and_a_changed_one_is_a_note(board: Visits) -> None:
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    board.sms("1")
    again = board.sms("1")
    changed = board.sms("3")
    board.route()

    assert board.letter(letter_id).status == "closed"
    number = board.number(letter_id)
    for answer, satisfaction in ((again, "satisfied"), (changed, "unsatisfied")):
        assert board.letter(answer).status == "visit_answer"
        assert board.history(answer)[-1][2] == {
            "again": True,
            "visited": number,
            "satisfaction": satisfaction,
        }
    notes = [d for kind, _, d in board.history(letter_id) if kind == "visit_noted"]
    assert notes == [{"note": "3", "answer": board.number(changed), "by": "sms"}]
    # Past callback_after_days a bare "1" is a letter of its own again.
    board.clock.now += timedelta(days=3, minutes=1)
    late = board.sms("1")
    board.route()
    assert board.letter(late).status == "triage"


def test_an_answer_naming_its_letter_goes_to_that_one(board: Visits) -> None:
    first = board.sms(STREETLIGHT)
    second = board.sms("南溪区江边的井盖丢了，晚上走路很危险，请尽快处理。")
    board.replied(first)
    board.replied(second)

    board.sms(f"{board.number(first)} 3")  # not the last asked
    board.route()

    assert board.letter(first).status == "signed"
    assert board.letter(second).status == "replied"


def test_the_bulletin_counts_satisfaction_per_department(board: Visits) -> None:
    start = board.clock.now
    answers = {
        "1": "翠屏区人民路1号的路灯坏了，请尽快修理。",
        "基本满意": "南溪区江边的井盖丢了，晚上走路很危险。",
        "不满意，还是没修": "西街小学门口那盏灯一直闪，孩子放学看不清，麻烦看看路灯。",
        "": "菜市场旁边的井盖松了，踩上去会响，已经一个星期。",
    }
    for n, (answer, text) in enumerate(answers.items()):
        sender = f"+86139001390{n:02d}"
        letter_id = board.sms(text, sender=sender)
        board.replied(letter_id)
        if answer:
            board.sms(answer, sender=sender)
            board.route()
    board.clock.now += timedelta(days=3)
    board.sweep()
    end = board.clock.now + timedelta(minutes=1)

    with board.sessions() as session:
        bulletin = stats.build_bulletin(session, "旬报", start, end, SHANGHAI)
    (city,) = [d for d in bulletin.departments if d.code == "city-admin"]
    assert (
        city.visited,
        city.satisfied,
        city.mostly_satisfied,
        city.unsatisfied,
        city.unanswered,
    ) == (3, 1, 1, 1, 1)
    assert city.satisfaction_rate == pytest.approx(2 / 3)
    (ranked,) = [a for a in bulletin.assessment if a.code == "city-admin"]
    assert ranked.satisfaction == pytest.approx(25 * 2 / 3)
    row = reports.bulletin_json(bulletin)["departments"]
    (json_city,) = [d for d in row if d["code"] == "city-admin"]
    assert {k: json_city[k] for k in ("visited", "satisfied", "mostly_satisfied")} == {
        "visited": 3,
        "satisfied": 1,
        "mostly_satisfied": 1,
    }
    assert (json_city["unsatisfied"], json_city["unanswered"]) == (1, 1)
    assert json_city["satisfaction_rate"] == 0.6667
    statuses = {c.key: c.count for c in bulletin.volume.by_status}
    assert statuses["visit_answer"] == 3


READINGS = [
    ("1", "satisfied"),
    ("2", "mostly_satisfied"),
    ("3", "unsatisfied"),
    ("３", "unsatisfied"),
    ("满意", "satisfied"),
    ("滿意，謝謝", "satisfied"),
    ("不满意", "unsatisfied"),
    ("不滿意", "unsatisfied"),
    ("還可以", "mostly_satisfied"),
    ("差評", "unsatisfied"),
    ("基本满意", "mostly_satisfied"),
    ("还行吧", "mostly_satisfied"),
    ("谢谢，但是问题还是没有解决", "unsatisfied"),
    ("修好了，谢谢", "satisfied"),
    ("12345", None),
    ("好的收到", None),
    ("", None),
]


@pytest.mark.parametrize(
    ("text", "satisfaction"), READINGS, ids=[r[0] or "empty" for r in READINGS]
)
def test_an_answer_is_read_from_its_words(text: str, satisfaction: str | None) -> None:
    assert read_answer(text) == satisfaction


def test_with_visits_off_nobody_is_asked_and_an_answer_is_a_letter(board: Visits) -> None:
    """Turned on later, the sweep asks the letters replied meanwhile, once."""
    board.workflow.visits = VisitsConfig(enabled=False)
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    board.clock.now += timedelta(days=5)
    assert board.sweep()["visit_asked"] == 0
    answer_id = board.sms("1")
    board.route()
    assert board.letter(answer_id).status == "triage"
    assert board.letter(letter_id).status == "replied"

    board.workflow.visits = VisitsConfig()
    assert board.sweep() == {"visit_asked": 1, "visit_unanswered": 0}


def test_an_answer_is_matched_from_the_senders_indexes_not_every_replied_letter(
    board: Visits,
) -> None:
    """Every SMS routed looks for its sender's open question: from the citizen's and the
    phone's indexes, never by reading every replied, closed or fax letter (SQLite, which
    has no statistics here, would pick the status or channel index given the chance)."""
    if board.engine.dialect.name != "sqlite":
        pytest.skip("SQLite's query plans")
    letter_id = board.sms(STREETLIGHT)
    board.replied(letter_id)
    board.sms("1")
    seen: list[tuple[str, object]] = []

    def keep(_conn: object, _cursor: object, sql: str, params: object, *_: object) -> None:
        if sql.lstrip().upper().startswith("SELECT") and "letters" in sql:
            seen.append((sql, params))

    event.listen(board.engine, "before_cursor_execute", keep)
    try:
        board.route()
    finally:
        event.remove(board.engine, "before_cursor_execute", keep)

    assert board.letter(letter_id).satisfaction == "satisfied"
    plans = []
    with board.engine.connect() as conn:
        for sql, params in seen:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)  # type: ignore[arg-type]
            plans.append(" ".join(str(row[-1]) for row in rows))
    assert plans
    assert not [p for p in plans if "ix_letters_status" in p or "ix_letters_channel" in p]
