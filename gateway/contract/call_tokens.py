"""网上呼叫's ticket: the site hands the page a signed token, the page's INVITE carries it,
and the SIP worker that answers checks it with the same secret (channels.web.secret).

It says when it was issued and the phone number the citizen typed on the page, if any, so
the web call's letter names that number and nothing the browser could invent in SIP. Tokens
are stateless: any worker on any node checks them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

HEADER = "X-Hotline-Call-Token"  # the INVITE's header carrying it (the page's JsSIP sets it)
_CONTEXT = b"hotline-webcall-v1"  # keeps these signatures apart from the form tokens'


class CallTokenError(Exception):
    """Why the token was refused (for the log: the caller only hears the call refused)."""


@dataclass(frozen=True)
class CallToken:
    issued: int
    phone: str | None
    nonce: str


def issue(secret: bytes, phone: str | None, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    fields = {"t": issued, "p": phone or "", "n": secrets.token_hex(8)}
    body = json.dumps(fields, separators=(",", ":")).encode()
    encoded = base64.urlsafe_b64encode(body).decode().rstrip("=")
    return f"{encoded}.{_sign(secret, encoded)}"


def check(secret: bytes, token: str, max_age: float, now: float | None = None) -> CallToken:
    encoded, _, signature = token.strip().partition(".")
    if not (token.isascii() and encoded and signature):
        raise CallTokenError("malformed")
    if not hmac.compare_digest(signature, _sign(secret, encoded)):
        raise CallTokenError("bad signature")
    try:
        body = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        issued, phone, nonce = int(body["t"]), str(body["p"]), str(body["n"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CallTokenError("malformed") from exc
    age = (time.time() if now is None else now) - issued
    if not -5 <= age <= max_age:  # a few seconds' clock difference between nodes
        raise CallTokenError("expired")
    return CallToken(issued, phone or None, nonce)


def _sign(secret: bytes, encoded: str) -> str:
    digest = hmac.new(secret, _CONTEXT + b"." + encoded.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()
