"""来电记录: the operator writes down a phone call's letter — its title, what the caller
asked and the category — on the letter the SIP worker stored when the seat answered.

Only a phone call's own letter, and only before it is dispatched (received, triage): a
letter a department already has is changed through the workflow's actions, and a citizen's
written words (an SMS, a mail, a voicemail's transcript) are never rewritten. Each save is on
the letter's history (kind ``recorded``, the category only: the words may carry PII).
"""

from __future__ import annotations

from starlette.responses import Response

from gateway.contract.config import CATEGORIES
from gateway.contract.contact import CALLS
from gateway.core.access import sight, words
from gateway.frontends.console.desk import Desk, NotFound
from gateway.frontends.console.desk_call import RECORDABLE
from gateway.frontends.console.scope import find_letter, viewer
from store.letters import record_event
from store.models import Letter

SUBJECT_CHARS = 100  # as the web form's subject (channels/web/form.py)
TEXT_CHARS = 5000


def recordable(letter: Letter) -> bool:
    """A call answered by a seat: the operator's words are its words. A voicemail has the
    caller's own (``text_source``: its transcript)."""
    return letter.channel in CALLS and letter.text_source is None and letter.status in RECORDABLE


def _letter(desk: Desk) -> Letter:
    letter = find_letter(desk.db, desk.staff, desk.request.path_params["number"])
    if letter is None:
        raise NotFound
    return letter


def record_form(
    desk: Desk, problem: str = "", status: int = 200, typed: dict[str, str] | None = None
) -> Response:
    letter = _letter(desk)
    # Before the first record the words are intake's placeholder for a call: the operator
    # starts from empty fields, not from deleting it.
    first = not any(event.kind == "recorded" for event in letter.events)
    shown = typed or {
        "subject": "" if first else letter.subject,
        "text": "" if first else letter.text,
        "category": letter.category or "",
    }
    hidden = _hides(desk, letter)
    return desk.render(
        "record.html",
        status,
        letter=letter,
        shown={} if hidden else shown,
        open=recordable(letter) and not hidden,
        hidden=hidden,
        problem=problem,
        subject_chars=SUBJECT_CHARS,
        text_chars=TEXT_CHARS,
    )


def _hides(desk: Desk, letter: Letter) -> bool:
    """The words hold a detail this reader sees masked (a number the caller gave): shown
    scrubbed, a save would overwrite it with ``***``, so the form stays closed."""
    clean = words(letter, letter.citizen, sight(letter, viewer(desk.staff)))
    return clean(letter.subject) != letter.subject or clean(letter.text) != letter.text


def record(desk: Desk) -> Response:
    letter = _letter(desk)
    typed = {name: desk.field(name) for name in ("subject", "text", "category")}
    if not recordable(letter) or _hides(desk, letter):
        return record_form(desk, "此信件已不能修改记录，请在信件页面办理。", 409, typed)
    if not typed["subject"] or not typed["text"]:
        return record_form(desk, "请填写标题和来电内容。", 400, typed)
    if len(typed["subject"]) > SUBJECT_CHARS or len(typed["text"]) > TEXT_CHARS:
        return record_form(
            desk, f"标题最多 {SUBJECT_CHARS} 字，内容最多 {TEXT_CHARS} 字。", 400, typed
        )
    if typed["category"] and typed["category"] not in CATEGORIES:
        return record_form(desk, "请选择信件类别。", 400, typed)
    letter.subject, letter.text = typed["subject"], typed["text"]
    letter.category = typed["category"] or letter.category
    record_event(
        desk.db,
        at=desk.now,
        actor=f"console:{desk.staff.username}",
        kind="recorded",
        letter=letter,
        category=letter.category,
    )
    return desk.see_other(f"/console/letters/{letter.tracking_number}?done=recorded")


PAGES = (
    ("/letters/{number}/record", ["GET"], "desk", record_form),
    ("/letters/{number}/record", ["POST"], "desk", record),
)
