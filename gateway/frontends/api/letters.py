"""The letters of the REST API: a page of them, one with its history and files, a new one
from a partner channel. What a token sees of each is the access policy's to say."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import TypeAdapter
from sqlalchemy import Select, bindparam, select
from starlette.concurrency import run_in_threadpool

from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.contract.errors import StoreUnavailable
from gateway.core.access import (
    Sight,
    Viewer,
    citizen_view,
    file_shown,
    lead_department,
    letter_assignments,
    scrub_detail,
    sight,
    visible_to,
    words,
)
from gateway.core.views import SUMMARY_COLUMNS, assignment_view, awaiting_text
from gateway.frontends.api.deps import (
    Bearer,
    Db,
    Given,
    Services,
    Who,
    audited,
    authenticate,
    load,
    require,
    services_of,
    viewer,
)
from gateway.frontends.api.problems import ERRORS, RETRY_AFTER
from gateway.frontends.api.schemas import (
    AttachmentView,
    Created,
    EventView,
    LetterDetail,
    NewLetter,
    Page,
)
from store.models import MAX_ID, Assignment, Department, Letter

# A page is validated once, as a whole, and written straight to JSON.
PAGE = TypeAdapter(Page)
# The citizen as the API's schema has them (CitizenView).
CITIZEN = ("name", "phone", "email", "address")


def add_routes(api: FastAPI) -> None:
    api.get("/letters", response_model=Page, responses=ERRORS, summary="List letters")(list_letters)
    api.get(
        "/letters/{tracking_number}",
        response_model=LetterDetail,
        responses=ERRORS,
        summary="One letter with its history and attachment links",
    )(get_letter)
    api.post(
        "/letters",
        response_model=Created,
        status_code=201,
        responses=ERRORS,
        summary="Create a letter from a partner channel (idempotent by key)",
    )(create_letter)


async def list_letters(
    request: Request,
    bearer: Bearer,
    channel: Annotated[str | None, Query(max_length=16)] = None,
    status: Annotated[str | None, Query(max_length=24)] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    department: Annotated[str | None, Query(max_length=32)] = None,
    since: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int | None, Query(ge=1, le=500)] = None,
) -> Response:
    # The whole page (token, query, JSON) in one trip to a worker thread, not the four a
    # sync endpoint with its session and token dependencies takes: each trip cost about
    # what the page's query costs.
    filters = {
        "channel": channel,
        "status": status,
        "category": category,
        "department": department,
        "since": since,
    }
    services = services_of(request)
    body = await run_in_threadpool(page_of, services, bearer, filters, cursor, limit)
    return Response(body, media_type="application/json")


def page_of(
    services: Services,
    bearer: HTTPAuthorizationCredentials | None,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int | None,
) -> bytes:
    params = {name: value for name, value in filters.items() if value is not None}
    if "since" in params:
        params["since"] = aware(params["since"])
    if cursor is not None:
        params["before"] = _decode_cursor(cursor)
    size = limit or services.settings.page_size
    with services.read_engine.connect() as conn:
        who = authenticate(conn, services.settings, bearer)
        require(who, "read")
        reader = viewer(who)
        query = _page_query(reader, frozenset(params))
        rows = conn.execute(query, {**params, "size": size + 1}).all()
    more, rows = len(rows) > size, rows[:size]
    # A page has no citizens loaded: its subjects lose the shapes of contact details.
    page = {
        "items": [summary(r, r.lead, words(r, None, sight(r, reader))) for r in rows],
        "next_cursor": _encode_cursor(rows[-1].id) if more and rows else None,
    }
    return PAGE.dump_json(PAGE.validate_python(page))


@functools.lru_cache(maxsize=256)
def _page_query(reader: Viewer, given: frozenset[str]) -> Select[*tuple[Any, ...]]:
    """A page's statement for a token and the filters given, their values bound at
    execution: built once, so SQLAlchemy neither rebuilds it nor derives its cache key
    again each page (together about as long as SQLite takes to run it). A token's
    department is part of the key (a handful), a filter's value never is."""
    # The summary's columns only: a page never loads letters' texts.
    query = select(*SUMMARY_COLUMNS, lead_department().label("lead")).where(visible_to(reader))
    for name in ("channel", "status", "category"):
        if name in given:
            query = query.where(getattr(Letter, name) == bindparam(name))
    if "department" in given:
        query = query.where(
            Letter.id.in_(
                select(Assignment.letter_id)
                .join(Department)
                .where(Department.code == bindparam("department"))
            )
        )
    if "since" in given:
        query = query.where(Letter.received_at >= bindparam("since"))
    if "before" in given:
        query = query.where(Letter.id < bindparam("before"))
    return query.order_by(Letter.id.desc()).limit(bindparam("size"))


def get_letter(
    who: Who, s: Db, services: Given, tracking_number: Annotated[str, Path(max_length=40)]
) -> dict[str, Any]:
    require(who, "read")
    letter = load(s, who, tracking_number)
    reader = viewer(who)
    seen = sight(letter, reader)
    citizen = citizen_view(letter.citizen, seen, CITIZEN)
    clean = words(letter, letter.citizen, seen)
    if seen is Sight.FULL and citizen is not None:
        audited(services, who, letter)
    base = f"/api/v1/letters/{letter.tracking_number}/attachments"
    return {
        **summary(letter, s.scalar(select(lead_department(letter.id))), clean),
        "text": clean(letter.text),
        "transcript": letter.transcript and clean(letter.transcript),
        "text_source": letter.text_source,
        "district": letter.district,
        "mode": letter.mode,
        "reply_type": letter.reply_type,
        "citizen": citizen,
        "attachments": [
            AttachmentView(
                id=a.id,
                filename=clean(a.filename),
                media_type=a.media_type,
                size=a.size,
                sha256=a.sha256,
                url=f"{base}/{a.id}",
            )
            for a in letter.attachments
            if file_shown(letter, a.media_type, reader)
        ],
        "assignments": [assignment_view(a) for a in s.scalars(letter_assignments(letter.id))],
        "events": [
            EventView(at=e.at, actor=e.actor, kind=e.kind, detail=scrub_detail(e.detail, clean))
            for e in letter.events
        ],
    }


def create_letter(who: Who, services: Given, body: NewLetter, response: Response) -> Created:
    require(who, "write")
    c = body.citizen
    contact = IncomingContact(
        channel=Channel(body.channel),
        source=f"api:{who.name}",
        external_id=body.idempotency_key,
        received_at=services.clock(),
        citizen=Citizen(name=c.name, phone=c.phone, email=c.email, address=c.address),
        subject=body.subject,
        text=body.text,
        category=body.category,
        anonymous=body.anonymous,
        confidential=body.confidential,
    )
    try:
        accepted = services.intake.store(contact)
    except StoreUnavailable as exc:
        raise HTTPException(503, "The store is unavailable; retry later", RETRY_AFTER) from exc
    if not accepted.created:
        response.status_code = 200
    assert accepted.tracking_number is not None
    return Created(
        tracking_number=accepted.tracking_number,
        created=accepted.created,
        verification_code=accepted.verification_code,
    )


def summary(letter: Any, lead: str | None, clean: Callable[[str], str]) -> dict[str, Any]:
    return {
        "tracking_number": letter.tracking_number,
        "channel": letter.channel,
        "received_at": letter.received_at,
        "status": letter.status,
        "awaiting_text": awaiting_text(letter),
        "category": letter.category,
        "subject": clean(letter.subject),
        "department": lead,
        "due_at": letter.due_at,
    }


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _encode_cursor(letter_id: int) -> str:
    return base64.urlsafe_b64encode(str(letter_id).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        letter_id = int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode())
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise HTTPException(422, "Invalid cursor") from exc
    if not 0 < letter_id <= MAX_ID:  # never issued, and past what the store can bind
        raise HTTPException(422, "Invalid cursor")
    return letter_id
