"""Citizens' PII is encrypted at rest, found by keyed hash, and re-keyed by a command."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, create_engine, insert, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from gateway.contract.config import RoutingConfig
from gateway.contract.contact import Citizen as Sender
from gateway.core.duplicates import find_duplicate
from store.db import make_engine, make_sessionmaker
from store.migrate import alembic_config, upgrade
from store.models import Citizen, Letter
from store.pii import ENV, Keyring, PiiError, normalize
from store.pii_rotation import check_keys, rotate
from tests.conftest import PII, POSTGRES_URL, Parts, build_intake, make_contact

PLAIN = {
    "name": "张三",
    "phone": "+8613800138000",
    "email": "Zhang.San@Example.cn",
    "id_number": "510102199001011234",
    "address": "翠屏区人民路1号",
    "ip": "203.0.113.9",
}
PDU = "07916831080000F0040D91683108103800F00008621162413000320C8DEF"
NEW_KEY = "k2:" + base64.urlsafe_b64encode(bytes(range(32, 64))).decode()
BOTH = Keyring.parse(f"{NEW_KEY},{os.environ[ENV]}")
NEW = Keyring.parse(NEW_KEY)
SELECT_RAW = (
    "SELECT name, phone, email, id_number, address, ip, phone_hash, email_hash FROM citizens"
)

Engines = Callable[..., Engine]


@pytest.fixture
def engines(database_url: str) -> Iterator[Engines]:
    """More engines on the same database, each with keys of its own (or none)."""
    made: list[Engine] = []

    def engine(pii: Keyring | None) -> Engine:
        made.append(make_engine(database_url, pii=pii))
        return made[-1]

    yield engine
    for engine_ in made:
        engine_.dispose()


def store(parts: Parts, n: int = 1, **citizen: str) -> str:
    contact = make_contact(n, citizen=Sender(**(citizen or PLAIN)), raw=PDU)
    number = parts.intake.accept_sync(contact).tracking_number
    assert number is not None
    return number


def test_the_database_holds_no_plaintext(parts: Parts, engine: Engine) -> None:
    store(parts)

    with engine.connect() as conn:
        row = conn.execute(text(SELECT_RAW)).one()._mapping
        raw = conn.execute(text("SELECT raw FROM letters")).scalar_one()
    for name, value in PLAIN.items():
        assert row[name].startswith("pii1:test:") and value not in row[name], name
    assert raw.startswith("pii1:test:") and "3108103800" not in raw
    assert row["phone_hash"] == PII.lookup_hash("phone", "13800138000")
    assert row["email_hash"] == PII.lookup_hash("email", "zhang.san@example.cn")


def test_each_row_of_a_batch_insert_gets_its_own_lookup_hash(engine: Engine) -> None:
    phones = [f"+86138001380{n:02d}" for n in range(5)]
    with engine.begin() as conn:
        conn.execute(insert(Citizen), [{"phone": phone, "email": None} for phone in phones])
        rows = conn.execute(select(Citizen.phone, Citizen.phone_hash, Citizen.email_hash)).all()
    assert sorted(rows) == [(phone, PII.lookup_hash("phone", phone), None) for phone in phones]


def test_changing_a_phone_through_the_orm_rehashes_it(parts: Parts, engine: Engine) -> None:
    store(parts)
    with make_sessionmaker(engine).begin() as session:
        session.scalars(select(Citizen)).one().phone = "139 0013 9000"

    with engine.connect() as conn:
        row = conn.execute(select(Citizen.phone_hash, Citizen.email_hash)).one()
    assert row == (
        PII.lookup_hash("phone", "13900139000"),
        PII.lookup_hash("email", PLAIN["email"]),
    )


def test_values_read_back_through_the_orm_and_core(parts: Parts, engine: Engine) -> None:
    number = store(parts)

    with make_sessionmaker(engine)() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        assert letter.raw == PDU and letter.citizen is not None
        assert {name: getattr(letter.citizen, name) for name in PLAIN} == PLAIN
    with engine.connect() as conn:
        assert conn.execute(select(Citizen.phone, Citizen.email)).one() == (
            PLAIN["phone"],
            PLAIN["email"],
        )


def test_the_same_value_encrypts_differently_each_time() -> None:
    assert PII.encrypt("13800138000", "citizens.phone") != PII.encrypt(
        "13800138000", "citizens.phone"
    )


def test_a_value_moved_to_another_column_is_refused(parts: Parts, engine: Engine) -> None:
    store(parts)
    with engine.begin() as conn:
        conn.execute(text("UPDATE citizens SET name = phone"))

    with engine.connect() as conn, pytest.raises(PiiError, match="another column"):
        conn.execute(select(Citizen.name)).all()


def test_an_altered_value_is_refused(parts: Parts, engine: Engine) -> None:
    store(parts)
    with engine.begin() as conn:
        stored = conn.execute(text("SELECT phone FROM citizens")).scalar_one()
        flipped = "A" if stored[-10] != "A" else "B"
        altered = stored[:-10] + flipped + stored[-9:]
        conn.execute(text("UPDATE citizens SET phone = :p"), {"p": altered})

    with engine.connect() as conn, pytest.raises(PiiError, match="altered"):
        conn.execute(select(Citizen.phone)).all()


def test_comparing_an_encrypted_column_is_an_error_not_an_empty_answer() -> None:
    with pytest.raises(TypeError, match=r"citizens\.phone is encrypted"):
        _ = Citizen.phone == "13800138000"
    assert str(Citizen.phone.is_(None)) == "citizens.phone IS NULL"


@pytest.mark.parametrize(
    ("kind", "given", "normal"),
    [
        ("phone", "+86 138-0013-8000", "+8613800138000"),
        ("phone", "008613800138000", "+8613800138000"),
        ("phone", "13800138000", "+8613800138000"),
        ("phone", "+86 10 12345678", "+861012345678"),
        ("phone", "010-12345678", "+861012345678"),
        ("phone", "12345", "12345"),
        ("email", " Zhang.San@Example.CN ", "zhang.san@example.cn"),
    ],
    ids=[
        "phone-formatted",
        "phone-international-prefix",
        "phone-plain",
        "landline-international",
        "landline-trunk-prefix",
        "short-code",
        "email-case",
    ],
)
def test_lookups_normalise_what_citizens_type(kind: str, given: str, normal: str) -> None:
    assert normalize(kind, given) == normal
    assert PII.lookup_hash(kind, given) == PII.lookup_hash(kind, normal)


def test_routing_links_a_letter_from_the_same_phone_written_another_way(
    parts: Parts, engine: Engine
) -> None:
    text_ = "小区门口的井盖丢了，晚上很危险，请尽快处理。"
    first = parts.intake.accept_sync(
        make_contact(1, text=text_, citizen=Sender(phone="+8613800138000"))
    )
    again = parts.intake.accept_sync(
        make_contact(2, text=text_, citizen=Sender(phone="138 0013 8000"))
    )
    other = parts.intake.accept_sync(
        make_contact(3, text=text_, citizen=Sender(phone="13900139000"))
    )
    routing = RoutingConfig()
    now = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)

    with make_sessionmaker(engine)() as session:
        by_number = {
            letter.tracking_number: letter for letter in session.scalars(select(Letter)).all()
        }
        by_number[first.tracking_number or ""].status = "triage"  # routed: a matter in hand
        session.flush()
        duplicate = find_duplicate(routing, session, by_number[again.tracking_number or ""], now)
        assert duplicate is not None and duplicate.tracking_number == first.tracking_number
        assert find_duplicate(routing, session, by_number[other.tracking_number or ""], now) is None


def test_rotation_re_encrypts_under_the_new_key_once(
    parts: Parts, engine: Engine, engines: Engines, tmp_path: Path
) -> None:
    for n in (1, 2, 3):
        store(parts, n, phone=f"+86138001380{n:02d}", email=f"c{n}@example.cn")
    both = engines(BOTH)
    # While rolling out the new key: old rows read, new rows are written under it.
    store(build_intake(both, tmp_path / "both"), 4, phone="+8613800138004")
    with make_sessionmaker(both)() as session:
        assert sorted(session.scalars(select(Citizen.phone))) == [
            f"+86138001380{n:02d}" for n in (1, 2, 3, 4)
        ]
        found = session.scalars(
            select(Citizen.phone).where(
                Citizen.phone_hash.in_(BOTH.lookup_hashes("phone", "13800138001"))
            )
        ).all()
        assert found == ["+8613800138001"]

    assert rotate(both, batch_size=2) == {"citizens": 3, "letters": 3, "letter_phones": 0}
    assert rotate(both, batch_size=2) == {"citizens": 0, "letters": 0, "letter_phones": 0}

    new = engines(NEW)
    with new.connect() as conn:
        assert sorted(conn.execute(select(Citizen.phone)).scalars()) == [
            f"+86138001380{n:02d}" for n in (1, 2, 3, 4)
        ]
        assert set(conn.execute(select(Letter.raw)).scalars()) == {PDU}
        stored = conn.execute(text("SELECT phone, email, phone_hash FROM citizens")).all()
        raws = conn.execute(text("SELECT raw FROM letters")).scalars().all()
    assert all(v.startswith("pii1:k2:") for row in stored for v in row[:2] if v)
    assert all(raw.startswith("pii1:k2:") for raw in raws)
    assert {row.phone_hash for row in stored} == {
        NEW.lookup_hash("phone", f"138001380{n:02d}") for n in (1, 2, 3, 4)
    }


def test_without_a_key_pii_is_a_clear_error_never_plaintext(parts: Parts, engines: Engines) -> None:
    store(parts)
    keyless = engines(None)

    with keyless.connect() as conn, pytest.raises(PiiError, match=ENV):
        conn.execute(select(Citizen.phone)).all()
    with make_sessionmaker(keyless).begin() as session, pytest.raises(StatementError, match=ENV):
        session.add(Citizen(phone="13800138000"))
        session.flush()
    with engines(NEW).connect() as conn, pytest.raises(PiiError, match=r"'test'.*not in"):
        conn.execute(select(Citizen.phone)).all()


def test_a_node_with_other_keys_is_stopped_at_start(parts: Parts, engines: Engines) -> None:
    store(parts)
    check_keys(engines(BOTH))
    with pytest.raises(PiiError, match=r"'test'.*not in"):
        check_keys(engines(NEW))


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ("k1", "expected id:base64key"),
        ("k1:not base64!", "not base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "5 bytes, not 32"),
        (f"{NEW_KEY},{NEW_KEY}", "given twice"),
        ("bad id:" + base64.b64encode(bytes(32)).decode(), "bad key id"),
    ],
    ids=["no-colon", "not-base64", "short", "twice", "bad-id"],
)
def test_a_bad_key_list_names_the_variable(keys: str, problem: str) -> None:
    with pytest.raises(PiiError, match=f"{ENV}.*{problem}"):
        Keyring.parse(keys)


def test_a_new_key_is_a_usable_key_list() -> None:
    keyring = Keyring.parse(Keyring.new_key())
    assert keyring.decrypt(keyring.encrypt("张三", "citizens.name"), "citizens.name") == "张三"


@pytest.fixture
def blank_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: a SQLite file, or a fresh schema on the machine's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'blank.db'}"
        return
    request.getfixturevalue("postgres_schema_url")  # skips (or fails under CI) without it
    schema = f"hotline_blank_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.mark.parametrize("blank_url", ["sqlite", "postgresql"], indirect=True)
def test_the_migration_encrypts_the_plaintext_rows_already_stored(blank_url: str) -> None:
    engine = make_engine(blank_url, pii=PII)
    try:
        upgrade(engine, "0009")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO citizens (id, name, phone, email, id_number, address, ip) "
                    "VALUES (1, :name, :phone, :email, :id_number, :address, :ip)"
                ),
                PLAIN,
            )
            conn.execute(
                text(
                    "INSERT INTO letters (id, tracking_number, verification_code, channel, "
                    "source, external_id, received_at, status, subject, text, raw, anonymous, "
                    "confidential, publish, citizen_id) VALUES (1, '202611260001', '123456', "
                    "'sms', 'modem-1', 'x', :at, 'received', '', '', :raw, false, false, "
                    "false, 1)"
                ),
                {"at": datetime(2026, 11, 26, tzinfo=UTC), "raw": PDU},
            )
        keyless = make_engine(blank_url)
        with pytest.raises(PiiError, match=ENV):
            upgrade(keyless, "0010")
        keyless.dispose()

        upgrade(engine, "0010")

        with engine.connect() as conn:
            row = conn.execute(text(SELECT_RAW)).one()._mapping
            raw = conn.execute(text("SELECT raw FROM letters")).scalar_one()
            assert all(row[name].startswith("pii1:test:") for name in PLAIN)
            assert raw.startswith("pii1:test:")
            assert row["phone_hash"] == PII.lookup_hash("phone", PLAIN["phone"])
            citizen = conn.execute(select(*(getattr(Citizen, n) for n in PLAIN))).one()
            assert tuple(citizen) == tuple(PLAIN.values())
            assert conn.execute(select(Letter.raw)).scalar_one() == PDU

        command.downgrade(alembic_config(engine), "0009")
        with engine.connect() as conn:
            assert conn.execute(text("SELECT phone, name FROM citizens")).one() == (
                PLAIN["phone"],
                PLAIN["name"],
            )
            assert conn.execute(text("SELECT raw FROM letters")).scalar_one() == PDU
    finally:
        engine.dispose()
