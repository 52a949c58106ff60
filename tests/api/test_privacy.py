"""A department token against every route: another department's letter is absent, and no
canary PII (a reporter's or a complainant's name, phone, e-mail, ID number) ever reaches
it — not in the citizen, not in the letter's own words, not in a file name."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode

import httpx
import pytest
from fastapi.routing import APIRoute
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount, Route

from gateway.contract.config import ApiConfig
from gateway.core.workflow import DEPARTMENT, Actor
from gateway.frontends.api import auth, open311
from gateway.frontends.api.app import Services, build_api
from store.db import make_sessionmaker
from store.models import Attachment, Event, Letter
from tests.support.canaries import (
    COMPLAINANT,
    NOW,
    REPORTER,
    World,
    byte_leaks,
    leaks,
    plant,
)

OWNER = {"report": "environment", "complaint": "city-admin"}
OTHER = {"environment": "complaint", "city-admin": "report"}


@dataclass
class Site:
    world: World
    client: httpx.AsyncClient
    api: Any
    open311: list[Any]
    tokens: dict[str, str]
    letters: dict[str, str]  # report/complaint -> tracking number
    files: dict[str, list[int]]  # report/complaint -> its attachments' ids

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def site(engine: Engine, tmp_path: Path) -> AsyncIterator[Site]:
    sessions = make_sessionmaker(engine)
    world = plant(sessions, tmp_path)
    with sessions.begin() as session:
        tokens = {
            "city-admin": auth.create(session, "ca", ["read", "act"], "city-admin", NOW),
            "environment": auth.create(session, "env", ["read", "act"], "environment", NOW),
            # pii lets a department call a complainant back, never learn who reported.
            "environment-pii": auth.create(session, "env-pii", ["read", "pii"], "environment", NOW),
            "reader": auth.create(session, "reader", ["read"], None, NOW),
            "auditor": auth.create(session, "auditor", ["read", "pii"], None, NOW),
        }
        # The complaint is answered in public: Open311 then shows its text and the reply.
        complaint = world.letter(session, world.complaint)
        actor = Actor(DEPARTMENT, "li", "city-admin")
        world.workflow.sign(session, complaint, actor)
        reply = f"已电话联系{COMPLAINANT.name}（{COMPLAINANT.phone}），路灯已修复。"
        world.workflow.reply(session, complaint, reply, actor, public=True)
        files = {
            kind: list(
                session.scalars(
                    select(Attachment.id)
                    .join(Letter)
                    .where(Letter.tracking_number == number)
                    .order_by(Attachment.id)
                )
            )
            for kind, number in (("report", world.report), ("complaint", world.complaint))
        }
    services = Services(
        ApiConfig(), sessions, world.files, world.intake, world.workflow, world.clock
    )
    api, civic = build_api(services), open311.routes(services)
    app = Starlette(routes=[Mount("/api/v1", app=api), Mount("/open311/v2", routes=civic)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
        yield Site(
            world,
            client,
            api,
            civic,
            tokens,
            {"report": world.report, "complaint": world.complaint},
            files,
        )


# -- every route, another department's letter --------------------------------------------


class Probe(NamedTuple):
    """A request a department token makes about another department's letter, and what
    must come back: "absent" 403/404; "empty" an empty list; "unlisted" a 200 that never
    names the letter; "refused" 403 (a scope the token lacks); "echo" a 404 naming only
    what was sent; "schema" no letter data at all."""

    method: str
    url: str
    expect: str
    body: dict[str, Any] | None = None


# Each REST route and what a department token asks of it about another department's letter.
# A route added without a line here fails the test below: decide what it shows first.
REST: dict[tuple[str, str], list[Probe]] = {
    ("GET", "/letters"): [
        Probe("GET", "/api/v1/letters", "unlisted"),
        Probe("GET", "/api/v1/letters?department={other_department}", "unlisted"),
        Probe("GET", "/api/v1/letters?category=report", "unlisted"),
    ],
    ("GET", "/letters/{tracking_number}"): [Probe("GET", "/api/v1/letters/{number}", "absent")],
    ("GET", "/letters/{tracking_number}/attachments/{attachment_id}"): [
        Probe("GET", "/api/v1/letters/{number}/attachments/{attachment}", "absent"),
    ],
    ("POST", "/letters/{tracking_number}/actions"): [
        Probe("POST", "/api/v1/letters/{number}/actions", "absent", {"action": "sign"}),
        Probe(
            "POST",
            "/api/v1/letters/{number}/actions",
            "absent",
            {"action": "return", "reason": "不归我"},
        ),
    ],
    ("POST", "/letters"): [
        Probe("POST", "/api/v1/letters", "refused", {"idempotency_key": "k", "text": "x"})
    ],
    ("GET", "/openapi.json"): [Probe("GET", "/api/v1/openapi.json", "schema")],
}
# Open311 is one route dispatching on the resource; these are all of its resources.
OPEN311 = [
    Probe("GET", "/open311/v2/requests/{number}.json", "absent"),
    Probe("GET", "/open311/v2/requests/{number}.xml", "absent"),
    Probe("GET", "/open311/v2/requests.json?service_request_id={number}", "empty"),
    Probe("GET", "/open311/v2/requests.json", "unlisted"),
    Probe("GET", "/open311/v2/requests.xml", "unlisted"),
    Probe("GET", "/open311/v2/requests.json?service_code={kind}", "unlisted"),
    Probe("GET", "/open311/v2/tokens/{number}.json", "echo"),
    Probe("GET", "/open311/v2/services.json", "schema"),
    Probe("GET", "/open311/v2/services/report.json", "schema"),
    Probe(
        "POST",
        "/open311/v2/requests.json",
        "refused",
        {"service_code": "complaint", "description": "路灯坏了"},
    ),
]


def rest_routes(api: Any) -> set[tuple[str, str]]:
    found = set()
    for route in api.routes:
        assert isinstance(route, APIRoute | Route), f"unexpected route type {route!r}"
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


async def test_every_route_refuses_another_departments_letter(site: Site) -> None:
    assert rest_routes(site.api) == set(REST), "a route without an isolation case: add one"
    assert [(r.path, sorted(r.methods or ())) for r in site.open311] == [
        ("/{path:path}", ["GET", "HEAD", "POST"])
    ], "Open311 grew a route: add its resources to OPEN311"
    with site.world.sessions() as session:
        before = {n: site.world.letter(session, n).status for n in site.letters.values()}
    probes = [p for cases in REST.values() for p in cases] + OPEN311
    for department, kind in OTHER.items():
        number = site.letters[kind]
        values = {
            "number": number,
            "kind": kind,
            "attachment": site.files[kind][-1],
            "other_department": OWNER[kind],
        }
        for probe in probes:
            url = probe.url.format(**values)
            answer = await _ask(site, department, probe.method, url, probe.body)
            where = f"{department} {probe.method} {url}"
            if probe.expect == "absent":
                assert answer.status_code in (403, 404), where
            elif probe.expect == "refused":
                assert answer.status_code == 403, where
            elif probe.expect == "echo":  # GeoReport v2: a token nobody has is a 404
                assert answer.status_code == 404, where
            else:
                assert answer.status_code == 200, where
            if probe.expect == "empty":
                assert json.loads(answer.content) == [], where
            if probe.expect in ("unlisted", "schema"):
                assert number not in answer.text, where
            if probe.expect == "echo":  # the same as for a number that does not exist
                made_up = url.replace(number, "202601010000019")
                again = await _ask(site, department, probe.method, made_up, probe.body)
                assert answer.text.replace(number, "") == again.text.replace("202601010000019", "")
            assert leaks(answer.text) == [], where
    with site.world.sessions() as session:
        assert {n: site.world.letter(session, n).status for n in site.letters.values()} == before


async def _ask(
    site: Site, who: str, method: str, url: str, body: dict[str, Any] | None
) -> httpx.Response:
    if url.startswith("/open311/"):
        key = {"api_key": site.tokens[who]}
        if method == "POST":
            return await site.client.post(url, data={**(body or {}), **key})
        separator = "&" if "?" in url else "?"
        return await site.client.get(f"{url}{separator}{urlencode(key)}")
    if method == "POST":
        return await site.client.post(url, json=body, headers=site.bearer(who))
    return await site.client.get(url, headers=site.bearer(who))


# -- canaries in what departments and integrators read ------------------------------------


async def test_the_canaries_are_planted_and_an_auditor_sees_them(
    site: Site, engine: Engine
) -> None:
    with engine.connect() as conn:
        stored = conn.execute(
            select(Letter.text).where(Letter.tracking_number == site.letters["report"])
        ).scalar_one()
    assert REPORTER.id_number in stored and REPORTER.dashed in stored
    seen = await site.client.get(
        f"/api/v1/letters/{site.letters['report']}", headers=site.bearer("auditor")
    )
    assert seen.json()["citizen"]["phone"] == "+86" + REPORTER.phone
    assert {REPORTER.name, REPORTER.id_number, REPORTER.phone} <= set(leaks(seen.text))


@pytest.mark.parametrize(
    ("who", "department"),
    [
        ("city-admin", "city-admin"),
        ("environment", "environment"),
        ("environment-pii", "environment"),
        ("reader", None),
    ],
)
async def test_no_canary_reaches_a_department_or_a_reader_without_pii(
    site: Site, who: str, department: str | None
) -> None:
    own = [kind for kind, owner in OWNER.items() if department in (None, owner)]
    urls = ["/api/v1/letters", "/open311/v2/requests.json", "/open311/v2/requests.xml"]
    files = []
    for kind in own:
        number = site.letters[kind]
        urls += [
            f"/api/v1/letters/{number}",
            f"/open311/v2/requests/{number}.json",
            f"/open311/v2/requests/{number}.xml",
        ]
        files += [f"/api/v1/letters/{number}/attachments/{n}" for n in site.files[kind]]
    for url in urls:
        answer = await _ask(site, who, "GET", url, None)
        assert answer.status_code == 200, url
        assert leaks(answer.text) == [], url
    withheld = []
    for url in files:
        answer = await _ask(site, who, "GET", url, None)
        if answer.status_code == 404:
            withheld.append(url)
            continue
        assert answer.status_code == 200, url
        assert leaks(answer.headers["content-disposition"]) == [], url
        assert byte_leaks(answer.content) == [], url
    # The reporter's voicemail alone: a photo of the matter still reaches its department.
    voicemail = f"/api/v1/letters/{site.letters['report']}/attachments/{site.files['report'][1]}"
    assert withheld == ([voicemail] if "report" in own else [])


async def test_a_reporters_voicemail_reaches_only_a_reader_with_pii_and_is_audited(
    site: Site,
) -> None:
    number, [photo, voicemail] = site.letters["report"], site.files["report"]
    listed = await site.client.get(f"/api/v1/letters/{number}", headers=site.bearer("environment"))
    assert [a["id"] for a in listed.json()["attachments"]] == [photo]
    url = f"/api/v1/letters/{number}/attachments/{voicemail}"
    assert (await site.client.get(url, headers=site.bearer("environment-pii"))).status_code == 404
    heard = await site.client.get(url, headers=site.bearer("auditor"))
    assert heard.status_code == 200 and REPORTER.phone in byte_leaks(heard.content)
    with site.world.sessions() as session:
        audit = session.scalars(select(Event).where(Event.kind == "pii_read")).all()
    assert [(e.actor, e.detail.get("attachment")) for e in audit] == [("api:auditor", voicemail)]


@pytest.mark.parametrize("who", ["environment", "environment-pii", "reader"])
async def test_a_reporter_is_absent_and_their_words_scrubbed(site: Site, who: str) -> None:
    seen = (
        await site.client.get(f"/api/v1/letters/{site.letters['report']}", headers=site.bearer(who))
    ).json()

    assert seen["citizen"] is None
    assert seen["text"].startswith("我是***，身份证号***，电话***，邮箱***，住***。举报")
    assert seen["transcript"] == "来电人***，手机***，要求保密。"
    assert seen["attachments"][0]["filename"] == "举报人***.jpg"
    [failed] = [e for e in seen["events"] if e["kind"] == "notify_failed"]
    assert failed["detail"] == {"error": "provider said: the 'To' number *** is not reachable"}


async def test_a_complainant_is_masked_for_their_department(site: Site) -> None:
    number = site.letters["complaint"]
    seen = (
        await site.client.get(f"/api/v1/letters/{number}", headers=site.bearer("city-admin"))
    ).json()

    assert seen["citizen"] == {
        "name": "司***",
        "phone": "136****4321",
        "email": "c***@example.net",
        "address": None,
    }
    assert seen["subject"] == "投诉路灯不亮 请回电***"
    assert "联系人***，电话***，身份证***，邮箱***。" in seen["text"]
    [request] = (
        await site.client.get(
            f"/open311/v2/requests/{number}.json", params={"api_key": site.tokens["city-admin"]}
        )
    ).json()
    assert request["status_notes"] == "已电话联系***（***），路灯已修复。"
    assert "联系人***" in request["description"]


async def test_a_department_with_pii_calls_its_complainant_back_and_it_is_audited(
    site: Site,
) -> None:
    """The pii scope still shows a department its own complainant (not a reporter)."""
    with site.world.sessions.begin() as session:
        token = auth.create(session, "ca-pii", ["read", "pii"], "city-admin", NOW)
    number = site.letters["complaint"]
    seen = await site.client.get(
        f"/api/v1/letters/{number}", headers={"Authorization": f"Bearer {token}"}
    )
    assert seen.json()["citizen"]["phone"] == "+86" + COMPLAINANT.phone
    assert COMPLAINANT.id_number in seen.json()["text"]
    with site.world.sessions() as session:
        audit = session.scalars(select(Event).where(Event.kind == "pii_read")).all()
    assert [e.actor for e in audit] == ["api:ca-pii"]
