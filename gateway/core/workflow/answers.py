"""The citizen's answer to the visit question (回访): an SMS or e-mail from the citizen asked,
while the question is open, is matched to the visited letter instead of being routed as a
new matter. Its words say satisfied, mostly satisfied or unsatisfied, or neither (a note
for an operator). The answering letter stays stored, as every contact is."""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.core.messages import queue_message
from gateway.core.segmentation import simplified
from gateway.core.workflow.asking import VISIT
from gateway.core.workflow.base import Base
from gateway.core.workflow.visits import (
    MOSTLY_SATISFIED,
    SATISFACTIONS,
    SATISFIED,
    UNSATISFIED,
    record_visit,
)
from store.models import Citizen, Letter, LetterPhone
from store.pii import keyring_of

# The question's own choices, as the citizen types them: "3", "３", "3 还是没修".
_CHOICE = re.compile(r"^[^\w]*([123])(?!\d)")
# Words, looked for in this order: 不满意 holds 满意 and 基本满意 holds it too, and "谢谢，
# 但还是没修好" thanks someone while saying it is not done.
_CUES = (
    (
        UNSATISFIED,
        (
            "不满意",
            "没修",
            "未修",
            "没解决",
            "没有解决",
            "未解决",
            "没处理",
            "没有处理",
            "未处理",
            "没人管",
            "没有人管",
            "没效果",
            "没有效果",
            "老样子",
            "敷衍",
            "差评",
        ),
    ),
    (MOSTLY_SATISFIED, ("基本满意", "还行", "还可以", "一般", "凑合", "差不多")),
    (
        SATISFIED,
        (
            "满意",
            "解决了",
            "已解决",
            "修好了",
            "已修好",
            "处理好了",
            "谢谢",
            "感谢",
            "好评",
            "不错",
        ),
    ),
)
# Where a mail client starts quoting the question: its words are not the citizen's.
_QUOTED = re.compile(r"^\s*(>|-{2,}\s*(原始邮件|Original Message)|.*(写道|wrote)[:：]\s*$)")
# An answer sent again after the letter closed is taken as one only when it is this short.
BARE_ANSWER = 8


def read_answer(text: str) -> str | None:
    """satisfied, mostly_satisfied or unsatisfied from the citizen's words; None when they
    say neither."""
    words = _plain(text)
    if choice := _CHOICE.match(words):
        return SATISFACTIONS[int(choice[1]) - 1]
    for satisfaction, cues in _CUES:
        if any(cue in words for cue in cues):
            return satisfaction
    return None


def own_words(letter: Letter) -> str:
    """The citizen's words in an SMS, or in a mail above the question it quotes."""
    lines = []
    for line in (letter.text or "").splitlines():
        if letter.channel == "email" and _QUOTED.match(line):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def take_visit_answer(workflow: Base, session: Session, letter: Letter) -> bool:
    """Whether this new letter answers an open visit question of its citizen; if so it is
    recorded on the visited letter and this one becomes a 'visit_answer', not routed,
    screened or sent a receipt."""
    config = workflow.visits
    if not config.enabled or letter.channel not in ("sms", "email") or letter.status != "received":
        return False
    words = own_words(letter)
    if len(words) > config.answer_max_chars and not _CHOICE.match(_plain(words)):
        return False  # a new matter, even from a citizen we asked
    visited = _visited(session, letter, words)
    if visited is None:
        return _answered_again(workflow, session, letter, words)
    # "202611230000017 3": the number names the letter, the rest answers.
    satisfaction = read_answer(words.replace(visited.tracking_number, ""))
    letter.status = workflow._check(letter, "take_answer", VISIT)
    workflow._event(
        session,
        letter,
        VISIT,
        "visit_answer",
        visited=visited.tracking_number,
        satisfaction=satisfaction,
    )
    answer = {"answer": letter.tracking_number, "by": letter.channel}
    if satisfaction is not None:
        record_visit(workflow, session, visited, satisfaction, VISIT, words, **answer)
        return True
    # Neither: an operator reads it (and calls a citizen with a phone); the letter stays
    # replied. Answered all the same: the sweep does not give it out as unanswered.
    workflow._event(session, visited, VISIT, "visit_noted", None, note=words, **answer)
    citizen = visited.citizen
    first_note, visited.visit_callback_at = visited.visit_callback_at is None, workflow.clock()
    if first_note and citizen is not None and citizen.phone:
        body = (
            f"回访答复未说明是否满意：「{words}」。请电话询问来信人对信件 "
            f"{visited.tracking_number} 的办理结果是否满意，并在系统中登记回访。"
        )
        queue_message(
            session,
            "callback",
            visited.id,
            citizen.phone,
            {"body": body},
            workflow.clock(),
            deliver=False,
        )
    return True


def _answered_again(workflow: Base, session: Session, letter: Letter, words: str) -> bool:
    """A bare answer (1, 满意) after the visit closed the letter, within callback_after_days:
    the same answer sent twice, or changed. Linked to that letter rather than queued for
    operators as a new one; a changed answer is a note on it for them to read."""
    satisfaction = read_answer(words)
    if satisfaction is None or len(_plain(words)) > BARE_ANSWER:
        return False
    since = workflow.clock() - timedelta(days=workflow.visits.callback_after_days)
    visited = [
        row
        for row in _senders_letters(session, letter)
        if row.status == "closed"
        and row.visit_asked_at is not None
        and row.satisfaction is not None
        and row.closed_at is not None
        and row.closed_at >= since
    ]
    if not visited:
        return False
    last = max(visited, key=lambda row: (row.closed_at, row.id))
    closed = session.get(Letter, last.id)
    assert closed is not None
    letter.status = workflow._check(letter, "take_answer", VISIT)
    detail = {"visited": closed.tracking_number, "satisfaction": satisfaction}
    workflow._event(session, letter, VISIT, "visit_answer", None, again=True, **detail)
    if satisfaction != closed.satisfaction:
        answer = {"answer": letter.tracking_number, "by": letter.channel}
        workflow._event(session, closed, VISIT, "visit_noted", None, note=words, **answer)
    return True


def _visited(session: Session, letter: Letter, words: str) -> Letter | None:
    """The citizen's letter whose question is open: the one the answer names by its
    tracking number, else the one asked last. Locked, and read again under the lock."""
    open_ = sorted(
        (
            row
            for row in _senders_letters(session, letter)
            if row.status == "replied" and row.visit_asked_at is not None
        ),
        key=lambda row: (row.visit_asked_at, row.id),
        reverse=True,
    )
    if not open_:
        return None
    named = next((row.id for row in open_ if row.tracking_number in words), open_[0].id)
    visited = session.get(Letter, named, with_for_update=True, populate_existing=True)
    return visited if visited is not None and visited.status == "replied" else None


def _senders_letters(session: Session, letter: Letter) -> list[Any]:
    """The other letters of the sender's own number (an SMS) or address (a mail), by lookup
    hash (PII is encrypted), under any key while a rotation is under way; and the faxes
    that gave the sender's mobile in their text, where their question went
    (citizen.sms_number). Otherwise only the sender: a number written in a text may be
    anyone's. Found from the citizen's and the phone's indexes alone, filtered here: given a
    condition on the status or channel, SQLite reads every replied, closed or fax letter
    by that column's index for each SMS routed."""
    citizen = letter.citizen
    keyring = keyring_of(session.get_bind().dialect)
    if citizen is None:
        return []
    columns = (
        Letter.id,
        Letter.tracking_number,
        Letter.status,
        Letter.visit_asked_at,
        Letter.satisfaction,
        Letter.closed_at,
        Letter.channel,
    )
    found: list[Any]
    if letter.channel == "sms" and citizen.phone:
        hashes = keyring.lookup_hashes("phone", citizen.phone)
        senders = select(Citizen.id).where(Citizen.phone_hash.in_(hashes))
        faxed = (
            select(*columns)
            .join(LetterPhone, LetterPhone.letter_id == Letter.id)
            .where(LetterPhone.phone_hash.in_(hashes))
        )
        found = [row for row in session.execute(faxed) if row.channel == "fax"]
    elif letter.channel == "email" and citizen.email:
        hashes = keyring.lookup_hashes("email", citizen.email)
        senders = select(Citizen.id).where(Citizen.email_hash.in_(hashes))
        found = []
    else:
        return []
    ids = list(session.scalars(senders))
    if ids:
        found += session.execute(select(*columns).where(Letter.citizen_id.in_(ids)))
    return [row for row in {row.id: row for row in found}.values() if row.id != letter.id]


def _plain(text: str) -> str:
    # A Traditional answer (滿意, 沒修好) reads as the Simplified cues.
    return "".join(simplified(unicodedata.normalize("NFKC", text)).split())
