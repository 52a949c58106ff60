"""What is taken out of text the public reads."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from gateway.contract.redaction import MASK, mask_email, mask_id_number, mask_phone, scrub


def test_numbers_addresses_and_known_details_are_masked() -> None:
    text = (
        "我是李四，住幸福小区3栋，电话138 1234 5678，座机0831-2345678，"
        "身份证51010219900101123X，邮箱li.si@example.com，卡号6222021234567890123。"
    )
    clean = scrub(text, ["李四", "幸福小区3栋", None])
    for secret in ("李四", "幸福小区", "5678", "2345678", "123X", "example.com", "6222"):
        assert secret not in clean
    assert clean.count(MASK) == 7


def test_ordinary_numbers_stay() -> None:
    text = "2026年11月26日，人民路12号的3盏路灯坏了，已有200户居民反映。"
    assert scrub(text) == text


@pytest.mark.parametrize(
    ("masker", "value", "expected"),
    [
        (mask_phone, "+86 138-1234-5678", "138****5678"),
        (mask_phone, "13812345678", "138****5678"),
        (mask_phone, "0831-2345678", "083****5678"),
        (mask_phone, "110", "****"),
        (mask_phone, None, None),
        (mask_email, "zhao.san@example.com", "z***@example.com"),
        (mask_email, "no-at-sign", None),
        (mask_id_number, "110105198002294612", "110***********4612"),
        (mask_id_number, "44030519921231883X", "440***********883X"),
        (mask_id_number, "123", "****"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_masked_detail_keeps_its_ends(
    masker: Callable[[str | None], str | None], value: str | None, expected: str | None
) -> None:
    assert masker(value) == expected
