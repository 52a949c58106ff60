"""What the hotline tells a citizen, in Chinese: the receipt with tracking number and code."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from gateway.contact import Channel, IncomingContact
from gateway.intake import StoredLetter
from gateway.outbox import queue_email


def receipt(letter: StoredLetter) -> tuple[str, str]:
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


class EmailReceipts:
    """Queues a receipt, in the letter's own transaction, to a citizen who wrote by e-mail."""

    def __call__(
        self, session: Session, letter: StoredLetter, contact: IncomingContact, at: datetime
    ) -> None:
        address = contact.citizen.email
        if contact.channel is not Channel.EMAIL or not address:
            return
        subject, body = receipt(letter)
        queue_email(session, letter.id, address, subject, body, at)
