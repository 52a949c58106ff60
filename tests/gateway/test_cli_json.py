"""Every `hotline` command that lists or shows has --json: one UTF-8 JSON value whose keys
are those of its example in docs/cli.md."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from gateway.contract.kinds import WEBHOOK
from gateway.frontends.api import auth
from gateway.frontends.console import accounts
from store import jobs
from store.db import make_sessionmaker
from store.missed_calls import record_missed
from store.models import Event, OutboxMessage, WebhookCursor
from tests.conftest import Parts, make_contact

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "cli.md"
AT = datetime(2026, 11, 26, 6, 30, tzinfo=UTC)

Run = Callable[..., Any]


@pytest.fixture
def hotline(database_url: str) -> Run:
    """`hotline ARGS` as a process whose stdout is ASCII text: its JSON is UTF-8 all the same."""

    def run(*args: str) -> Any:
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args],
            cwd=ROOT,
            capture_output=True,
            env={
                **os.environ,
                "HOTLINE_DATABASE_URL": database_url,
                "HOTLINE_CONFIG": "",
                "PYTHONIOENCODING": "ascii",
            },
            timeout=60,
        )
        assert done.returncode == 0, done.stderr.decode()
        return json.loads(done.stdout.decode("utf-8"))

    return run


def documented(command: str) -> Any:
    """The JSON example under the docs/cli.md heading that starts with `hotline COMMAND`."""
    text = DOCS.read_text(encoding="utf-8")
    heading = re.search(rf"^## `hotline {re.escape(command)}[^`]*`$", text, re.MULTILINE)
    assert heading, f"docs/cli.md has no section for hotline {command}"
    block = re.search(r"```json\n(.*?)```", text[heading.end() :], re.DOTALL)
    assert block, f"docs/cli.md has no JSON example for hotline {command}"
    return json.loads(block.group(1))


def keys_of(value: Any) -> set[str]:
    return set(value[0] if isinstance(value, list) else value)


def in_session(engine: Engine, work: Callable[[Session], object]) -> None:
    with make_sessionmaker(engine).begin() as session:
        work(session)


def test_tokens_list_json_shows_names_scopes_and_state_never_the_token(
    engine: Engine, hotline: Run
) -> None:
    made: list[str] = []
    in_session(
        engine, lambda s: made.append(auth.create(s, "办公系统", ["act", "read"], "roads", AT))
    )

    rows = hotline("tokens", "list", "--json")

    assert keys_of(rows) == keys_of(documented("tokens list"))
    assert rows == [
        {
            "name": "办公系统",
            "scopes": ["act", "read"],
            "department": "roads",
            "state": "active",
            "created_at": "2026-11-26T06:30:00Z",
            "revoked_at": None,
        }
    ]
    assert made[0] not in json.dumps(rows)


def test_webhooks_list_and_dead_json_show_endpoints_and_given_up_messages(
    engine: Engine, parts: Parts, hotline: Run
) -> None:
    number = parts.intake.accept_sync(make_contact(1)).tracking_number

    def fill(session: Session) -> None:
        session.add(
            WebhookCursor(endpoint="oa", last_event_id=3, disabled_at=AT, disabled_reason="410")
        )
        for status in ("failed", "failed", "pending"):
            session.add(
                OutboxMessage(
                    kind=WEBHOOK,
                    letter_id=1,
                    destination="oa",
                    payload={},
                    status=status,
                    attempts=9,
                    next_attempt_at=AT,
                    created_at=AT,
                    last_error="GiveUp: 503 服务不可用" if status == "failed" else None,
                )
            )

    in_session(engine, fill)

    endpoints = hotline("webhooks", "list", "--json")
    dead = hotline("webhooks", "dead", "--json", "--endpoint", "oa")

    assert keys_of(endpoints) == keys_of(documented("webhooks list"))
    assert endpoints == [
        {
            "endpoint": "oa",
            "configured": False,
            "enabled": False,
            "disabled_at": "2026-11-26T06:30:00Z",
            "disabled_reason": "410",
            "last_event_id": 3,
            "pending": 1,
            "dead_lettered": 2,
        }
    ]
    assert keys_of(dead) == keys_of(documented("webhooks dead"))
    assert [(d["id"], d["tracking_number"], d["last_error"]) for d in dead] == [
        (2, number, "GiveUp: 503 服务不可用"),  # newest first
        (1, number, "GiveUp: 503 服务不可用"),
    ]
    assert hotline("webhooks", "dead", "--json", "--endpoint", "elsewhere") == []


def test_console_users_json_lists_accounts_without_passwords(engine: Engine, hotline: Run) -> None:
    in_session(
        engine, lambda s: accounts.add_user(s, "wang", "王芳", "operator", "长密码-口令-2026", AT)
    )

    rows = hotline("console", "users", "--json")

    assert keys_of(rows) == keys_of(documented("console users"))
    assert rows == [
        {
            "username": "wang",
            "display_name": "王芳",
            "role": "operator",
            "department": None,
            "state": "active",
            "last_login_at": None,
        }
    ]


def test_jobs_list_json_has_the_documented_keys(engine: Engine, hotline: Run) -> None:
    in_session(engine, lambda s: jobs.enqueue(s, WEBHOOK, payload={"outbox_id": 1}, at=AT))

    rows = hotline("jobs", "list", "--json")

    assert keys_of(rows) == keys_of(documented("jobs list"))
    assert [(r["lane"], r["kind"], r["status"]) for r in rows] == [("webhooks", WEBHOOK, "queued")]


def test_missed_list_json_masks_callers_unless_a_reason_is_given_and_audits_that(
    engine: Engine, hotline: Run
) -> None:
    in_session(
        engine,
        lambda s: record_missed(
            s, "sip", "call-1", AT, "hung_up_in_menu", "+8613800138000", "12345"
        ),
    )

    masked = hotline("missed", "list", "--json")
    revealed = hotline("missed", "list", "--json", "--reveal-pii", "回拨市民")

    assert keys_of(masked) == keys_of(documented("missed list"))
    assert masked == [
        {
            "id": 1,
            "at": "2026-11-26T06:30:00Z",
            "source": "sip",
            "reason": "hung_up_in_menu",
            "caller": "138****8000",
            "called": "12345",
            "called_back_at": None,
            "called_back_by": None,
        }
    ]
    assert revealed[0]["caller"] == "+8613800138000"
    assert hotline("missed", "list", "--json", "--done") == []
    with make_sessionmaker(engine)() as session:
        audit = session.scalars(select(Event).where(Event.kind == "pii.revealed")).one()
    assert audit.actor.startswith("cli:")
    assert audit.detail == {"reason": "回拨市民", "missed_calls": [1]}
