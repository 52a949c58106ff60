"""Canary PII through the whole gateway: a report (举报) and a complaint carrying a valid ID
number, phones, e-mails and names go through intake, the routing job, assignment and their
receipts' delivery, while the gateway's own logging writes to a buffer; then the webhooks are
delivered to a receiver on loopback and the bulletin is exported in every format. No canary
may show in a webhook body, an export or a log line."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract import tracking
from gateway.contract.config import JobsConfig, WebhookEndpoint, WebhooksConfig
from gateway.contract.logs import configure
from gateway.core import reports, stats
from gateway.engine import webhooks
from gateway.engine.workers import JobRunner
from store.db import make_engine, make_sessionmaker
from store.jobs import JobQueue
from store.migrate import upgrade
from store.models import Job, OutboxMessage
from tests.conftest import PII, SHANGHAI
from tests.support.canaries import COMPLAINANT, NOW, REPORTER, id_number, leaks, plant

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_QUIET = ("alembic", "mail.log", "sqlalchemy")


@dataclass
class Receiver:
    port: int = 0
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state.bodies.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    # SQLite only: what is shown is decided in Python; the queries are tested on both.
    engine = make_engine(f"sqlite:///{tmp_path / 'hotline.db'}", pii=PII)
    upgrade(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture(params=["text", "json"])
def log_output(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """The gateway's logging, as `hotline serve` configures it, at DEBUG into a buffer."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in _QUIET}
    stream = io.StringIO()
    configure("DEBUG", request.param, stream)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def hooks_settings(receiver: Receiver) -> WebhooksConfig:
    url = f"http://127.0.0.1:{receiver.port}/hooks"
    return WebhooksConfig(
        endpoints=[
            WebhookEndpoint(name="thin", url=url, secrets=[SECRET]),
            # Explicitly allowed PII: a complainant's contact, never a reporter's.
            WebhookEndpoint(name="with-pii", url=url, secrets=[SECRET], include_pii=True),
        ],
        allowed_hosts=["127.0.0.1"],
        timeout_seconds=5,
    )


def deliver_webhooks(sessions: sessionmaker[Session], settings: WebhooksConfig) -> int:
    sender = webhooks.WebhookSender(sessions, settings)
    runner = JobRunner(
        JobQueue(sessions),
        {webhooks.KIND: webhooks.WebhookDelivery(sessions, sender, webhooks.utcnow)},
        webhooks.runner_settings(settings, JobsConfig()),
    )
    try:
        queued = webhooks.fan_out(sessions, settings, datetime.now(UTC))
        while runner.run_one([webhooks.KIND]):
            pass
    finally:
        sender.close()
    return queued


def exports(sessions: sessionmaker[Session], folder: Path) -> dict[str, str]:
    """The bulletin of the day in every format `hotline report` writes, as text."""
    with sessions() as session:
        bulletin = stats.build_bulletin(
            session, "12345市民热线通报", NOW - timedelta(days=1), NOW + timedelta(days=1), SHANGHAI
        )
    reports.write_csv(bulletin, folder / "b.csv")
    reports.write_xlsx(bulletin, folder / "b.xlsx")
    book = load_workbook(folder / "b.xlsx")
    cells = [str(c.value) for sheet in book for row in sheet.iter_rows() for c in row]
    return {
        "text": reports.render_text(bulletin),
        "json": json.dumps(reports.bulletin_json(bulletin), ensure_ascii=False),
        "csv": (folder / "b.csv").read_text(encoding="utf-8-sig"),
        "xlsx": "\n".join([str(book.properties.title), *cells]),
    }


def test_no_canary_in_webhooks_exports_or_logs(
    sessions: sessionmaker[Session],
    receiver: Receiver,
    log_output: io.StringIO,
    tmp_path: Path,
) -> None:
    settings = hooks_settings(receiver)
    webhooks.fan_out(sessions, settings, datetime.now(UTC))  # the endpoints start here
    world = plant(sessions, tmp_path)
    assert deliver_webhooks(sessions, settings) == 8  # created, assigned: 2 letters, 2 ends
    files = exports(sessions, tmp_path)
    logged = log_output.getvalue()

    # Planted: stored as written, and on their way to the log (a provider's error names
    # the number it refused) and to the endpoint that may see a complainant.
    with sessions() as session:
        assert REPORTER.id_number in world.letter(session, world.report).text
        errors = session.scalars(select(Job.last_error).where(Job.last_error.is_not(None)))
        assert any(REPORTER.phone in (e or "") for e in errors)
    assert "159****1357" in logged and "c***@example.net" in logged
    bodies = [json.loads(b) for b in receiver.bodies]
    shared = [b["data"]["citizen"] for b in bodies if b["data"].get("citizen")]
    assert {c["phone"] for c in shared} == {"+86" + COMPLAINANT.phone}

    assert leaks(logged) == []
    for name, text in files.items():
        assert leaks(text) == [], name
    assert "施工" in files["json"]  # the letters' words were counted
    for body in bodies:
        citizen = body["data"].pop("citizen", None)
        assert leaks(json.dumps(body, ensure_ascii=False)) == [], body
        assert REPORTER.leaks(json.dumps(citizen, ensure_ascii=False)) == [], citizen


def test_webhook_payloads_stay_thin_and_a_reporter_is_never_shared(
    sessions: sessionmaker[Session], receiver: Receiver, tmp_path: Path
) -> None:
    settings = hooks_settings(receiver)
    webhooks.fan_out(sessions, settings, datetime.now(UTC))
    world = plant(sessions, tmp_path)
    deliver_webhooks(sessions, settings)

    with sessions() as session:
        report = world.letter(session, world.report)
        payloads = session.scalars(
            select(OutboxMessage.payload).where(
                OutboxMessage.kind == webhooks.KIND, OutboxMessage.letter_id == report.id
            )
        ).all()
        pending = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == webhooks.KIND, OutboxMessage.status != "sent")
        )
    assert pending == 0 and len(payloads) == 4
    for payload in payloads:
        assert set(payload["data"]) <= {
            "tracking_number",
            "letter_url",
            "status",
            "category",
            "channel",
            "department",
            "due_at",
            "citizen",
        }
        assert payload["data"].get("citizen") is None


@pytest.mark.parametrize(
    ("first17", "check"),
    [("11010519491231002", "X"), ("11010519800229461", "2"), ("44030519921231883", "X")],
    ids=["gb11643-example", "reporter", "complainant"],
)
def test_canary_id_numbers_carry_a_valid_gb11643_check_character(first17: str, check: str) -> None:
    # 11010519491231002X is the standard's own example; ISO 7064 MOD 11-2 is the same check.
    assert id_number(first17) == first17 + check
    assert tracking.check_character(first17) == check
