"""Tracking numbers a citizen can read over the phone, and verification codes (查询码).

A tracking number is the local date, a six-digit daily sequence and an ISO 7064 MOD 11-2
check character (the same scheme as the resident ID card, so citizens know the ``X``). The
check catches every single wrong digit and every swap of two neighbouring digits.
"""

from __future__ import annotations

import re
import secrets
from datetime import date

SEQUENCE_DIGITS = 6
_SHAPE = re.compile(r"^\d{14}[0-9X]$")


def check_character(digits: str) -> str:
    """ISO 7064 MOD 11-2 check character for a string of decimal digits."""
    remainder = 0
    for digit in digits:
        remainder = ((remainder + int(digit)) * 2) % 11
    value = (12 - remainder) % 11
    return "X" if value == 10 else str(value)


def tracking_number(day: date, sequence: int) -> str:
    if not 0 < sequence < 10**SEQUENCE_DIGITS:
        raise ValueError(f"sequence {sequence} out of range for one day")
    body = f"{day:%Y%m%d}{sequence:0{SEQUENCE_DIGITS}d}"
    return body + check_character(body)


def normalize(text: str) -> str:
    """Accept what people type or say: spaces, dashes, a lower-case x."""
    return re.sub(r"[\s\-]", "", text).upper()


def is_valid(number: str) -> bool:
    return bool(_SHAPE.match(number)) and check_character(number[:-1]) == number[-1]


def verification_code() -> str:
    """Six random digits, given only to the citizen, to look up their own letter."""
    return f"{secrets.randbelow(10**6):06d}"
