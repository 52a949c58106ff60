"""What the hotline tells a citizen, in Chinese: the receipt with tracking number and code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.contract.contact import Channel, IncomingContact
from gateway.core.messages import queue_message
from gateway.engine.intake import StoredLetter


def email_receipt(letter: StoredLetter) -> tuple[str, str]:
    subject = f"【12345市民热线】来信已收到，受理编号 {letter.tracking_number}"
    body = "\n".join(
        [
            "尊敬的市民：",
            "",
            "您的来信已收到，我们将按规定转交有关部门办理，并在办理时限内答复您。",
            "",
            f"受理编号：{letter.tracking_number}",
            f"查询码：{letter.verification_code}",
            "",
            "凭受理编号和查询码可以查询办理进度。查询码只发给您本人，请妥善保管，勿告诉他人。",
            *([f"来信主题：{letter.subject}"] if letter.subject else []),
            "",
            "12345市民热线",
        ]
    )
    return subject, body


def sms_receipt(letter: StoredLetter) -> str:
    # Short enough for two UCS2 parts: citizens read it on a phone.
    return (
        f"【12345市民热线】您的诉求已受理，编号{letter.tracking_number}，"
        f"提取码{letter.verification_code}，凭编号和提取码可查询办理进度。"
    )


class Receipts:
    """Queues a receipt in the letter's own transaction, on the channel the citizen used,
    for the media that have a sender configured."""

    def __init__(self, email: bool, sms: bool) -> None:
        self.email = email
        self.sms = sms

    def __call__(
        self, session: Session, letter: StoredLetter, contact: IncomingContact, at: datetime
    ) -> None:
        citizen = contact.citizen
        if self.email and contact.channel is Channel.EMAIL and citizen.email:
            subject, body = email_receipt(letter)
            payload = {"subject": subject, "body": body}
            queue_message(session, "email", letter.id, citizen.email, payload, at)
        elif self.sms and contact.channel is Channel.SMS and citizen.phone:
            payload = {"body": sms_receipt(letter)}
            queue_message(session, "sms", letter.id, citizen.phone, payload, at)
