"""Phone numbers as one form (E.164), whichever way a citizen, a trunk or a modem wrote them:
"+86 10 12345678", "010-12345678" and "0086 10 1234 5678" are one landline; numbers are
read as Chinese unless they say otherwise (libphonenumber's rules and ranges)."""

from __future__ import annotations

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberMatcher, PhoneNumberType

REGION = "CN"


def e164(raw: str) -> str | None:
    """The number in E.164 ("+8613800138000"); None when raw is no valid number (a short
    code like 12345, a word, a number outside every plan)."""
    try:
        number = phonenumbers.parse(raw, REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def same_number(raw: str) -> str:
    """The form a phone is compared and hashed in: E.164 when raw is a valid number, else
    its digits and a leading + (a short code or a foreign oddity still equals itself)."""
    if (number := e164(raw)) is not None:
        return number
    digits = "".join(c for c in raw if c.isdigit())
    return "+" + digits if raw.strip().startswith("+") else digits


def numbers_in(text: str) -> list[str]:
    """The valid phone numbers written in a text, in E.164, in order, each once."""
    found: list[str] = []
    for match in PhoneNumberMatcher(text, REGION):
        number = phonenumbers.format_number(match.number, PhoneNumberFormat.E164)
        if number not in found:
            found.append(number)
    return found


def is_mobile(raw: str) -> bool:
    """Whether an SMS can reach the number: a mobile line, not a landline or a short code."""
    try:
        number = phonenumbers.parse(raw, REGION)
    except phonenumbers.NumberParseException:
        return False
    kind = phonenumbers.number_type(number)
    mobile = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
    return phonenumbers.is_valid_number(number) and kind in mobile
