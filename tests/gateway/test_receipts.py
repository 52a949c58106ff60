"""Every citizen gets one receipt, sent once screening has decided, on the medium that
reaches them, saying what happened: their number and 查询码 and where the letter went, or
why it was not taken; never 已受理 and then a rejection."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.core.workflow import Actor
from gateway.core.workflow.citizen import Media, sms_receipt
from gateway.core.workflow.transitions import DEPARTMENT
from store.models import Letter, OutboxMessage
from tests.conftest import Parts, make_contact
from tests.support.routing import Switchboard

MOBILE = "+8613900139000"
LANDLINE = "+868312345678"


@dataclass(frozen=True)
class Sent:
    kind: str
    to: str
    payload: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.payload.get("body", ""))


@pytest.fixture
def board(parts: Parts, engine: Engine) -> Switchboard:
    board = Switchboard(parts, engine)
    board.workflow.receipts = Media(email=True, sms=True)
    return board


def sms(board: Switchboard, text: str, phone: str = MOBILE, **changes: object) -> int:
    board.serial += 1
    board.clock.now += timedelta(minutes=5)
    return board.store(
        make_contact(
            board.serial,
            received_at=board.clock.now,
            citizen=Citizen(phone=phone),
            subject="",
            text=text,
            attachments=(),
            **changes,
        )
    )


def sent(board: Switchboard, letter_id: int) -> list[Sent]:
    with board.sessions() as session:
        rows = session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.letter_id == letter_id)
            .order_by(OutboxMessage.id)
        )
        return [Sent(m.kind, m.destination, dict(m.payload)) for m in rows]


def code_of(board: Switchboard, letter_id: int) -> tuple[str, str]:
    with board.sessions() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        return letter.tracking_number or "", letter.verification_code


def test_nothing_is_sent_before_screening_and_one_receipt_after_it(board: Switchboard) -> None:
    letter_id = sms(board, "南溪区的路灯坏了三天了")
    assert sent(board, letter_id) == []  # stored and acknowledged to the modem only

    board.route()

    number, code = code_of(board, letter_id)
    due = "2026年12月02日"  # 7 working days from Monday 23 November
    assert sent(board, letter_id) == [
        Sent(
            "sms",
            MOBILE,
            {
                "body": f"【12345市民热线】您的诉求已受理，编号{number}，查询码{code}。"
                f"已转交市城市管理局办理，{due}前答复您。凭编号和查询码可查询进度。"
            },
        )
    ]
    # Two UCS2 parts (67 characters each) at most.
    assert len(sent(board, letter_id)[0].text) <= 134


def test_a_letter_screened_out_gets_its_rejection_alone(board: Switchboard) -> None:
    letter_id = sms(board, "这个案子法院已受理，我要反映")
    board.route()

    number, _ = code_of(board, letter_id)
    [message] = sent(board, letter_id)
    assert (message.kind, message.to) == ("sms", MOBILE)
    assert message.text == (
        f"【12345市民热线】{number}：您反映的事项已进入司法程序，请向承办法院或司法机关咨询。"
    )
    assert "已受理" not in message.text


def test_advertising_is_rejected_without_a_word(board: Switchboard) -> None:
    letter_id = sms(board, "全场优惠，加微信领取推广礼品")
    board.route()
    assert sent(board, letter_id) == []


def test_a_repeat_is_told_it_joins_the_matter_in_hand(board: Switchboard) -> None:
    board.route(), sms(board, "翠屏区人民路的路灯坏了三天，请修理")
    board.route()
    again = sms(board, "翠屏区人民路的路灯坏了三天了，请尽快修理")
    board.route()

    [receipt] = sent(board, again)
    assert "您反映的问题已在办理中，办理结果将一并答复您。" in receipt.text


def test_an_sms_report_is_identified_by_its_number(board: Switchboard) -> None:
    letter_id = sms(board, "我要举报南溪区某工地晚上偷偷施工，噪音扰民")
    board.route()

    routed = board.routed(letter_id)
    assert (routed.status, routed.category) == ("assigned", "report")
    assert routed.departments == ("environment",)
    [receipt] = sent(board, letter_id)
    assert "已转交市生态环境局办理" in receipt.text


def test_a_report_with_a_name_and_no_way_to_reach_them_is_unidentified(
    board: Switchboard,
) -> None:
    board.serial += 1
    contact = make_contact(board.serial, citizen=Citizen(name="张三"), text="我要举报某单位违规")
    letter_id = board.store(contact)
    board.route()
    assert board.routed(letter_id).status == "rejected"
    assert sent(board, letter_id) == []  # no medium reaches them


def test_a_mobile_caller_gets_the_receipt_by_sms_once_the_voicemail_is_heard(
    board: Switchboard,
) -> None:
    letter_id = board.voicemail(b"\x01" * 64, caller=MOBILE)
    board.route()
    assert sent(board, letter_id) == []  # not judged on its label: no receipt yet

    board.transcribe(letter_id, "南溪区的工地每天晚上施工到两点噪音太大")
    board.route()

    number, code = code_of(board, letter_id)
    [receipt] = sent(board, letter_id)
    assert (receipt.kind, receipt.to) == ("sms", MOBILE)
    assert f"编号{number}，查询码{code}" in receipt.text


def test_a_landline_caller_gets_no_sms_and_a_reply_to_them_is_a_callback(
    board: Switchboard,
) -> None:
    letter_id = board.voicemail(b"\x01" * 64, caller=LANDLINE)
    board.transcribe(letter_id, "南溪区的路灯坏了")
    board.route()
    assert sent(board, letter_id) == []

    department = Actor(DEPARTMENT, "li", "city-admin")
    with board.sessions.begin() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        board.workflow.sign(session, letter, department)
        board.workflow.reply(session, letter, "已修好。", department)
    assert sent(board, letter_id) == [Sent("callback", LANDLINE, {"body": "已修好。"})]


def test_a_fax_from_a_landline_naming_a_mobile_gets_its_receipt_there(
    board: Switchboard,
) -> None:
    letter_id = board.fax(["南溪区的路灯坏了三天", "联系电话 13700137000"])
    board.read_pages()
    board.route()

    [receipt] = sent(board, letter_id)
    assert (receipt.kind, receipt.to) == ("sms", "+8613700137000")
    assert "已转交市城市管理局办理" in receipt.text


def test_a_mail_gets_one_receipt_by_mail_with_its_code_and_what_happened(
    board: Switchboard,
) -> None:
    board.serial += 1
    mail = IncomingContact(
        channel=Channel.EMAIL,
        source="mail-1",
        external_id="<m1@example.com>",
        received_at=board.clock.now,
        citizen=Citizen(email="zhang@example.com"),
        subject="路灯",
        text="南溪区的路灯坏了",
    )
    letter_id = board.store(mail)
    board.route()

    number, code = code_of(board, letter_id)
    [receipt] = sent(board, letter_id)
    assert (receipt.kind, receipt.to) == ("email", "zhang@example.com")
    assert receipt.payload["subject"] == f"【12345市民热线】来信已收到，受理编号 {number}"
    body = receipt.payload["body"]
    assert f"受理编号：{number}\n查询码：{code}" in body
    assert "您的来信已收到。已转交市城市管理局办理" in body


def test_without_a_sender_for_the_medium_no_receipt_is_queued(board: Switchboard) -> None:
    board.workflow.receipts = Media(email=True, sms=False)
    letter_id = sms(board, "南溪区的路灯坏了")
    board.route()
    assert sent(board, letter_id) == []


def test_the_sms_receipt_names_the_code_as_the_web_page_does() -> None:
    assert "查询码123456" in sms_receipt("20261123-0001", "123456", "")
    assert "提取码" not in sms_receipt("20261123-0001", "123456", "")
