"""Phone numbers compared in one form, whichever way they were written."""

from __future__ import annotations

import pytest

from store.phones import e164, is_mobile, numbers_in, same_number


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("+86 10 12345678", "+861012345678"),
        ("010-12345678", "+861012345678"),
        ("0086 10 1234 5678", "+861012345678"),
        ("138 0013 8000", "+8613800138000"),
        ("+86 138-0013-8000", "+8613800138000"),
        ("13800138000", "+8613800138000"),
    ],
)
def test_one_number_written_many_ways_is_one_e164(written: str, number: str) -> None:
    assert e164(written) == number
    assert same_number(written) == number


def test_what_is_no_valid_number_keeps_its_digits() -> None:
    assert e164("12345") is None
    assert same_number("12345") == "12345"
    assert e164("没有号码") is None


def test_numbers_are_found_in_a_letters_text_each_once() -> None:
    text = "请回电13800138000，或打座机010-12345678；再说一遍：138 0013 8000。编号20261204-0001"
    assert numbers_in(text) == ["+8613800138000", "+861012345678"]


def test_only_a_mobile_line_can_take_an_sms() -> None:
    assert is_mobile("+8613800138000")
    assert not is_mobile("010-12345678")
    assert not is_mobile("12345")
