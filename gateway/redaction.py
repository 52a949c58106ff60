"""Personal details taken out of text that the public or a log will read.

Citizens write their phone number, ID number or e-mail into the letter itself; a published
letter (选登) or a log line must not carry them. Known details of the letter's own citizen
(name, address) are removed wherever they appear; the patterns catch everyone else's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
_PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.ASCII),  # e-mail
    re.compile(r"(?<!\d)\d{6}(?:18|19|20)\d{2}[01]\d[0-3]\d\d{3}[\dXx](?!\d)"),  # ID card
    re.compile(r"(?<!\d)(?:\+?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}(?!\d)"),  # mobile
    re.compile(r"(?<!\d)0\d{2,3}[\s-]?\d{7,8}(?!\d)"),  # landline with area code
    re.compile(r"(?<!\d)\d{7,8}(?!\d)"),  # landline without it
    re.compile(r"(?<![\dA-Za-z])\d{16,19}(?!\d)"),  # bank card
]


def scrub(text: str, known: Iterable[str | None] = ()) -> str:
    for value in sorted({v.strip() for v in known if v and len(v.strip()) >= 2}, key=len)[::-1]:
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text
