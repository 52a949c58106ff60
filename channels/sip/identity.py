"""Who is calling and which number they called, read from the INVITE itself.

The caller is the P-Asserted-Identity a trunk vouches for, else the From; never the
packet's source, which is Kamailio or the telecom's border controller.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_HEADER = re.compile(r"^(?P<name>[A-Za-z-]+)\s*:\s*(?P<value>.*)$")
_URI = re.compile(r"<?\s*(?:sips?|tel):(?P<user>[^@;>\s]+)", re.IGNORECASE)
# RFC 3261 compact forms.
_COMPACT = {"f": "from", "t": "to", "i": "call-id"}


@dataclass(frozen=True)
class Parties:
    caller: str | None  # the number (or SIP user) that called
    called: str | None  # the number dialled: the Request-URI's user


def parties(message: str) -> Parties:
    lines = message.replace("\r\n", "\n").split("\n")
    request_uri = lines[0].split(" ")[1] if lines and lines[0].count(" ") >= 2 else ""
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line.strip():
            break  # the body starts
        found = _HEADER.match(line)
        if found:
            name = found["name"].lower()
            headers.setdefault(_COMPACT.get(name, name), found["value"])
    caller = _user(headers.get("p-asserted-identity", "")) or _user(headers.get("from", ""))
    return Parties(caller=caller, called=_user(request_uri))


def _user(value: str) -> str | None:
    found = _URI.search(value)
    if not found:
        return None
    user = found["user"]
    # Only the characters a phone number or SIP user name may hold: no header injection.
    cleaned = re.sub(r"[^0-9A-Za-z+*#._-]", "", user)
    return cleaned or None
