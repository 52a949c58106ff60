"""Who is calling, on which dialog, and which number they called, read from the INVITE.

The caller is the P-Asserted-Identity when the packet came from a trust domain (RFC 3325
§5: only a trusted node may assert), else the From; never the packet's source, which is
Kamailio or the telecom's border controller. Addresses are parsed as RFC 3261 §25.1
name-addr / addr-spec: the URI inside the angle brackets, never a ``sip:`` found in a
display name (``"sip:110" <sip:139…>`` is 139…).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.contract import call_tokens

_HEADER = re.compile(r"^(?P<name>[A-Za-z0-9!%*_+`'~.-]+)[ \t]*:[ \t]*(?P<value>.*)$")
# RFC 3261 §7.3.3 compact forms of the headers read here.
_COMPACT = {"f": "from", "t": "to", "i": "call-id"}
_TAG = re.compile(r";\s*tag\s*=\s*([^;,\s]+)", re.IGNORECASE)
# RFC 3966 §5.1.1 visual separators, which say nothing about the number.
_VISUAL = re.compile(r"[-.()]")
# What survives of a user part: the characters of a phone number or SIP user name.
_UNSAFE = re.compile(r"[^0-9A-Za-z+*#._-]")
# letters.external_id is 255 characters; a dialog key stays well inside it.
_MAX_KEY = 200


@dataclass(frozen=True)
class Parties:
    caller: str | None  # the number (or SIP user) that called
    called: str | None  # the number dialled: the Request-URI's user
    dialog: str = ""  # the idempotency key: Call-ID with the caller's From and its tag
    # A browser's call (网上呼叫): Kamailio's X-Hotline-Web, which it strips from everyone
    # else, and the site's token the page sent (gateway/contract/call_tokens.py).
    web: bool = False
    token: str | None = None


def parties(message: str, trust_asserted: bool = True) -> Parties:
    """``trust_asserted``: the packet came from a trust domain, whose P-Asserted-Identity
    is believed; from anyone else it is ignored and the From names the caller."""
    request_line, headers = _headers(message)
    parts = request_line.split(" ")
    request_uri = parts[1] if len(parts) >= 3 else ""
    caller = None
    if trust_asserted:
        # Up to two (RFC 3325 §9.1: one sip/sips, one tel): the first that parses.
        asserted = [_user(address(v)) for v in headers.get("p-asserted-identity", [])]
        caller = next(filter(None, asserted), None)
    from_value = (headers.get("from") or [""])[0]
    caller = caller or _user(address(from_value))
    call_id = (headers.get("call-id") or [""])[0].strip()
    token = next(iter(headers.get(call_tokens.HEADER.lower(), [])), None)
    return Parties(
        caller,
        _user(request_uri),
        dialog_key(call_id, from_value),
        web="x-hotline-web" in headers,
        token=token.strip() if token else None,
    )


def dialog_key(call_id: str, from_value: str) -> str:
    """RFC 3261 §12: a Call-ID is unique only with the From tag (and the caller who chose
    both). Two callers whose phones reuse a Call-ID are two dialogs, two letters; the
    same INVITE delivered again is the same key. The From is hashed: no number in the key."""
    found = _TAG.search(from_value)
    tag = found[1] if found else ""
    who = address(from_value)
    digest = hashlib.sha256(f"{who}\n{tag}".encode()).hexdigest()[:16]
    if len(call_id) > _MAX_KEY:  # still the same key for the same Call-ID
        call_id = hashlib.sha256(call_id.encode()).hexdigest()
    return f"{call_id};from={digest}"


def address(value: str) -> str:
    """The URI of a From/To/P-Asserted-Identity value (RFC 3261 §20.10, §25.1):
    ``"name" <uri>;params``, ``name <uri>`` or a bare ``uri;params``."""
    rest = value.strip()
    if rest.startswith('"'):
        end = _quoted_end(rest)
        if end < 0:
            return ""
        rest = rest[end + 1 :].lstrip()
        if not rest.startswith("<"):
            return ""  # a display name must be followed by <uri>
    if "<" in rest:  # a token display name holds no "<"
        inner = rest[rest.index("<") + 1 :]
        return inner.split(">", 1)[0].strip() if ">" in inner else ""
    # addr-spec: its parameters are the header's (a URI with ';' must be in brackets).
    return rest.split(";", 1)[0].split(",", 1)[0].strip()


def _quoted_end(text: str) -> int:
    """The index of the quote closing the quoted-string at text[0] (\\-escapes, §25.1)."""
    i = 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def _user(uri: str) -> str | None:
    scheme, _, rest = uri.partition(":")
    scheme = scheme.strip().lower()
    if scheme in ("sip", "sips"):
        userinfo, at, host = rest.rpartition("@")
        if not at:
            return None  # sip:host names no user
        # §19.1.2: escaped characters are the characters; no password, no RFC 4967 params.
        user = unquote(userinfo.split(":", 1)[0].split(";", 1)[0])
        if "user=phone" in host.lower().split(";")[1:]:
            user = _VISUAL.sub("", user)  # a telephone-subscriber (§19.1.6)
    elif scheme == "tel":
        user = _VISUAL.sub("", unquote(rest.split(";", 1)[0]))
    else:
        return None  # an unknown scheme names nobody
    return _UNSAFE.sub("", user) or None


def _headers(message: str) -> tuple[str, dict[str, list[str]]]:
    """The request line and each header's values in order (names lowercased, compact
    forms expanded, folded lines joined: RFC 3261 §7.3.1)."""
    lines = message.replace("\r\n", "\n").split("\n")
    unfolded: list[str] = []
    for line in lines[1:]:
        if not line.strip():
            break  # the body starts
        if line[0] in " \t" and unfolded:
            unfolded[-1] += " " + line.strip()
        else:
            unfolded.append(line)
    headers: dict[str, list[str]] = {}
    for line in unfolded:
        found = _HEADER.match(line)
        if found:
            name = found["name"].lower()
            headers.setdefault(_COMPACT.get(name, name), []).append(found["value"])
    return (lines[0] if lines else ""), headers
