"""The integrator API over HTTP: tokens and scopes, department isolation, PII, problems."""

from __future__ import annotations

import base64
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from openapi_spec_validator import validate
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.contract.config import ApiConfig, DeadlinesConfig
from gateway.contract.contact import Channel, Citizen
from gateway.contract.errors import StoreUnavailable
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import OPERATOR, Actor, Workflow
from gateway.frontends.api import auth, open311
from gateway.frontends.api.app import Services, build_api
from store.db import make_sessionmaker
from store.models import Event, Letter
from tests.conftest import SHANGHAI, Parts, build_intake, make_contact
from tests.gateway.test_workflow import ROUTING
from tests.support.routing import Switchboard
from tests.support.tcp_proxy import TcpProxy


@dataclass
class Api:
    client: httpx.AsyncClient
    tokens: dict[str, str]
    parts: Parts
    workflow: Workflow


def letter(parts: Parts, workflow: Workflow, n: int, text: str, **changes: object) -> str:
    accepted = parts.intake.accept_sync(make_contact(n, text=text, **changes))
    assert accepted.tracking_number
    with parts.intake.sessions.begin() as session:
        row = session.scalars(
            select(Letter).where(Letter.tracking_number == accepted.tracking_number)
        ).one()
        workflow.process(session, row)
    return accepted.tracking_number


@pytest.fixture
async def api(parts: Parts, engine: Engine) -> AsyncIterator[Api]:
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: now)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
        tokens = {
            "reader": auth.create(session, "reader", ["read"], None, now),
            "partner": auth.create(session, "partner", ["read", "write"], None, now),
            "city-admin": auth.create(session, "ca", ["read", "act"], "city-admin", now),
            "environment": auth.create(session, "env", ["read", "act"], "environment", now),
            "auditor": auth.create(session, "auditor", ["read", "pii"], None, now),
        }
    services = Services(
        ApiConfig(page_size=2), sessions, parts.files, parts.intake, workflow, lambda: now
    )
    transport = httpx.ASGITransport(app=build_api(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
        yield Api(client, tokens, parts, workflow)


def bearer(api: Api, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.tokens[who]}"}


@pytest.mark.parametrize(
    ("headers", "challenge"),
    [
        ({}, 'Bearer realm="12345"'),
        ({"Authorization": "Bearer"}, 'Bearer realm="12345"'),
        ({"Authorization": "Basic eDp5"}, 'Bearer realm="12345"'),
        ({"Authorization": "Bearer nope"}, 'Bearer realm="12345", error="invalid_token"'),
    ],
    ids=["none", "bearer-without-token", "basic", "bad-token"],
)
@pytest.mark.parametrize("path", ["/letters", "/letters/20261123000001X"], ids=["page", "letter"])
async def test_without_a_valid_token_the_answer_is_a_401_problem_with_a_bearer_challenge(
    api: Api, headers: dict[str, str], challenge: str, path: str
) -> None:
    """RFC 6750 §3: the challenge names an error only when a bearer token was given."""
    answer = await api.client.get(path, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"] == challenge
    assert answer.json() == {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": "A valid bearer token is required",
    }


async def test_letters_are_listed_newest_first_a_page_at_a_time(api: Api) -> None:
    numbers = [
        letter(
            api.parts,
            api.workflow,
            n,
            f"第{n}盏路灯坏了",
            citizen=Citizen(phone=f"+861380013{n:04d}"),
        )
        for n in range(5)
    ]
    seen, cursor = [], None
    for _ in range(5):
        params: dict[str, str] = {"cursor": cursor} if cursor else {}
        page = (
            await api.client.get("/letters", params=params, headers=bearer(api, "reader"))
        ).json()
        seen += [item["tracking_number"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == numbers[::-1]


async def test_a_department_token_sees_only_its_own_letters(api: Api) -> None:
    streetlight = letter(api.parts, api.workflow, 1, "路灯坏了")
    noise = letter(
        api.parts, api.workflow, 2, "工地噪音扰民", citizen=Citizen(phone="+8613900139000")
    )

    listed = (await api.client.get("/letters", headers=bearer(api, "environment"))).json()
    assert [i["tracking_number"] for i in listed["items"]] == [noise]
    hidden = await api.client.get(f"/letters/{streetlight}", headers=bearer(api, "environment"))
    assert hidden.status_code == 404


async def test_a_revoked_token_is_refused_at_its_very_next_request(api: Api) -> None:
    number = letter(api.parts, api.workflow, 1, "路灯坏了")
    assert (await api.client.get("/letters", headers=bearer(api, "reader"))).status_code == 200
    with api.parts.intake.sessions.begin() as session:
        assert auth.revoke(session, "reader", datetime(2026, 11, 23, 3, 0, tzinfo=UTC)) == 1

    for path in ("/letters", f"/letters/{number}"):
        answer = await api.client.get(path, headers=bearer(api, "reader"))
        assert answer.status_code == 401, path
    assert (await api.client.get("/letters", headers=bearer(api, "partner"))).status_code == 200


async def test_departments_and_filters_taking_turns_each_get_their_own_page(api: Api) -> None:
    """A page's statement is built once per department and set of filters: neither one
    token's department nor one request's filter value may stay in it for the next."""
    streetlight = letter(api.parts, api.workflow, 1, "路灯坏了")
    noise = letter(
        api.parts, api.workflow, 2, "工地噪音扰民", citizen=Citizen(phone="+8613900139000")
    )
    mail = letter(
        api.parts,
        api.workflow,
        3,
        "滨江路的路灯一直不亮",
        channel=Channel.EMAIL,
        citizen=Citizen(email="w@x.cn"),
    )

    async def listed(who: str, query: str = "") -> list[str]:
        answer = await api.client.get(f"/letters?limit=50{query}", headers=bearer(api, who))
        assert answer.status_code == 200, answer.text
        return [i["tracking_number"] for i in answer.json()["items"]]

    for _ in range(2):
        assert await listed("environment") == [noise]
        assert await listed("city-admin") == [mail, streetlight]
        assert await listed("reader") == [mail, noise, streetlight]
        assert await listed("city-admin", "&channel=email") == [mail]
        assert await listed("city-admin", "&channel=sms") == [streetlight]
        assert await listed("environment", "&channel=email") == []
        assert await listed("reader", "&department=environment") == [noise]
        assert await listed("reader", "&department=city-admin&channel=sms") == [streetlight]


async def test_contact_details_are_masked_and_a_reporter_is_not_shown_at_all(api: Api) -> None:
    number = letter(
        api.parts,
        api.workflow,
        1,
        "路灯坏了",
        citizen=Citizen(name="张三丰", phone="+8613800138000", email="zs@x.cn"),
    )
    report = letter(
        api.parts,
        api.workflow,
        2,
        "我要举报某单位",
        citizen=Citizen(name="李四", phone="+8613900139000"),
    )

    seen = (await api.client.get(f"/letters/{number}", headers=bearer(api, "reader"))).json()
    assert seen["citizen"] == {
        "name": "张**",
        "phone": "138****8000",
        "email": "z***@x.cn",
        "address": None,
    }
    hidden = (await api.client.get(f"/letters/{report}", headers=bearer(api, "reader"))).json()
    assert hidden["citizen"] is None


async def test_a_letter_says_which_departments_hold_it(api: Api) -> None:
    number = letter(api.parts, api.workflow, 1, "路灯坏了")

    seen = (await api.client.get(f"/letters/{number}", headers=bearer(api, "reader"))).json()
    assert seen["department"] == "city-admin"
    assert seen["assignments"] == [
        {
            "department": "city-admin",
            "department_name": "市城市管理局",
            "lead": True,
            "reply_type": "time_limited",
            "due_at": seen["due_at"],
            "status": "assigned",
        }
    ]
    assert seen["due_at"] is not None
    schema = (await api.client.get("/openapi.json")).json()["components"]["schemas"]
    assert schema["LetterDetail"]["properties"]["assignments"]["items"] == {
        "$ref": "#/components/schemas/AssignmentView"
    }
    assert set(schema["AssignmentView"]["required"]) == set(seen["assignments"][0])


async def test_a_pii_read_shows_everything_and_is_audited(api: Api, engine: Engine) -> None:
    number = letter(
        api.parts, api.workflow, 1, "路灯坏了", citizen=Citizen(name="张三", phone="+8613800138000")
    )
    seen = (await api.client.get(f"/letters/{number}", headers=bearer(api, "auditor"))).json()
    assert seen["citizen"]["phone"] == "+8613800138000"
    with make_sessionmaker(engine)() as session:
        audit = session.scalars(select(Event).where(Event.kind == "pii_read")).one()
    assert audit.actor == "api:auditor"


async def test_a_partner_creates_a_letter_once_per_idempotency_key(api: Api) -> None:
    body = {
        "idempotency_key": "mini-program-42",
        "text": "小区门口井盖丢了",
        "citizen": {"name": "王五", "phone": "13700137000"},
    }
    first = await api.client.post("/letters", json=body, headers=bearer(api, "partner"))
    again = await api.client.post("/letters", json=body, headers=bearer(api, "partner"))

    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["tracking_number"] == again.json()["tracking_number"]
    assert len(first.json()["verification_code"]) == 6 and again.json()["verification_code"] is None
    refused = await api.client.post("/letters", json=body, headers=bearer(api, "reader"))
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "no key"}, "idempotency_key"),
        ({"idempotency_key": "k", "text": ""}, "text"),
        ({"idempotency_key": "k", "text": "x", "channel": "pigeon"}, "channel"),
        ({"idempotency_key": "k", "text": "x", "unknown": 1}, "unknown"),
    ],
    ids=["no-key", "empty-text", "bad-channel", "unknown-field"],
)
async def test_bad_input_gets_a_422_problem_naming_the_field(
    api: Api, body: dict[str, object], field: str
) -> None:
    answer = await api.client.post("/letters", json=body, headers=bearer(api, "partner"))
    assert answer.status_code == 422
    assert answer.json()["title"] == "Unprocessable Content"
    assert f"body.{field}:" in answer.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "who", "status", "title", "detail", "headers"),
    [
        pytest.param(
            "POST",
            "/letters",
            "reader",
            403,
            "Forbidden",
            "This token lacks the write scope",
            {"www-authenticate": 'Bearer realm="12345", error="insufficient_scope", scope="write"'},
            id="missing-scope",
        ),
        pytest.param(
            "GET",
            "/letters/20261123000001X",
            "reader",
            404,
            "Not Found",
            "No letter 20261123000001X",
            {},
            id="no-letter",
        ),
        pytest.param("GET", "/nowhere", "reader", 404, "Not Found", None, {}, id="no-route"),
        pytest.param(
            "PUT",
            "/letters",
            "reader",
            405,
            "Method Not Allowed",
            None,
            {"allow": "GET, POST"},
            id="put-letters",
        ),
        pytest.param(
            "DELETE",
            "/letters/20261123000001X",
            "reader",
            405,
            "Method Not Allowed",
            None,
            {"allow": "GET"},
            id="delete-letter",
        ),
        pytest.param(
            "GET",
            "/letters/20261123000001X/actions",
            "reader",
            405,
            "Method Not Allowed",
            None,
            {"allow": "POST"},
            id="get-actions",
        ),
    ],
)
async def test_a_problem_is_titled_by_its_status_and_keeps_its_headers(
    api: Api,
    method: str,
    path: str,
    who: str,
    status: int,
    title: str,
    detail: str | None,
    headers: dict[str, str],
) -> None:
    """RFC 9457 §4.2.1: with type about:blank the title is the status phrase, the specific
    message the detail; RFC 9110 §15.5.6: a 405 names the methods the address takes."""
    body = {"idempotency_key": "k", "text": "路灯坏了"}  # valid where a body is read
    answer = await api.client.request(method, path, headers=bearer(api, who), json=body)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json() == {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    assert {name: answer.headers.get(name) for name in headers} == headers


async def test_a_503_raised_by_a_route_keeps_its_retry_after(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def down(_: object) -> None:
        raise StoreUnavailable("the store did not answer")

    monkeypatch.setattr(api.parts.intake, "store", down)
    body = {"idempotency_key": "k", "text": "小区门口井盖丢了"}
    answer = await api.client.post("/letters", json=body, headers=bearer(api, "partner"))
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "30"
    assert answer.json()["title"] == "Service Unavailable"
    assert answer.json()["detail"] == "The store is unavailable; retry later"


async def test_a_department_signs_and_replies_through_the_api(api: Api) -> None:
    number = letter(api.parts, api.workflow, 1, "路灯坏了")
    act = f"/letters/{number}/actions"

    early = await api.client.post(
        act, json={"action": "reply", "text": "好"}, headers=bearer(api, "city-admin")
    )
    assert early.status_code == 409 and early.json()["title"] == "Conflict"
    assert "assigned" in early.json()["detail"]
    assert (
        await api.client.post(act, json={"action": "sign"}, headers=bearer(api, "city-admin"))
    ).json()["status"] == "signed"
    other = await api.client.post(act, json={"action": "sign"}, headers=bearer(api, "environment"))
    assert other.status_code == 404
    done = await api.client.post(
        act, json={"action": "reply", "text": "已修复"}, headers=bearer(api, "city-admin")
    )
    assert done.json() == {"tracking_number": number, "status": "replied"}


async def test_attachments_download_as_attachments_never_inline(api: Api) -> None:
    number = letter(api.parts, api.workflow, 1, "路灯坏了")
    detail = (await api.client.get(f"/letters/{number}", headers=bearer(api, "reader"))).json()
    url = detail["attachments"][0]["url"].removeprefix("/api/v1")

    answer = await api.client.get(url, headers=bearer(api, "reader"))
    assert answer.status_code == 200 and answer.content.startswith(b"\xff\xd8\xff")
    assert answer.headers["content-disposition"].startswith("attachment;")


async def test_the_openapi_document_is_served(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    assert {"/letters", "/letters/{tracking_number}", "/letters/{tracking_number}/actions"} <= set(
        doc["paths"]
    )
    assert doc["servers"] == [{"url": "/api/v1"}]


async def test_the_openapi_document_is_valid_and_declares_the_bearer_token(api: Api) -> None:
    doc = (await api.client.get("/openapi.json")).json()
    validate(doc)  # raises on a document off the OpenAPI specification
    scheme = doc["components"]["securitySchemes"]["token"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    operations = [(m, p, op) for p, ops in doc["paths"].items() for m, op in ops.items()]
    assert len(operations) == 5
    for method, path, operation in operations:
        assert operation["security"] == [{"token": []}], (method, path)
        # The token is the scheme's, not a header parameter of its own.
        assert all(p["in"] != "header" for p in operation.get("parameters", [])), (method, path)


_ = (itertools, OPERATOR, Actor)


async def test_a_voicemail_reads_awaiting_transcription_until_its_transcript_routes_it(
    api: Api, engine: Engine
) -> None:
    board = Switchboard(api.parts, engine)
    voicemail = board.voicemail(b"\x01" * 64)
    board.route()
    number = board.number(voicemail)
    typed = letter(api.parts, api.workflow, 9, "南溪区的路灯坏了")
    reader = bearer(api, "reader")

    listed = (await api.client.get("/letters", headers=reader)).json()["items"]
    assert [(i["tracking_number"], i["status"], i["awaiting_text"]) for i in listed] == [
        (typed, "assigned", None),
        (number, "received", "transcription"),
    ]
    detail = (await api.client.get(f"/letters/{number}", headers=reader)).json()
    assert (detail["awaiting_text"], detail["text_source"], detail["transcript"]) == (
        "transcription",
        "transcription",
        None,
    )

    board.transcribe(voicemail, "翠屏区人民路的路灯坏了三天，请尽快修理")
    board.route()

    detail = (await api.client.get(f"/letters/{number}", headers=reader)).json()
    assert (detail["status"], detail["department"], detail["awaiting_text"]) == (
        "assigned",
        "city-admin",
        None,
    )
    assert detail["text_source"] == "transcription"
    assert detail["transcript"] == "翠屏区人民路的路灯坏了三天，请尽快修理"


def _cursor(n: int) -> str:
    return base64.urlsafe_b64encode(str(n).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("path", "status"),
    [
        pytest.param("/letters/{n}/attachments/36893488147419103232", 404, id="id-past-2**65"),
        pytest.param("/letters/{n}/attachments/9223372036854775808", 404, id="id-past-int64"),
        pytest.param("/letters/{n}/attachments/0", 404, id="id-zero"),
        pytest.param("/letters/{n}/attachments/-1", 404, id="id-negative"),
        pytest.param(f"/letters?cursor={_cursor(2**65)}", 422, id="cursor-past-int64"),
        pytest.param(f"/letters?cursor={_cursor(-5)}", 422, id="cursor-negative"),
    ],
)
async def test_numbers_no_row_can_have_get_a_problem_not_a_500(
    api: Api, path: str, status: int
) -> None:
    number = letter(api.parts, api.workflow, 1, "路灯坏了")
    answer = await api.client.get(path.format(n=number), headers=bearer(api, "reader"))
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == status


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_the_store_down_every_request_gets_a_503_to_retry_never_a_500(
    database_url: str, engine: Engine, cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    """The token is looked up before anything else: that lookup too must say "retry", in
    the API's problem shape and in Open311's error list."""
    parts = build_intake(cut_engine, tmp_path)
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    sessions = make_sessionmaker(cut_engine)
    with sessions.begin() as session:
        token = auth.create(session, "partner", ["read", "write"], None, now)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: now)
    services = Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: now)
    app = Starlette(
        routes=[
            Mount("/api/v1", app=build_api(services)),
            Mount("/open311/v2", routes=open311.routes(services, SHANGHAI)),
        ]
    )
    headers = {"Authorization": f"Bearer {token}"}
    report = {"api_key": token, "service_code": "complaint", "description": "路灯不亮"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
        new = {"idempotency_key": "k1", "text": "人民路路灯不亮", "citizen": {"name": "王五"}}
        assert (await client.get("/api/v1/letters", headers=headers)).status_code == 200
        proxy.down()
        answers = [
            await client.get("/api/v1/letters", headers=headers),
            await client.post("/api/v1/letters", headers=headers, json=new),
            await client.get("/api/v1/letters/20261123000001X", headers=headers),
        ]
        georeport = [
            await client.get(f"/open311/v2/requests.json?api_key={token}"),
            await client.post("/open311/v2/requests.json", data=report),
        ]
        proxy.up()
        back = await client.get("/api/v1/letters", headers=headers)
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["retry-after"] == "30"
    for answer in georeport:
        assert answer.status_code == 503, answer.text
        assert answer.json() == [
            {"code": 503, "description": "the store is unavailable, retry later"}
        ]
    assert back.status_code == 200
