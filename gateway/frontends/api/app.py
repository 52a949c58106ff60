"""The integrator REST API (/api/v1): letters, their files, and departments' actions."""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter
from sqlalchemy import Connection, Engine, Select, bindparam, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, selectinload, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.contract import tracking
from gateway.contract.config import ApiConfig
from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.contract.errors import StoreUnavailable
from gateway.core.access import (
    Sight,
    Viewer,
    citizen_view,
    file_shown,
    gives_away,
    lead_department,
    scrub_detail,
    sight,
    visible_to,
    words,
)
from gateway.core.views import SUMMARY_COLUMNS, awaiting_text
from gateway.core.workflow import DEPARTMENT, Actor, Workflow, WorkflowError
from gateway.engine.intake import Intake
from gateway.frontends.api import auth
from gateway.frontends.api.schemas import (
    Action,
    ActionResult,
    AttachmentView,
    Created,
    EventView,
    LetterDetail,
    NewLetter,
    Page,
    Problem,
)
from store.attachments import AttachmentStore
from store.db import is_outage, make_read_sessionmaker
from store.letters import record_event
from store.models import MAX_ID, Assignment, Attachment, Department, Letter

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM,
    403: PROBLEM,
    404: PROBLEM,
    409: PROBLEM,
    422: PROBLEM,
    503: PROBLEM,
}
# A page is validated once, as a whole, and written straight to JSON.
PAGE = TypeAdapter(Page)
# The citizen as the API's schema has them (CitizenView).
CITIZEN = ("name", "phone", "email", "address")


@dataclass
class Services:
    settings: ApiConfig
    sessions: sessionmaker[Session]
    files: AttachmentStore
    intake: Intake
    workflow: Workflow
    clock: Callable[[], datetime]

    def __post_init__(self) -> None:
        self.reads = make_read_sessionmaker(self.sessions.kw["bind"])
        # Pages read through Core: their rows are columns, never ORM objects.
        self.read_engine: Engine = self.reads.kw["bind"]


def _services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _session(request: Request) -> Iterator[Session]:
    with _services(request).reads() as s:
        yield s


Db = Annotated[Session, Depends(_session)]


def authenticate(
    db: Session | Connection, settings: ApiConfig, authorization: str | None
) -> auth.Principal:
    """The token's holder, looked up afresh each request: a revoked token stops at once."""
    scheme, _, token = (authorization or "").partition(" ")
    found = auth.find(db, settings, token) if scheme.lower() == "bearer" else None
    if found is None:
        raise HTTPException(401, "A valid bearer token is required")
    return found


def _principal(
    request: Request, s: Db, authorization: Annotated[str | None, Header()] = None
) -> auth.Principal:
    return authenticate(s, _services(request).settings, authorization)


# Module-level aliases: FastAPI resolves these string annotations in this module.
Who = Annotated[auth.Principal, Depends(_principal)]


def problem(status: int, title: str, detail: str | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def build_api(services: Services) -> FastAPI:
    api = FastAPI(
        title="12345 Hotline Gateway API",
        version="1",
        description="Letters for integrators' case systems. Errors are RFC 9457 problems.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": "/api/v1"}],
    )

    @api.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405
    async def http_problem(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    @api.exception_handler(SQLAlchemyError)
    async def store_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        # Wherever the store fails to answer (a token's lookup comes first), the client is
        # told to retry, as docs/api.md promises; any other database error is a bug (500).
        if not is_outage(exc):
            raise exc
        answer = problem(503, "The store is unavailable; retry later")
        answer.headers["Retry-After"] = "30"
        return answer

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem(422, "Invalid request", where)

    api.state.services = services

    def require(who: auth.Principal, scope: str) -> None:
        if not who.can(scope):
            raise HTTPException(403, f"This token lacks the {scope} scope")

    def load(s: Session, who: auth.Principal, number: str) -> Letter:
        letter = s.scalars(
            select(Letter)
            .where(Letter.tracking_number == tracking.normalize(number), visible_to(viewer(who)))
            .options(selectinload(Letter.attachments), selectinload(Letter.events))
        ).one_or_none()
        if letter is None:  # also when it exists but is another department's
            raise HTTPException(404, f"No letter {number}")
        return letter

    def audited(who: auth.Principal, letter: Letter, **detail: Any) -> None:
        """A read of the citizen on record, committed before it is answered."""
        with services.sessions.begin() as audit:
            record_event(
                audit,
                at=services.clock(),
                actor=f"api:{who.name}",
                kind="pii_read",
                letter=audit.get(Letter, letter.id),
                reason="api",
                **detail,
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

    @api.get("/letters", response_model=Page, responses=ERRORS, summary="List letters")
    async def list_letters(
        channel: Annotated[str | None, Query(max_length=16)] = None,
        status: Annotated[str | None, Query(max_length=24)] = None,
        category: Annotated[str | None, Query(max_length=16)] = None,
        department: Annotated[str | None, Query(max_length=32)] = None,
        since: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=40)] = None,
        limit: Annotated[int | None, Query(ge=1, le=500)] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> Response:
        # The whole page (token, query, JSON) in one trip to a worker thread, not the four
        # a sync endpoint with its session and token dependencies takes: each trip cost
        # about what the page's query costs.
        filters = {
            "channel": channel,
            "status": status,
            "category": category,
            "department": department,
            "since": since,
        }
        body = await run_in_threadpool(page_of, authorization, filters, cursor, limit)
        return Response(body, media_type="application/json")

    def page_of(
        authorization: str | None,
        filters: dict[str, Any],
        cursor: str | None,
        limit: int | None,
    ) -> bytes:
        params = {name: value for name, value in filters.items() if value is not None}
        if "since" in params:
            params["since"] = _aware(params["since"])
        if cursor is not None:
            params["before"] = _decode_cursor(cursor)
        size = limit or services.settings.page_size
        with services.read_engine.connect() as conn:
            who = authenticate(conn, services.settings, authorization)
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

    @api.get(
        "/letters/{tracking_number}",
        response_model=LetterDetail,
        responses=ERRORS,
        summary="One letter with its history and attachment links",
    )
    def get_letter(
        who: Who, s: Db, tracking_number: Annotated[str, Path(max_length=40)]
    ) -> dict[str, Any]:
        require(who, "read")
        letter = load(s, who, tracking_number)
        reader = viewer(who)
        seen = sight(letter, reader)
        citizen = citizen_view(letter.citizen, seen, CITIZEN)
        clean = words(letter, letter.citizen, seen)
        if seen is Sight.FULL and citizen is not None:
            audited(who, letter)
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
            "events": [
                EventView(at=e.at, actor=e.actor, kind=e.kind, detail=scrub_detail(e.detail, clean))
                for e in letter.events
            ],
        }

    @api.get(
        "/letters/{tracking_number}/attachments/{attachment_id}",
        responses=ERRORS,
        response_class=Response,
        summary="Download an attachment",
    )
    def get_attachment(
        who: Who,
        s: Db,
        tracking_number: Annotated[str, Path(max_length=40)],
        attachment_id: int,
    ) -> Response:
        require(who, "read")
        letter = load(s, who, tracking_number)
        reader = viewer(who)
        found = s.get(Attachment, attachment_id) if 0 < attachment_id <= MAX_ID else None
        if (
            found is None
            or found.letter_id != letter.id
            or not file_shown(letter, found.media_type, reader)
        ):
            raise HTTPException(404, f"No attachment {attachment_id} on {tracking_number}")
        if gives_away(letter, found.media_type):
            audited(who, letter, attachment=found.id)  # a hidden citizen's voice or fax page
        filename = words(letter, letter.citizen, sight(letter, reader))(found.filename)
        return Response(
            services.files.read(found.sha256),
            media_type=found.media_type,
            # Never rendered inline: a citizen's upload is not trusted content.
            headers={
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @api.post(
        "/letters",
        response_model=Created,
        status_code=201,
        responses=ERRORS,
        summary="Create a letter from a partner channel (idempotent by key)",
    )
    def create_letter(who: Who, body: NewLetter, response: Response) -> Created:
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
            raise HTTPException(503, "The store is unavailable; retry later") from exc
        if not accepted.created:
            response.status_code = 200
        assert accepted.tracking_number is not None
        return Created(
            tracking_number=accepted.tracking_number,
            created=accepted.created,
            verification_code=accepted.verification_code,
        )

    @api.post(
        "/letters/{tracking_number}/actions",
        response_model=ActionResult,
        responses=ERRORS,
        summary="A department's action: sign, reply, return, extend",
    )
    def act(
        who: Who, body: Action, tracking_number: Annotated[str, Path(max_length=40)]
    ) -> ActionResult:
        require(who, "act")
        if who.department is None:
            raise HTTPException(403, "Only a department's token acts on letters")
        actor = Actor(DEPARTMENT, f"api:{who.name}", who.department)
        w = services.workflow
        try:
            with services.sessions.begin() as s:
                letter = load(s, who, tracking_number)
                if body.action == "sign":
                    w.sign(s, letter, actor)
                elif body.action in ("reply", "interim_reply"):
                    w.reply(
                        s,
                        letter,
                        _needed(body.text, "text"),
                        actor,
                        final=body.action == "reply",
                        public=body.public,
                        promised_at=body.promised_at and _aware(body.promised_at),
                    )
                elif body.action == "return":
                    w.return_letter(s, letter, _needed(body.reason, "reason"), actor)
                else:
                    w.request_extension(s, letter, _needed(body.reason, "reason"), actor)
                status = letter.status
        except WorkflowError as exc:
            raise HTTPException(409, str(exc)) from exc
        return ActionResult(tracking_number=tracking.normalize(tracking_number), status=status)

    return api


def viewer(who: auth.Principal) -> Viewer:
    return Viewer.token(who.department, who.can("pii"))


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


def _needed(value: str | None, name: str) -> str:
    if not value or not value.strip():
        raise HTTPException(422, f"{name} is required for this action")
    return value


def _aware(moment: datetime) -> datetime:
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
