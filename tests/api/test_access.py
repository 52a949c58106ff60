"""Who a department token is: the letters assigned to it now (not one it returned, not one
moved on to another department), and of a hidden citizen (report, anonymous, confidential)
neither the details nor a file that identifies them (a voicemail, a fax page). Both stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from starlette.routing import Mount

from gateway.contract.config import ApiConfig
from gateway.contract.contact import IncomingContact
from gateway.core.workflow import DEPARTMENT, OPERATOR, Actor, Workflow
from gateway.frontends.api import auth, open311
from gateway.frontends.api.app import Services, build_api
from store.models import Attachment, Letter
from tests.conftest import Parts, make_contact
from tests.gateway.test_workflow import MONDAY
from tests.support.canaries import REPORTER
from tests.support.hiding import CASES, HIDING, VOICE, faxed, voiced
from tests.support.routing import Switchboard

OPERATOR_ZHANG = Actor(OPERATOR, "zhang")


@dataclass
class Api:
    client: httpx.AsyncClient
    parts: Parts
    workflow: Workflow
    tokens: dict[str, str]

    def letter(self, contact: IncomingContact) -> tuple[str, list[int]]:
        """Stored and routed (to city-admin); its number and its files' ids."""
        number = self.parts.intake.accept_sync(contact).tracking_number
        assert number is not None
        with self.parts.intake.sessions.begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            self.workflow.process(session, letter)
            assert letter.status == "assigned", letter.status
            files = select(Attachment.id).where(Attachment.letter_id == letter.id)
            return number, list(session.scalars(files.order_by(Attachment.id)))

    def act(self, number: str, verb: str, *args: Any) -> None:
        with self.parts.intake.sessions.begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            getattr(self.workflow, verb)(session, letter, *args)

    async def get(self, who: str, url: str) -> httpx.Response:
        if url.startswith("/open311/"):
            return await self.client.get(url, params={"api_key": self.tokens[who]})
        return await self.client.get(url, headers={"Authorization": f"Bearer {self.tokens[who]}"})

    async def sees(self, who: str, number: str) -> bool:
        """Whether this token finds the letter anywhere it could: listed, opened, Open311."""
        listed = number in (await self.get(who, "/api/v1/letters")).text
        opened = (await self.get(who, f"/api/v1/letters/{number}")).status_code
        civic = await self.get(who, f"/open311/v2/requests/{number}.json")
        assert opened in (200, 404) and civic.status_code in (200, 404)
        assert listed == (opened == 200) == (civic.status_code == 200), (listed, opened, civic)
        return listed


@pytest.fixture
async def api(engine: Engine, parts: Parts) -> AsyncIterator[Api]:
    board = Switchboard(parts, engine)
    clock, workflow, sessions = board.clock, board.workflow, board.sessions
    with sessions.begin() as session:
        tokens = {
            # pii: a department may call its own complainant back, never learn a reporter.
            "city-admin": auth.create(session, "ca", ["read", "act", "pii"], "city-admin", MONDAY),
            "environment": auth.create(session, "env", ["read", "act"], "environment", MONDAY),
            "auditor": auth.create(session, "auditor", ["read", "pii"], None, MONDAY),
        }
    services = Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, clock)
    app = Starlette(
        routes=[
            Mount("/api/v1", app=build_api(services)),
            Mount("/open311/v2", routes=open311.routes(services)),
        ]
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://h/"
    ) as client:
        yield Api(client, parts, workflow, tokens)


@pytest.mark.parametrize("why", CASES)
async def test_a_hidden_citizens_voicemail_never_reaches_their_department(
    api: Api, why: str
) -> None:
    number, [photo, voicemail] = api.letter(voiced(1, why))
    hidden = why in HIDING

    seen = (await api.get("city-admin", f"/api/v1/letters/{number}")).json()
    assert (seen["citizen"] is None) == hidden, seen["citizen"]
    assert [a["id"] for a in seen["attachments"]] == ([photo] if hidden else [photo, voicemail])
    heard = await api.get("city-admin", f"/api/v1/letters/{number}/attachments/{voicemail}")
    if hidden:
        assert heard.status_code == 404 and REPORTER.phone not in heard.text
    else:  # a complainant's own department hears what they said
        assert heard.status_code == 200 and heard.content == VOICE.data
    shown = await api.get("city-admin", f"/api/v1/letters/{number}/attachments/{photo}")
    assert shown.status_code == 200  # the matter itself always reaches its department
    # The hotline centre's auditor hears every voicemail.
    audited = await api.get("auditor", f"/api/v1/letters/{number}/attachments/{voicemail}")
    assert audited.status_code == 200 and audited.content == VOICE.data


@pytest.mark.parametrize("why", ["confidential", "complaint"])
async def test_a_confidential_faxs_pages_never_reach_its_department(api: Api, why: str) -> None:
    number, [page] = api.letter(faxed(1, why))
    seen = (await api.get("city-admin", f"/api/v1/letters/{number}")).json()
    answer = await api.get("city-admin", f"/api/v1/letters/{number}/attachments/{page}")
    if why == "confidential":
        assert seen["attachments"] == [] and answer.status_code == 404
    else:
        assert [a["id"] for a in seen["attachments"]] == [page] and answer.status_code == 200


async def test_a_returned_letter_leaves_the_department_and_a_moved_one_follows_it(
    api: Api,
) -> None:
    number, [photo, _] = api.letter(voiced(1, "complaint"))
    other, _ = api.letter(make_contact(2, text="南岸街的路灯坏了。"))  # stays with city-admin
    assert await api.sees("city-admin", number) and not await api.sees("environment", number)

    returned = await api.client.post(
        f"/api/v1/letters/{number}/actions",
        json={"action": "return", "reason": "不属于本单位职责"},
        headers={"Authorization": f"Bearer {api.tokens['city-admin']}"},
    )
    assert returned.status_code == 200 and returned.json()["status"] == "triage"
    assert not await api.sees("city-admin", number)
    file = await api.get("city-admin", f"/api/v1/letters/{number}/attachments/{photo}")
    assert file.status_code == 404

    # 退件 then 交办 to environment: the letter moved; city-admin still does not see it.
    api.act(number, "assign", ["environment"], "assign", "time_limited", OPERATOR_ZHANG)
    assert await api.sees("environment", number) and not await api.sees("city-admin", number)
    assert await api.sees("city-admin", other)

    # Back to city-admin after environment returns it too: its own again.
    api.act(number, "return_letter", "不属于本单位职责", Actor(DEPARTMENT, "wang", "environment"))
    api.act(number, "assign", ["city-admin"], "assign", "time_limited", OPERATOR_ZHANG)
    assert await api.sees("city-admin", number) and not await api.sees("environment", number)
