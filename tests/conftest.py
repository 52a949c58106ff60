"""Fixtures: every store test runs on real SQLite and on the real PostgreSQL of this machine."""

from __future__ import annotations

import base64
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Base
from store.pii import ENV, Keyring
from tests.support.tcp_proxy import TcpProxy

POSTGRES_URL = os.environ.get(
    "HOTLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Citizens' details are encrypted at rest: the tests, and every gateway they start (children
# inherit the environment), use this fixed key unless one is set.
os.environ.setdefault(ENV, "test:" + base64.urlsafe_b64encode(bytes(range(32))).decode())
PII = Keyring.parse(os.environ[ENV])


def _require(reason: str) -> None:
    """Outside CI a missing service skips; under CI=true it fails the run, never silently."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _logging_put_back() -> Iterator[None]:
    """`hotline` commands run in-process install a handler on the stderr pytest captured
    for that test; left behind, every later log line would hit a closed file."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def require_tool(name: str) -> str:
    """The path of a program or file the test drives; its absence fails under CI."""
    found = name if Path(name).is_absolute() and Path(name).exists() else shutil.which(name)
    if not found:
        _require(f"{name} is not installed (make test installs it)")
    return str(found)


@pytest.fixture(scope="session")
def postgres_schema_url() -> Iterator[str]:
    """A schema of its own on the machine's PostgreSQL, migrated once for the session."""
    admin = create_engine(POSTGRES_URL)
    schema = f"hotline_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # any failure to reach the server
        admin.dispose()
        _require(f"PostgreSQL at {POSTGRES_URL} is not reachable: {exc}")
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    engine = make_engine(rendered, pii=PII)
    upgrade(engine)
    engine.dispose()
    yield rendered
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def proxy(postgres_schema_url: str) -> Iterator[TcpProxy]:
    """The line to PostgreSQL, to cut and mend: a real database outage."""
    upstream = make_url(postgres_schema_url)
    line = TcpProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    line.up()
    yield line
    line.down()


@pytest.fixture
def cut_engine(proxy: TcpProxy, postgres_schema_url: str) -> Iterator[Engine]:
    """An engine whose every connection runs through the proxy (PostgreSQL behind a cable),
    on tables emptied for the test."""
    empty_tables(postgres_schema_url)
    url = make_url(postgres_schema_url).set(host="127.0.0.1", port=proxy.port)
    engine = make_engine(url.render_as_string(hide_password=False), pii=PII, connect_timeout=1)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'hotline.db'}"
        engine = make_engine(url, pii=PII)
        upgrade(engine)
        engine.dispose()
        return url
    url = str(request.getfixturevalue("postgres_schema_url"))
    empty_tables(url)
    return url


def empty_tables(url: str) -> None:
    """The session's schema holds what earlier tests in this process stored: empty it."""
    engine = make_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url, pii=PII, pool_size=20)
    yield engine
    engine.dispose()


@dataclass
class Parts:
    intake: Intake
    spool: Spool
    files: AttachmentStore
    metrics: Metrics


def build_intake(engine: Engine, root: Path) -> Parts:
    metrics = Metrics()
    files = AttachmentStore(root / "attachments")
    spool = Spool(root / "spool", metrics)
    intake = Intake(make_sessionmaker(engine), files, spool, metrics, SHANGHAI)
    return Parts(intake, spool, files, metrics)


@pytest.fixture
def parts(engine: Engine, tmp_path: Path) -> Parts:
    return build_intake(engine, tmp_path)


def count_rows(engine: Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def make_contact(n: int = 1, **changes: object) -> IncomingContact:
    """A contact as a channel would hand it over: an SMS about a broken streetlight."""
    fields: dict[str, object] = {
        "channel": Channel.SMS,
        "source": "modem-1",
        "external_id": f"8613800138000:26112614300032:{n}",
        "received_at": datetime(2026, 11, 26, 6, 30, tzinfo=UTC),
        "citizen": Citizen(name="张三", phone="+8613800138000"),
        "subject": "路灯不亮",
        "text": f"翠屏区人民路{n}号门口的路灯已经坏了三天，晚上很黑，请尽快修理。",
        "attachments": (
            Attachment("照片.jpg", "image/jpeg", b"\xff\xd8\xff" + bytes([n % 256]) * 64),
        ),
    }
    fields.update(changes)
    return IncomingContact(**fields)  # type: ignore[arg-type]
