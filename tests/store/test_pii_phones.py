"""Phone lookup hashes stored before migration 0018 (of a number's last 11 digits) are found
after the upgrade, and `hotline db upgrade` (or `hotline pii rotate`) recomputes them in the
E.164 form and notes the phones older letters give, in batches it can resume."""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Engine, select, text

from gateway.cli import main
from gateway.core.duplicates import find_duplicate
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Citizen, Letter, LetterPhone, PhoneRehash
from store.pii_rotation import check_keys, rehash_phones, rotate, rows_to_read
from tests.conftest import PII
from tests.gateway.test_duplicates import AGAIN, NOW, STREETLIGHT, Stored, store
from tests.gateway.test_workflow import ROUTING
from tests.store.test_pii import BOTH, NEW, blank_url  # noqa: F401  (a fixture)

CALLER = "+8613800138000"
TEST_KEY = bytes(range(32))  # tests/conftest.py's HOTLINE_PII_KEYS


def hashed_as_before(digits: str) -> str:
    """A phone hash as written before 0018: HMAC-SHA256 of "phone\\0" and the last 11 digits,
    under the lookup key HKDF draws from the PII key."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"hotline pii lookup hmac-sha256"
    )
    key = hkdf.derive(TEST_KEY)
    return hmac.new(key, f"phone\0{digits[-11:]}".encode(), hashlib.sha256).hexdigest()


def store_before_0018(engine: Engine) -> list[int]:
    """A citizen's SMS about the streetlight, and a letter in whose words a number is given,
    both routed (in hand), as the gateway stored them before 0018; their ids."""
    with engine.begin() as conn:
        citizen = conn.execute(
            text("INSERT INTO citizens (phone, phone_hash) VALUES (:phone, :hash) RETURNING id"),
            {"phone": PII.encrypt(CALLER, "citizens.phone"), "hash": hashed_as_before(CALLER)},
        ).scalar_one()
        return [
            conn.execute(
                text(
                    "INSERT INTO letters (tracking_number, verification_code, channel, source, "
                    "external_id, received_at, status, subject, text, anonymous, confidential, "
                    "publish, citizen_id) VALUES (:number, '123456', 'sms', 'modem-1', :number, "
                    ":at, 'assigned', '', :words, false, false, false, :citizen) RETURNING id"
                ),
                {
                    "number": f"2026112600{n:02d}",
                    "at": NOW - timedelta(hours=2),
                    "words": words,
                    "citizen": by,
                },
            ).scalar_one()
            for n, by, words in [
                (1, citizen, STREETLIGHT),
                (2, None, "南岸西路停车场收费标准不公开，乱收费，请核查。我的电话13900139000"),
            ]
        ]


def repeated(engine: Engine, new: Stored) -> int | None:
    (letter_id,) = store(engine, [new])
    with make_sessionmaker(engine)() as session:
        letter = session.get(Letter, letter_id)
        assert letter is not None
        original = find_duplicate(ROUTING, session, letter, NOW)
        return None if original is None else original.id


@pytest.mark.parametrize("blank_url", ["sqlite", "postgresql"], indirect=True)
def test_phones_stored_before_0018_are_found_and_then_rehashed(
    blank_url: str,  # noqa: F811  (the fixture, made indirect)
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = make_engine(blank_url, pii=PII)
    try:
        upgrade(engine, "0017")
        streetlight, parking = store_before_0018(engine)
        upgrade(engine)
        with caplog.at_level(logging.WARNING, "store.pii_rotation"):
            check_keys(engine)
        assert "`hotline pii rotate`" in caplog.text

        # Served at once: the citizen who wrote before is found under the old form.
        assert (
            repeated(engine, Stored(AGAIN, 0, None, "138 0013 8000", status="received"))
            == streetlight
        )
        assert rows_to_read(engine) == 2 + 2  # two citizens; two letters to read for phones

        batches: list[tuple[str, int]] = []

        def interrupted(table: str, rows: int) -> None:
            batches.append((table, rows))
            if table == "letter_phones":
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            rotate(engine, batch_size=1, progress=interrupted)
        assert batches == [("citizens", 1), ("citizens", 1), ("letter_phones", 1)]
        with engine.connect() as conn:
            left = conn.execute(select(PhoneRehash.table_name, PhoneRehash.done_through)).all()
        assert left == [("letters", streetlight)]

        # Run again: it goes on from the letter it had reached.
        assert rotate(engine, batch_size=1) == {"citizens": 0, "letters": 0, "letter_phones": 1}
        with engine.connect() as conn:
            stored = conn.execute(select(Citizen.id, Citizen.phone_hash).order_by(Citizen.id))
            assert stored.first() == (1, PII.lookup_hash("phone", CALLER))
            assert (
                conn.execute(
                    select(Citizen.id).where(Citizen.phone_hash == hashed_as_before(CALLER))
                ).all()
                == []
            )
            assert conn.execute(select(PhoneRehash)).all() == []
            noted = conn.execute(select(LetterPhone.letter_id, LetterPhone.phone_hash)).all()
        assert noted == [(parking, PII.lookup_hash("phone", "+8613900139000"))]
        assert rotate(engine, batch_size=1) == {"citizens": 0, "letters": 0, "letter_phones": 0}

        caplog.clear()
        check_keys(engine)
        assert "pii rotate" not in caplog.text
        # Found by the new form now, and by a number the older letter gave.
        assert repeated(engine, Stored(AGAIN, 0, None, CALLER, status="received")) == streetlight
        again = "南岸西路停车场收费标准不公开，乱收费，请有关部门核查。"
        assert repeated(engine, Stored(again, 0, None, "13900139000", status="received")) == parking
    finally:
        engine.dispose()


@pytest.mark.parametrize("blank_url", ["sqlite", "postgresql"], indirect=True)
def test_hotline_db_upgrade_recomputes_them(
    blank_url: str,  # noqa: F811  (the fixture, made indirect)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = make_engine(blank_url, pii=PII)
    try:
        upgrade(engine, "0017")
        streetlight, parking = store_before_0018(engine)
        monkeypatch.setenv("HOTLINE_DATABASE_URL", blank_url)
        monkeypatch.setenv("HOTLINE_CONFIG", "")

        assert main(["db", "upgrade"]) == 0
        assert capsys.readouterr().out == (
            "phone lookup hashes in E.164 form: 3 row(s) redone\ndatabase schema is up to date\n"
        )
        with engine.connect() as conn:
            hashes = conn.execute(select(Citizen.phone_hash)).scalars().all()
            assert conn.execute(select(PhoneRehash)).all() == []
            noted = conn.execute(select(LetterPhone.letter_id, LetterPhone.phone_hash)).all()
        assert hashes == [PII.lookup_hash("phone", CALLER)]
        assert noted == [(parking, PII.lookup_hash("phone", "+8613900139000"))]
        assert main(["db", "upgrade"]) == 0
        assert capsys.readouterr().out == "database schema is up to date\n"
        assert rehash_phones(engine) == 0
        assert repeated(engine, Stored(AGAIN, 0, None, "13800138000", status="received")) == (
            streetlight
        )
    finally:
        engine.dispose()


def test_rotation_notes_a_letters_phones_again_under_the_new_key(engine: Engine) -> None:
    """Only the hash is kept: the rotation reads the number again from the letter's words."""
    (streetlight,) = store(engine, [Stored(f"{STREETLIGHT}回电138 0013 8000", 1, None)])
    store(engine, [Stored(AGAIN, 1, None)])  # gives no number: nothing noted
    rotating = make_engine(engine.url.render_as_string(hide_password=False), pii=BOTH)
    try:
        assert rotate(rotating, batch_size=1)["letter_phones"] == 1
        assert rotate(rotating, batch_size=1)["letter_phones"] == 0
    finally:
        rotating.dispose()

    with engine.connect() as conn:
        noted = conn.execute(
            select(LetterPhone.letter_id, LetterPhone.phone_hash, LetterPhone.key_id)
        ).all()
    assert noted == [(streetlight, NEW.lookup_hash("phone", CALLER), "k2")]
