"""The console over real HTTP requests (ASGI): real cookies, real forms, a real database."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.applications import Starlette

from gateway.contract.config import Config, DeadlinesConfig
from gateway.contract.contact import IncomingContact
from gateway.core.deadlines import WorkCalendar
from gateway.core.workflow import OPERATOR, Actor, Workflow
from gateway.frontends.console.app import Console
from store.db import make_sessionmaker
from store.models import ConsoleUser, Department, Letter
from tests.conftest import SHANGHAI, Parts, make_contact
from tests.gateway.test_workflow import MONDAY, ROUTING, Clock

PASSWORD = "correct horse battery"
# username -> (role, department)
STAFF = {
    "zhang": ("operator", None),
    "du": ("supervisor", None),
    "ling": ("leader", None),
    "li": ("department", "city-admin"),
    "wang": ("department", "environment"),
    "root": ("admin", None),
}


@cache
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


@dataclass
class Desk:
    """The console app with every kind of staff member, each with their own browser."""

    app: Starlette
    engine: Engine
    clock: Clock
    workflow: Workflow
    parts: Parts
    operator = Actor(OPERATOR, "zhang")

    def browser(self) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=self.app, client=("198.51.100.7", 50000))
        return httpx.AsyncClient(transport=transport, base_url="http://hotline.test")

    async def signed_in(self, username: str) -> Browser:
        browser = Browser(self.browser())
        page = await browser.sign_in(username, PASSWORD)
        assert page.status_code == 303, page.text
        return browser

    def letter(self, n: int = 1, **changes: object) -> str:
        """A stored and routed letter (the city's rules assign streetlights to city-admin)."""
        contact: IncomingContact = make_contact(n, **changes)
        number = self.parts.intake.accept_sync(contact).tracking_number
        assert number is not None
        with make_sessionmaker(self.engine).begin() as session:
            letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
            self.workflow.process(session, letter)
        return number


class Browser:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.csrf = ""

    async def sign_in(self, username: str, password: str) -> httpx.Response:
        form = await self.client.get("/console/login")
        token = re.search(r'name="token" value="([^"]+)"', form.text)
        assert token, form.text
        answer = await self.client.post(
            "/console/login",
            data={"username": username, "password": password, "token": token.group(1)},
        )
        if answer.status_code == 303:
            home = await self.client.get("/console/", follow_redirects=True)
            self.csrf = csrf_of(home.text)
        return answer

    async def get(self, url: str) -> httpx.Response:
        return await self.client.get(url)

    async def post(self, url: str, **data: str | list[str]) -> httpx.Response:
        return await self.client.post(url, data={"csrf": self.csrf, **data})


def console_config() -> Config:
    return Config(routing=ROUTING)


@pytest.fixture
async def desk(engine: Engine, parts: Parts, tmp_path: Path) -> AsyncIterator[Desk]:
    yield open_desk(engine, parts)


def open_desk(engine: Engine, parts: Parts) -> Desk:
    """The console on this engine, with every kind of staff member signed up."""
    clock = Clock(MONDAY)
    workflow = Workflow(ROUTING, DeadlinesConfig(), WorkCalendar(SHANGHAI), clock)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        workflow.sync_departments(session)
        departments = {
            code: id_ for code, id_ in session.execute(select(Department.code, Department.id))
        }
        for username, (role, department) in STAFF.items():
            # Argon2 is slow on purpose: the tests hash the one password once.
            session.add(
                ConsoleUser(
                    username=username,
                    display_name=f"用户{username}",
                    password_hash=password_hash(),
                    role=role,
                    department_id=departments[department] if department else None,
                    active=True,
                    failed_logins=0,
                    created_at=clock(),
                )
            )
    console = Console(console_config(), sessions, parts.files, workflow, clock)
    app = Starlette(routes=console.routes())
    return Desk(app, engine, clock, workflow, parts)
