"""The spool keeps a contact whole: what comes back is what went in."""

from __future__ import annotations

import pytest

from gateway.engine.spool import decode_contact, encode_contact
from tests.conftest import make_contact


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
