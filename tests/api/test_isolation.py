"""Property: whatever the assignments, a department token sees exactly its own letters."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from gateway.contract.config import ApiConfig, DeadlinesConfig
from gateway.contract.contact import Citizen
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import OPERATOR, Actor, Workflow
from gateway.frontends.api import auth
from gateway.frontends.api.app import Services, build_api
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII, SHANGHAI, build_intake, make_contact
from tests.gateway.test_workflow import ROUTING

DEPARTMENTS = ["city-admin", "environment", "housing"]
NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


@settings(
    max_examples=12, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(
        st.lists(st.sampled_from(DEPARTMENTS), max_size=3, unique=True), min_size=1, max_size=6
    )
)
def test_a_department_token_sees_exactly_the_letters_assigned_to_it(
    assignments: list[list[str]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'h.db'}", pii=PII)
        upgrade(engine)
        parts = build_intake(engine, Path(tmp))
        workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: NOW)
        sessions = make_sessionmaker(engine)
        owners: dict[str, set[str]] = {d: set() for d in DEPARTMENTS}
        with sessions.begin() as session:
            workflow.sync_departments(session)
            tokens = {d: auth.create(session, d, ["read"], d, NOW) for d in DEPARTMENTS}
        for n, departments in enumerate(assignments):
            number = parts.intake.accept_sync(
                make_contact(n, text=f"第{n}封来信", citizen=Citizen(phone=f"+8613800{n:06d}"))
            ).tracking_number
            assert number is not None
            if departments:
                with sessions.begin() as session:
                    letter = session.scalars(
                        select(Letter).where(Letter.tracking_number == number)
                    ).one()
                    workflow.assign(
                        session,
                        letter,
                        departments,
                        "assign",
                        "joint" if len(departments) > 1 else "time_limited",
                        Actor(OPERATOR, "t"),
                    )
            for d in departments:
                owners[d].add(number)
        every = set().union(*owners.values())
        api = build_api(
            Services(
                ApiConfig(page_size=500), sessions, parts.files, parts.intake, workflow, lambda: NOW
            )
        )

        async def check() -> None:
            transport = httpx.ASGITransport(app=api)
            async with httpx.AsyncClient(transport=transport, base_url="http://h/") as client:
                for department, token in tokens.items():
                    headers = {"Authorization": f"Bearer {token}"}
                    page = (await client.get("/letters", headers=headers)).json()
                    assert {i["tracking_number"] for i in page["items"]} == owners[department]
                    for number in every - owners[department]:
                        answer = await client.get(f"/letters/{number}", headers=headers)
                        assert answer.status_code == 404

        asyncio.run(check())
        engine.dispose()
