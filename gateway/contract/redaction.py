"""Personal details taken out of text that the public, a department or a log will read.

Citizens write their phone number, ID number or e-mail into the letter itself; a published
letter (选登), a department's view or a log line must not carry them. ``scrub`` removes them
(known details of the letter's own citizen — name, address — wherever they appear; the
patterns catch everyone else's). ``mask`` keeps enough to tell two apart in a log line:
138****5678, 110***********1234, z***@example.com.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII)
# GB 11643 resident ID: area, birth date, sequence, check character (shape only).
ID_NUMBER = re.compile(r"(?<!\d)\d{6}(?:18|19|20)\d{2}[01]\d[0-3]\d\d{3}[\dXx](?!\d)")
# Mainland mobile, with or without +86 / 86, grouped 3-4-4 by spaces or dashes or not.
MOBILE = re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)")
LANDLINE = re.compile(r"(?<!\d)0\d{2,3}[\s-]?\d{7,8}(?!\d)")  # with its area code
LOCAL_NUMBER = re.compile(r"(?<!\d)\d{7,8}(?!\d)")  # a landline without it
BANK_CARD = re.compile(r"(?<![\dA-Za-z])\d{16,19}(?!\d)")
# Order matters: an e-mail may hold digits, an ID number holds a phone-length run.
_PATTERNS = (EMAIL, ID_NUMBER, MOBILE, LANDLINE, LOCAL_NUMBER, BANK_CARD)
# Nothing above matches a string without a digit or an @: most log text, cheaply skipped.
_CANDIDATE = re.compile(r"[\d@]")
_NOT_DIGIT = re.compile(r"\D")


def scrub(text: str, known: Iterable[str | None] = ()) -> str:
    """Every known detail and every shape of a contact detail replaced by ``***``."""
    for value in sorted({v.strip() for v in known if v and len(v.strip()) >= 2}, key=len)[::-1]:
        text = text.replace(value, MASK)
    if not _CANDIDATE.search(text):
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def mask_phone(phone: str | None) -> str | None:
    """138****5678: the last 11 digits (a +86 prefix dropped), 4 in the middle hidden."""
    if not phone:
        return None
    digits = _NOT_DIGIT.sub("", phone)[-11:]
    return digits[:3] + "****" + digits[-4:] if len(digits) >= 7 else "****"


def mask_email(email: str | None) -> str | None:
    """z***@example.com."""
    if not email or "@" not in email:
        return None
    user, _, domain = email.rpartition("@")
    return f"{user[:1]}***@{domain}"


def mask_id_number(number: str | None) -> str | None:
    """110***********1234: the area's first three and the last four kept."""
    if not number:
        return None
    return number[:3] + "*" * (len(number) - 7) + number[-4:] if len(number) > 7 else "****"


def mask(text: str) -> str:
    """Mobile numbers, ID numbers and e-mail addresses in ``text``, partly masked."""
    if not _CANDIDATE.search(text):
        return text
    text = EMAIL.sub(lambda m: mask_email(m.group()) or MASK, text)
    text = ID_NUMBER.sub(lambda m: mask_id_number(m.group()) or MASK, text)
    return MOBILE.sub(lambda m: mask_phone(m.group()) or MASK, text)
