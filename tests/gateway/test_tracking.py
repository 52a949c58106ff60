"""Tracking numbers survive being read over the phone: the check catches the usual slips."""

from __future__ import annotations

from datetime import date

import pytest

from gateway.contract import tracking

SAMPLES = [tracking.tracking_number(date(2026, 11, 26), n) for n in (1, 42, 909, 123456, 999999)]


def test_the_check_is_the_resident_id_card_scheme() -> None:
    # GB 11643 uses ISO 7064 MOD 11-2; this is the standard's own worked example.
    assert tracking.check_character("11010519491231002") == "X"


@pytest.mark.parametrize("number", SAMPLES)
def test_a_well_formed_number_is_valid(number: str) -> None:
    assert tracking.is_valid(number)
    assert len(number) == 15


@pytest.mark.parametrize("number", SAMPLES)
def test_every_single_wrong_character_is_caught(number: str) -> None:
    for i, original in enumerate(number):
        for replacement in "0123456789X":
            if replacement != original:
                wrong = number[:i] + replacement + number[i + 1 :]
                assert not tracking.is_valid(wrong), wrong


@pytest.mark.parametrize("number", SAMPLES)
def test_every_swap_of_two_neighbours_is_caught(number: str) -> None:
    for i in range(len(number) - 1):
        if number[i] != number[i + 1]:
            swapped = number[:i] + number[i + 1] + number[i] + number[i + 2 :]
            assert not tracking.is_valid(swapped), swapped


@pytest.mark.parametrize(
    ("typed", "valid"),
    [
        ("2026 1126 000008 x", True),
        ("20261126-000008-X", True),
        ("20261126000008", False),
        ("202611260000080", False),
        ("", False),
        ("ABCDEFGHIJKLMNO", False),
    ],
    ids=["spaces-lowercase", "dashes", "check-missing", "wrong-check", "empty", "letters"],
)
def test_what_people_type_is_normalized_then_checked(typed: str, valid: bool) -> None:
    assert tracking.tracking_number(date(2026, 11, 26), 8) == "20261126000008X"
    assert tracking.is_valid(tracking.normalize(typed)) is valid


@pytest.mark.parametrize("sequence", [0, -1, 1_000_000])
def test_a_sequence_outside_one_day_is_refused(sequence: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        tracking.tracking_number(date(2026, 11, 26), sequence)


def test_verification_codes_are_six_digits_and_vary() -> None:
    codes = {tracking.verification_code() for _ in range(50)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 40
