"""The spool keeps a contact (or a missed call) whole: what comes back is what went in."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.contract.contact import Accepted, IncomingContact, MissedCallEntry
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool, decode, decode_contact, encode_contact, encode_missed
from tests.conftest import make_contact

MISSED = MissedCallEntry(
    "sip-1", "call-a@pbx", datetime(2026, 12, 4, 9, 30, tzinfo=UTC), "hung_up", "13812345678", None
)


def test_a_spooled_contact_comes_back_with_every_field() -> None:
    contact = make_contact(
        3,
        jobs=("ocr",),
        text_source="ocr",
        anonymous=True,
        category="complaint",
        location=(28.7654, 104.6321),
    )
    assert decode_contact(encode_contact(contact)) == contact


def test_a_contact_spooled_before_text_source_existed_comes_back_as_typed_text() -> None:
    raw = encode_contact(make_contact(3)).replace(b'"text_source": null, ', b"")
    assert b"text_source" not in raw
    assert decode_contact(raw) == make_contact(3)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"version": 99}',
        b'{"version": 1, "channel": "pigeon"}',
        encode_contact(make_contact()).replace(b'"data": "', b'"data": "!!'),
        encode_contact(make_contact())[:-20],
        encode_contact(make_contact(text_source="ocr")).replace(b'"ocr"', b'"pigeon"'),
    ],
    ids=[
        "empty",
        "list",
        "future-version",
        "unknown-channel",
        "bad-base64",
        "torn",
        "unknown-text-source",
    ],
)
def test_a_damaged_file_is_a_value_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_contact(raw)


def test_a_spooled_missed_call_comes_back_with_every_field_and_is_no_contact() -> None:
    assert decode(encode_missed(MISSED)) == MISSED
    with pytest.raises(ValueError):
        decode_contact(encode_missed(MISSED))


@pytest.mark.parametrize(
    "raw",
    [
        encode_missed(MISSED).replace(b'"call_id"', b'"call"'),
        encode_missed(MISSED).replace(b'"2026-12-04', b'"yesterday'),
        encode_missed(MISSED).replace(b'"version": 1', b'"version": 2'),
    ],
    ids=["no-call-id", "bad-time", "future-version"],
)
def test_a_damaged_missed_call_is_a_value_error_not_a_crash(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode(raw)


def test_the_drain_stores_each_kind_its_way_and_sets_a_damaged_file_aside(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", Metrics())
    spool.put(make_contact(1))
    spool.put_missed(MISSED)
    (spool.root / "torn.json").write_bytes(encode_missed(MISSED)[:-10])
    contacts: list[IncomingContact] = []
    missed: list[MissedCallEntry] = []

    def store(contact: IncomingContact) -> Accepted:
        contacts.append(contact)
        return Accepted("T1", created=True)

    assert spool.drain(store, missed.append) == 2

    assert contacts == [make_contact(1)] and missed == [MISSED]
    assert spool.depth() == 0
    assert [p.name for p in spool.rejected.iterdir()] == ["torn.json"]
