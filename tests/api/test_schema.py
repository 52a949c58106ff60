"""schemathesis against the served OpenAPI document: no 5xx, no response off its schema."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from sqlalchemy import select

from gateway.contract.config import ApiConfig, DeadlinesConfig
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import Workflow
from gateway.frontends.api import auth
from gateway.frontends.api.app import Services, build_api
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII, SHANGHAI, build_intake, make_contact
from tests.gateway.test_workflow import ROUTING

TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("api")
    engine = make_engine(f"sqlite:///{Path(root) / 'h.db'}", pii=PII)
    upgrade(engine)
    now = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), lambda: now)
    parts = build_intake(engine, Path(root))
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
        TOKEN["all"] = auth.create(session, "all", ["read", "write", "act", "pii"], None, now)
    for n in range(3):
        parts.intake.accept_sync(make_contact(n, text=f"第{n}盏路灯坏了"))
    with sessions.begin() as session:
        for letter in session.scalars(select(Letter)):
            workflow.process(session, letter)
    app = build_api(
        Services(ApiConfig(), sessions, parts.files, parts.intake, workflow, lambda: now)
    )
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    engine.dispose()


def test_the_api_keeps_to_its_openapi_document(api_schema: Any) -> None:
    # Driven through hypothesis directly: schemathesis's pytest plugin does not load
    # under this pytest.
    checked = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN['all']}"})

        check()
        checked += 1
    assert checked == 5  # every operation of the document was exercised
