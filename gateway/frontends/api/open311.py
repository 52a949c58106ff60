"""Open311 GeoReport v2 (/open311/v2): civic apps built for Open311 report to 12345
unchanged. service_request_id is the tracking number; api_key is an API token."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.etree import ElementTree as ET
from zoneinfo import ZoneInfo

from sqlalchemy import Select, false, or_, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import selectinload
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.contract import tracking
from gateway.contract.config import CATEGORIES, Config
from gateway.contract.contact import Channel, Citizen, IncomingContact
from gateway.contract.errors import StoreUnavailable
from gateway.contract.labels import CATEGORY_LABELS
from gateway.core.access import Viewer, hidden, lead_department, sight, visible_to, words
from gateway.core.views import iso_utc
from gateway.frontends.api import auth
from gateway.frontends.api.deps import Services
from store.db import is_outage
from store.models import Department, Event, Letter, Reply

NAMES = CATEGORY_LABELS
# A citizen's answer to a follow-up visit (visit_answer) is never an open request.
CLOSED = ("replied", "closed", "rejected", "duplicate", "visit_answer")
# A client's retry of a request without device_id: the same body within this is one letter.
RETRY_WINDOW = timedelta(minutes=10)
# What a request list covers when it names no start_date (GeoReport v2).
DEFAULT_WINDOW = timedelta(days=90)
CONFIG_ZONE = ZoneInfo(Config.model_fields["timezone"].default)  # when none is given


class Open311Error(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def routes(services: Services, zone: ZoneInfo = CONFIG_ZONE) -> list[Route]:
    """The GeoReport routes; ``zone`` (config ``timezone``) places dates without a zone."""

    async def handle(request: Request) -> Response:
        path = request.path_params["path"]
        base, _, fmt = path.rpartition(".")
        if fmt not in ("json", "xml"):
            base, fmt = path, "json"
        try:
            if request.method == "POST" and base == "requests":
                form = dict(await request.form())
                body = await asyncio.to_thread(_create, services, form)
                return _render(body, fmt, "service_requests", "request")
            query = dict(request.query_params)
            body, root, item = await asyncio.to_thread(_read, services, base, query, zone)
            return _render(body, fmt, root, item)
        except SQLAlchemyError as exc:
            if not is_outage(exc):
                raise
            # Wherever the store fails to answer, an api_key's lookup first: retry.
            failure = Open311Error(503, "the store is unavailable, retry later")
        except Open311Error as exc:
            failure = exc
        errors = [{"code": failure.status, "description": failure.description}]
        return _render(errors, fmt, "errors", "error", failure.status)

    return [Route("/{path:path}", handle, methods=["GET", "POST"])]


def _principal(services: Services, key: str | None, scope: str) -> auth.Principal:
    with services.reads() as session:
        found = auth.find(session, services.settings, key or "") if key else None
    if found is None:
        raise Open311Error(403, "api_key is missing or not valid")
    if not found.can(scope):
        raise Open311Error(403, f"this api_key lacks the {scope} scope")
    return found


def _services_list(services: Services) -> list[dict[str, Any]]:
    codes = {**{c: NAMES[c] for c in CATEGORIES}, **services.settings.open311_services}
    return [
        {
            "service_code": code,
            "service_name": name,
            "description": name,
            "metadata": False,
            "type": "realtime",
            "keywords": "",
            "group": "12345",
        }
        for code, name in codes.items()
    ]


def _read(
    services: Services, base: str, query: dict[str, str], zone: ZoneInfo
) -> tuple[Any, str, str]:
    if base == "services":
        return _services_list(services), "services", "service"
    if base.startswith("services/"):
        code = base.removeprefix("services/")
        if code not in {s["service_code"] for s in _services_list(services)}:
            raise Open311Error(404, f"no service {code}")
        # No service asks more than its description: metadata is false, no attributes.
        return {"service_code": code, "attributes": []}, "service_definition", ""
    reader = _reader(services, query.get("api_key"))
    if base.startswith(("requests/", "tokens/")):
        kind, _, number = base.partition("/")
        found = _requests(services, reader, {"service_request_id": number}, zone)
        if not found:  # also when it exists but is another department's
            raise Open311Error(404, f"no {kind.removesuffix('s')} {number}")
        if kind == "tokens":  # requests are created at once: the token is the id
            found = [{"service_request_id": number, "token": number}]
        return found, "service_requests", "request"
    if base != "requests":
        raise Open311Error(404, f"no resource {base}")
    return _requests(services, reader, query, zone), "service_requests", "request"


def _reader(services: Services, key: str | None) -> Viewer:
    """GeoReport reads are public: without an api_key, every letter as the public may see
    it (no citizen, words scrubbed); a department's key, that department's letters. Its
    citizens never, whatever the key's scopes."""
    if not key:
        return Viewer(None, centre=False)
    return Viewer.token(_principal(services, key, "read").department, pii=False)


def _listed(query: dict[str, str], key: str) -> list[str]:
    """A parameter as the spec's comma-delimited list."""
    return [item.strip() for item in query.get(key, "").split(",") if item.strip()]


def _requests(
    services: Services, reader: Viewer, query: dict[str, str], zone: ZoneInfo
) -> list[dict[str, Any]]:
    stmt = select(Letter).where(visible_to(reader)).options(selectinload(Letter.citizen))
    numbers = _listed(query, "service_request_id")
    if numbers:  # the spec: service_request_id overrides every other parameter
        stmt = stmt.where(Letter.tracking_number.in_([tracking.normalize(n) for n in numbers]))
    else:
        stmt = _filtered(services, stmt, query, zone)
    with services.reads() as session:
        letters = session.scalars(stmt.order_by(Letter.id.desc()).limit(1000))
        return [_request_view(session, letter, reader) for letter in letters]


def _filtered(
    services: Services, stmt: Select[Letter], query: dict[str, str], zone: ZoneInfo
) -> Select[Letter]:
    codes = _listed(query, "service_code")
    known = {s["service_code"] for s in _services_list(services)}
    for code in codes:
        if code not in known:
            raise Open311Error(404, f"no service {code}")
    if codes:
        # A letter not yet classified shows as "other": so it is found.
        unclassified = Letter.category.is_(None) if "other" in codes else false()
        stmt = stmt.where(or_(Letter.category.in_(codes), unclassified))
    statuses = set(_listed(query, "status"))
    if statuses - {"open", "closed"}:
        raise Open311Error(400, "status is open, closed or both")
    if statuses == {"open"}:
        stmt = stmt.where(Letter.status.not_in(CLOSED))
    elif statuses == {"closed"}:
        stmt = stmt.where(Letter.status.in_(CLOSED))
    end = _span("end_date", query, zone)[1] if query.get("end_date") else None
    # The spec's default window: the 90 days up to end_date, or up to now.
    start = (
        _span("start_date", query, zone)[0]
        if query.get("start_date")
        else (end or services.clock()) - DEFAULT_WINDOW
    )
    stmt = stmt.where(Letter.received_at >= start)
    return stmt if end is None else stmt.where(Letter.received_at < end)


_W3C_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


def _span(key: str, query: dict[str, str], zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The UTC moments [from, until) a GeoReport date names. The spec asks for W3C
    date-times (W3C-DTF): a year, month or day is that whole period of the hotline's
    calendar, and a time without a zone (which W3C-DTF does not allow, but clients send)
    is the hotline's local time, the one its citizens and clerks live in."""
    text = query[key]
    try:
        date = _W3C_DATE.fullmatch(text)
        if date:
            year, month, day = int(date[1]), int(date[2] or 1), int(date[3] or 1)
            start = datetime(year, month, day, tzinfo=zone)
            if date[3]:
                end = start + timedelta(days=1)  # wall clock: the next local midnight
            elif date[2]:
                end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=zone)
            else:
                end = datetime(year + 1, 1, 1, tzinfo=zone)
        else:
            moment = datetime.fromisoformat(text)
            start = moment if moment.tzinfo else moment.replace(tzinfo=zone)
            end = start + timedelta(microseconds=1)
        return start.astimezone(UTC), end.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # no such day, or past year 1..9999 in UTC
        raise Open311Error(400, f"{key} is not a W3C date or date-time we can use") from exc


def _told(letter: Letter, reader: Viewer) -> bool:
    """Whether the letter's words go to this reader. An integrator's key reads them; the
    public (no api_key) only where the citizen chose to be public: posted to this public
    GeoReport endpoint, or consented to publication (no consent, no publication)."""
    public = reader.department is None and not reader.centre
    return not public or bool(letter.publish_consent) or letter.source.startswith("open311:")


def _request_view(session: Any, letter: Letter, reader: Viewer) -> dict[str, Any]:
    lead = session.scalar(select(lead_department(letter.id, Department.name)))
    reply = session.scalars(
        select(Reply.text)
        .where(Reply.letter_id == letter.id, Reply.public.is_(True))
        .order_by(Reply.id.desc())
    ).first()
    updated = session.scalars(
        select(Event.at).where(Event.letter_id == letter.id).order_by(Event.id.desc())
    ).first()
    # Civic apps show these to the public: scrubbed, as the reader has no pii.
    clean = words(letter, letter.citizen, sight(letter, reader))
    return {
        "service_request_id": letter.tracking_number,
        "status": "closed" if letter.status in CLOSED else "open",
        "status_notes": clean(reply) if reply else letter.rejection or "",
        "service_name": NAMES.get(letter.category or "other", letter.category),
        "service_code": letter.category or "other",
        # Scrubbed as the reader sees them, as the spec shows it from the start.
        "description": clean(letter.text or letter.subject) if _told(letter, reader) else None,
        "agency_responsible": lead or "12345市民热线",
        "service_notice": "",
        "requested_datetime": iso_utc(letter.received_at),
        "updated_datetime": iso_utc(updated or letter.received_at),
        "expected_datetime": iso_utc(letter.due_at) if letter.due_at else None,
        "address": letter.district or "",
        "address_id": None,
        "zipcode": None,
        # Where a hidden citizen reported from could name them: as their address, withheld.
        "lat": None if hidden(letter) else letter.latitude,
        "long": None if hidden(letter) else letter.longitude,
        "media_url": None,
    }


def _create(services: Services, form: dict[str, Any]) -> list[dict[str, Any]]:
    who = _principal(services, form.get("api_key"), "write")
    code = str(form.get("service_code") or "")
    if not code:
        raise Open311Error(400, "service_code is required")
    if code not in {s["service_code"] for s in _services_list(services)}:
        raise Open311Error(404, f"no service {code}")
    description = str(form.get("description") or "").strip()
    if not description:
        raise Open311Error(400, "description is required")
    name = " ".join(str(form.get(k) or "") for k in ("last_name", "first_name")).strip()
    address = str(form.get("address_string") or "")
    now = services.clock()
    contact = IncomingContact(
        channel=Channel.WEB,
        source=f"open311:{who.name}",
        external_id=_retry_key(form, now),
        received_at=now,
        citizen=Citizen(
            name=name or None,
            phone=str(form.get("phone") or "") or None,
            email=str(form.get("email") or "") or None,
            address=address or None,
        ),
        text=f"{description}\n{address}".strip(),
        category=code if code in CATEGORIES else None,
        location=_location(form),
    )
    try:
        accepted = services.intake.store(contact)
    except StoreUnavailable as exc:
        raise Open311Error(503, "the store is unavailable, retry later") from exc
    return [
        {
            "service_request_id": accepted.tracking_number,
            "service_notice": "12345市民热线已受理",
            "account_id": None,
        }
    ]


def _location(form: dict[str, Any]) -> tuple[float, float] | None:
    """The spec's lat/long (WGS84 decimal degrees), both or neither."""
    lat, long = form.get("lat"), form.get("long")
    if not lat and not long:
        return None
    try:
        where = round(float(str(lat)), 6), round(float(str(long)), 6)
    except ValueError:
        where = (math.nan, math.nan)
    if not (-90 <= where[0] <= 90 and -180 <= where[1] <= 180):
        raise Open311Error(400, "lat and long must both be WGS84 decimal degrees")
    return where


def _retry_key(form: dict[str, Any], now: datetime) -> str:
    """The idempotency key of a posted request. Only the client can tell two citizens
    apart: a ``device_id`` names the device, and the same body from it is one letter;
    without one, only the same body again within RETRY_WINDOW is (a client's retry), so two
    citizens writing "路灯坏了" are two letters. Hashed: the body carries contact details."""
    body = sorted((k, str(v)) for k, v in form.items() if k != "api_key")
    digest = hashlib.sha256(json.dumps(body, ensure_ascii=False).encode()).hexdigest()
    if form.get("device_id"):
        return f"device:{digest}"
    window = int(now.timestamp() // RETRY_WINDOW.total_seconds())
    return f"retry:{window}:{digest}"


# The spec's XML names each member of a list by the singular of the list's name.
_MEMBER = {"attributes": "attribute", "values": "value"}


def _render(body: Any, fmt: str, root: str, item: str, status: int = 200) -> Response:
    """``body`` as JSON, or as the spec's XML: a list as ``root`` of ``item`` elements, a
    single document (a service definition) as ``root`` itself."""
    if fmt == "json":
        return JSONResponse(body, status_code=status, media_type="application/json; charset=utf-8")
    tree = ET.Element(root)
    for entry in body if isinstance(body, list) else [body]:
        _fill(ET.SubElement(tree, item) if item else tree, entry)
    xml = ET.tostring(tree, encoding="utf-8", xml_declaration=True)
    return Response(xml, status_code=status, media_type="text/xml; charset=utf-8")


def _fill(node: ET.Element, entry: dict[str, Any]) -> None:
    for key, value in entry.items():
        child = ET.SubElement(node, key)
        if isinstance(value, list):
            for member in value:
                _fill(ET.SubElement(child, _MEMBER.get(key, key)), member)
        else:
            child.text = _text(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value).lower() if isinstance(value, bool) else str(value)
