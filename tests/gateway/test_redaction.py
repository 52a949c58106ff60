"""What is taken out of text the public reads."""

from __future__ import annotations

from gateway.redaction import MASK, scrub


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
