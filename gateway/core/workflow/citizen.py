"""What the citizen is told, in Chinese, on the medium that reaches them: the receipt (受理
编号 and 查询码, and what screening did), a rejection, an extension, a reply."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from gateway.core.messages import queue_message
from gateway.core.routing import content
from store.models import Letter
from store.phones import is_mobile, numbers_in

SIGNATURE = "【12345市民热线】"


@dataclass(frozen=True)
class Media:
    """The media the hotline has a sender for: a receipt goes only where one would leave."""

    email: bool = False
    sms: bool = False


def sms_number(letter: Letter) -> str | None:
    """The mobile number an SMS reaches this citizen on: the number they wrote or called
    from, or for a fax from a landline, a mobile number written in the fax. None for a
    landline alone: an SMS to it is lost, so a person calls back instead."""
    citizen = letter.citizen
    if citizen is None:
        return None
    if citizen.phone and is_mobile(citizen.phone):
        return citizen.phone
    if letter.channel == "fax":
        return next((n for n in numbers_in(content(letter)) if is_mobile(n)), None)
    return None


def email_receipt(number: str, code: str, subject: str, outcome: str) -> tuple[str, str]:
    lines = [
        "尊敬的市民：",
        "",
        f"您的来信已收到。{outcome}",
        "",
        f"受理编号：{number}",
        f"查询码：{code}",
        "",
        "凭受理编号和查询码可以查询办理进度。查询码只发给您本人，请妥善保管，勿告诉他人。",
        *([f"来信主题：{subject}"] if subject else []),
        "",
        "12345市民热线",
    ]
    return f"{SIGNATURE}来信已收到，受理编号 {number}", "\n".join(lines)


def sms_receipt(number: str, code: str, outcome: str) -> str:
    # Short enough for two UCS2 parts (134 characters): citizens read it on a phone.
    accepted = f"{SIGNATURE}您的诉求已受理，编号{number}，查询码{code}。"
    return f"{accepted}{outcome}凭编号和查询码可查询进度。"


ACCEPTED = "我们将按规定转交有关部门办理，并在办理时限内答复您。"


def queue_receipt(
    session: Session, letter: Letter, media: Media, outcome: str, at: datetime
) -> None:
    """One receipt, on the medium the citizen used: e-mail for a mail, SMS for a mobile
    (an SMS, a call, a fax naming one). A web citizen saw theirs on the page; a landline
    caller heard it at the end of their message."""
    citizen = letter.citizen
    if citizen is None or letter.channel == "web":
        return
    number, code = letter.tracking_number or "", letter.verification_code
    if letter.channel == "email":
        if media.email and citizen.email:
            subject, body = email_receipt(number, code, letter.subject, outcome)
            payload = {"subject": subject, "body": body}
            queue_message(session, "email", letter.id, citizen.email, payload, at)
    elif media.sms and (mobile := sms_number(letter)):
        payload = {"body": sms_receipt(number, code, outcome)}
        queue_message(session, "sms", letter.id, mobile, payload, at)


def tell_citizen(
    session: Session, letter: Letter, text: str, clock: Callable[[], datetime]
) -> None:
    """By e-mail for a mail, by SMS to a mobile, else a callback for an agent (a landline)."""
    citizen = letter.citizen
    if citizen is None:
        return
    subject = f"{SIGNATURE}关于您的来信 {letter.tracking_number} 的答复"
    if letter.channel == "email" and citizen.email:
        payload = {"subject": subject, "body": text}
        queue_message(session, "email", letter.id, citizen.email, payload, clock())
    elif mobile := sms_number(letter):
        payload = {"body": f"{SIGNATURE}{letter.tracking_number}：{text}"}
        queue_message(session, "sms", letter.id, mobile, payload, clock())
    elif citizen.phone:
        payload = {"body": text}
        to = citizen.phone
        queue_message(session, "callback", letter.id, to, payload, clock(), deliver=False)
