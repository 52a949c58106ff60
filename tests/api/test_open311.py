"""An Open311 client's view: GeoReport v2's documented example requests, JSON and XML."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import httpx
import pytest
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.contract.config import ApiConfig, DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.frontends.api import auth, open311
from gateway.frontends.api.app import Services
from store.db import make_sessionmaker
from tests.conftest import SHANGHAI, Parts, make_contact
from tests.gateway.test_workflow import ROUTING


def open311_app(parts: Parts, engine: Engine) -> tuple[Starlette, str]:
    """The GeoReport routes at /open311/v2 on their own, and a read and write api_key."""
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: now)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
        key = auth.create(session, "civic-app", ["read", "write"], None, now)
    services = Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: now)
    app = Starlette(routes=[Mount("/open311/v2", routes=open311.routes(services, SHANGHAI))])
    return app, key


@pytest.fixture
async def client(parts: Parts, engine: Engine) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    app, key = open311_app(parts, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h/open311/v2") as c:
        yield c, key


async def test_the_service_list_names_the_seven_categories(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, _ = client
    services = (await c.get("/services.json")).json()
    assert [s["service_code"] for s in services][:7] == [
        "complaint",
        "help",
        "suggestion",
        "inquiry",
        "report",
        "opinion",
        "other",
    ]
    xml = ET.fromstring((await c.get("/services.xml")).content)
    assert xml.tag == "services" and xml.find("service/service_name").text == "投诉"  # type: ignore[union-attr]


async def test_a_request_posted_as_the_spec_shows_becomes_a_letter_one_can_follow(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    form = {
        "api_key": key,
        "service_code": "complaint",
        "description": "路灯坏了三天",
        "address_string": "翠屏区人民路5号",
        "email": "a@example.cn",
        "first_name": "三",
        "last_name": "张",
        "phone": "13800138000",
        "device_id": "phone-1",
    }
    posted = await c.post("/requests.json", data=form)
    [created] = posted.json()
    number = created["service_request_id"]

    [request] = (await c.get(f"/requests/{number}.json", params={"api_key": key})).json()
    assert request["status"] == "open" and request["service_code"] == "complaint"
    assert "13800138000" not in str(request)
    listed = (await c.get("/requests.json", params={"api_key": key, "status": "open"})).json()
    assert [r["service_request_id"] for r in listed] == [number]
    xml = ET.fromstring((await c.get(f"/requests/{number}.xml", params={"api_key": key})).content)
    assert xml.find("request/service_request_id").text == number  # type: ignore[union-attr]
    again = (await c.post("/requests.json", data=form)).json()
    assert again[0]["service_request_id"] == number  # a resubmission is the same letter


async def test_two_citizens_reporting_the_same_words_are_two_letters(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    report = {"api_key": key, "service_code": "complaint", "description": "路灯坏了"}
    first = (await c.post("/requests.json", data={**report, "phone": "13800138000"})).json()
    second = (await c.post("/requests.json", data={**report, "phone": "13900139000"})).json()
    third = (await c.post("/requests.json", data={**report, "device_id": "phone-3"})).json()
    numbers = {r[0]["service_request_id"] for r in (first, second, third)}
    assert len(numbers) == 3
    # A client's retry of the very same body, with or without a device, is still one letter.
    again = (await c.post("/requests.json", data={**report, "phone": "13900139000"})).json()
    assert again == second
    assert (await c.post("/requests.json", data={**report, "device_id": "phone-3"})).json() == third
    listed = (await c.get("/requests.json", params={"api_key": key})).json()
    assert len(listed) == 3


@pytest.mark.parametrize(
    ("service_code", "shown"), [("complaint", True), ("report", False)], ids=["open", "hidden"]
)
async def test_an_open_request_shows_its_scrubbed_description_and_where_it_is(
    client: tuple[httpx.AsyncClient, str], service_code: str, shown: bool
) -> None:
    c, key = client
    form = {
        "api_key": key,
        "service_code": service_code,
        "description": "翠屏路路灯坏了，电话13800138000",
        "phone": "13800138000",
        "lat": "28.765432",
        "long": "104.632109",
    }
    [created] = (await c.post("/requests.json", data=form)).json()
    number = created["service_request_id"]
    [request] = (await c.get(f"/requests/{number}.json", params={"api_key": key})).json()
    assert request["status"] == "open"
    assert "翠屏路路灯坏了" in request["description"]
    assert "13800138000" not in request["description"]
    if shown:
        assert (request["lat"], request["long"]) == (28.765432, 104.632109)
    else:  # a reporter's place could name them, as their address would
        assert request["lat"] is None and request["long"] is None


async def test_a_location_out_of_this_world_is_a_400(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    form = {"api_key": key, "service_code": "help", "description": "x", "lat": "91", "long": "0"}
    answer = await c.post("/requests.json", data=form)
    assert answer.status_code == 400 and answer.json()[0]["code"] == 400


async def test_reads_need_no_api_key_and_show_only_the_public_projection(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    form = {
        "api_key": key,
        "service_code": "help",
        "description": "井盖丢了",
        "phone": "13800138000",
    }
    [created] = (await c.post("/requests.json", data=form)).json()
    number = created["service_request_id"]
    services = await c.get("/services.json")
    assert services.status_code == 200
    assert services.headers["content-type"] == "application/json; charset=utf-8"
    [one] = (await c.get(f"/requests/{number}.json")).json()
    listed = (await c.get("/requests.json")).json()
    assert listed == [one] and one["description"] == "井盖丢了"
    assert "13800138000" not in str(listed)
    assert (await c.get(f"/tokens/{number}.json")).json() == [
        {"service_request_id": number, "token": number}
    ]
    assert (await c.get("/requests.json", params={"api_key": "made-up"})).status_code == 403


async def test_the_public_reads_no_words_of_a_letter_the_citizen_did_not_make_public(
    client: tuple[httpx.AsyncClient, str], parts: Parts
) -> None:
    c, key = client
    sms = parts.intake.store(make_contact(1, received_at=datetime(2026, 11, 23, tzinfo=UTC)))
    path = f"/requests/{sms.tracking_number}.json"
    [public] = (await c.get(path)).json()
    [integrator] = (await c.get(path, params={"api_key": key})).json()
    assert public["description"] is None
    assert integrator["description"].startswith("翠屏区人民路1号门口的路灯")


async def test_request_lists_take_comma_lists_and_the_last_90_days_by_default(
    client: tuple[httpx.AsyncClient, str], parts: Parts
) -> None:
    c, key = client
    old = parts.intake.store(make_contact(1, received_at=datetime(2026, 8, 1, tzinfo=UTC)))
    numbers = []
    for words in ("路灯坏了", "垃圾没人收"):
        form = {"api_key": key, "service_code": "complaint", "description": words}
        numbers.append((await c.post("/requests.json", data=form)).json()[0]["service_request_id"])

    def ids(answer: httpx.Response) -> list[str]:
        return sorted(r["service_request_id"] for r in answer.json())

    assert ids(await c.get("/requests.json")) == sorted(numbers)  # not the old one
    assert ids(await c.get("/requests.json", params={"status": "open,closed"})) == sorted(numbers)
    assert ids(await c.get("/requests.json", params={"status": "closed"})) == []
    both = ",".join([numbers[0], old.tracking_number])
    assert ids(await c.get("/requests.json", params={"service_request_id": both})) == sorted(
        [numbers[0], old.tracking_number]
    )
    since = {"start_date": "2026-07-01", "service_code": "complaint,help"}
    assert old.tracking_number not in ids(await c.get("/requests.json", params=since))
    since["service_code"] = "other,complaint"  # the SMS letter is not classified yet
    assert old.tracking_number in ids(await c.get("/requests.json", params=since))


async def test_numbers_and_dates_are_numbers_dates_or_null_never_empty_strings(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = client
    form = {"api_key": key, "service_code": "help", "description": "井盖丢了"}
    [created] = (await c.post("/requests.json", data=form)).json()
    assert created["account_id"] is None
    [request] = (await c.get(f"/requests/{created['service_request_id']}.json")).json()
    for field in ("expected_datetime", "lat", "long", "zipcode", "address_id", "media_url"):
        assert request[field] != "", field
    assert request["lat"] is None and request["zipcode"] is None


async def test_a_service_definition_in_xml_has_the_specs_shape(
    client: tuple[httpx.AsyncClient, str],
) -> None:
    c, _ = client
    xml = ET.fromstring((await c.get("/services/complaint.xml")).content)
    assert xml.tag == "service_definition"
    assert [child.tag for child in xml] == ["service_code", "attributes"]
    assert xml.findtext("service_code") == "complaint" and len(xml.find("attributes")) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("method", "path", "data", "status"),
    [
        ("POST", "/requests.json", {"service_code": "complaint", "description": "x"}, 403),
        ("POST", "/requests.json", {"service_code": "nope", "description": "x"}, 404),
        ("POST", "/requests.json", {"description": "x"}, 400),
        ("GET", "/requests.json", {"service_code": "complaint,nope"}, 404),
        ("GET", "/requests.json", {"status": "pending"}, 400),
        ("GET", "/tokens/ANYTHING.json", {}, 404),
        ("POST", "/requests.xml", {"service_code": "help", "description": " "}, 400),
        ("GET", "/requests.json", {"start_date": "yesterday"}, 400),
        ("GET", "/services/nope.json", {}, 404),
    ],
    ids=[
        "no-api-key",
        "unknown-service",
        "no-service-code",
        "unknown-service-listed",
        "unknown-status",
        "no-such-token",
        "empty-description-xml",
        "bad-date",
        "no-service",
    ],
)
async def test_errors_come_in_the_specs_error_shape(
    client: tuple[httpx.AsyncClient, str],
    method: str,
    path: str,
    data: dict[str, str],
    status: int,
) -> None:
    c, key = client
    if status != 403:
        data = {**data, "api_key": key}
    answer = await (c.post(path, data=data) if method == "POST" else c.get(path, params=data))
    assert answer.status_code == status
    if path.endswith(".xml"):
        assert ET.fromstring(answer.content).find("error/description") is not None
    else:
        assert answer.json()[0]["code"] == status


# The fixture's letters arrive at 2026-11-23 02:00 UTC, 10:00 in the hotline's zone.
@pytest.mark.parametrize(
    ("query", "found"),
    [
        pytest.param({"start_date": "2026-11-23"}, True, id="start-that-local-day"),
        pytest.param({"start_date": "2026-11-24"}, False, id="start-the-next-day"),
        pytest.param({"end_date": "2026-11-23"}, True, id="end-that-local-day-inclusive"),
        pytest.param({"end_date": "2026-11-22"}, False, id="end-the-day-before"),
        pytest.param({"start_date": "2026-11"}, True, id="start-that-month"),
        pytest.param({"start_date": "2026-11-23T10:00:00"}, True, id="no-zone-is-local-time"),
        pytest.param({"start_date": "2026-11-23T10:00:01"}, False, id="no-zone-a-second-late"),
        pytest.param({"end_date": "2026-11-23T09:59:59"}, False, id="no-zone-end-too-early"),
        pytest.param({"start_date": "2026-11-23T02:00:00Z"}, True, id="utc"),
        pytest.param({"start_date": "2026-11-23T10:00:00+08:00"}, True, id="offset"),
    ],
)
async def test_start_and_end_dates_are_w3c_dates_in_the_hotlines_zone(
    client: tuple[httpx.AsyncClient, str], query: dict[str, str], found: bool
) -> None:
    c, key = client
    form = {"api_key": key, "service_code": "help", "description": "井盖丢了"}
    [created] = (await c.post("/requests.json", data=form)).json()
    answer = await c.get("/requests.json", params={"api_key": key, **query})
    assert answer.status_code == 200
    listed = [r["service_request_id"] for r in answer.json()]
    assert listed == ([created["service_request_id"]] if found else [])


@pytest.mark.parametrize(
    "query",
    [
        pytest.param({"start_date": "0001-01-01T00:00:00+14:00"}, id="before-year-1-in-utc"),
        pytest.param({"end_date": "9999-12-31T23:59:59-14:00"}, id="after-year-9999-in-utc"),
        pytest.param({"start_date": "2026-13-01"}, id="no-such-month"),
        pytest.param({"end_date": "2026-02-30"}, id="no-such-day"),
        pytest.param({"end_date": "9999-12-31"}, id="no-day-after"),
    ],
)
async def test_dates_no_letter_can_have_get_a_400_in_the_specs_shape(
    client: tuple[httpx.AsyncClient, str], query: dict[str, str]
) -> None:
    c, key = client
    answer = await c.get("/requests.json", params={"api_key": key, **query})
    assert answer.status_code == 400
    [error] = answer.json()
    assert error["code"] == 400 and next(iter(query)) in error["description"]
