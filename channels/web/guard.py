"""Abuse resistance without third-party services: signed form tokens and rate limits.

A form token carries when the form was served and a random nonce, signed with the site's
secret together with the browser's own cookie, so another site cannot post the form on a
citizen's behalf (it can neither read the cookie nor forge the signature). The time gives
the minimum fill time that stops most bots, and the nonce is the submission's idempotency
key, so a double submit is one letter. Tokens are stateless: every node behind a balancer
checks them with the same secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from gateway.contract.addresses import in_networks

NONCE_BYTES = 16
COOKIE = "hotline_form"  # the browser's id, which form tokens are bound to
DAY = 86400.0


class TokenError(Exception):
    """Why a form token was not accepted, in words for the citizen."""


@dataclass(frozen=True)
class FormToken:
    issued: float
    nonce: str


def new_browser_id() -> str:
    return secrets.token_urlsafe(NONCE_BYTES)


class FormTokens:
    def __init__(
        self,
        secret: bytes,
        min_fill_seconds: float,
        max_age_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.secret = secret
        self.min_fill_seconds = min_fill_seconds
        self.max_age_seconds = max_age_seconds
        self.clock = clock

    def issue(self, browser: str, nonce: str | None = None) -> str:
        """A token for a form served to ``browser``; a given nonce keeps the form's key."""
        body = f"{int(self.clock())}.{nonce or secrets.token_urlsafe(NONCE_BYTES)}"
        return f"{body}.{self._sign(body, browser)}"

    def check(self, token: str, browser: str | None) -> FormToken:
        issued_text, _, rest = token.partition(".")
        nonce, _, signature = rest.partition(".")
        # ASCII only: compare_digest raises TypeError for a str that is not.
        if not (token.isascii() and issued_text.isdigit() and nonce and signature):
            raise TokenError("表单无效，请刷新页面后重新填写。")
        if browser is None:
            raise TokenError("请允许浏览器使用Cookie后重新提交。")
        expected = self._sign(f"{issued_text}.{nonce}", browser)
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            raise TokenError("表单无效，请刷新页面后重新填写。")
        age = self.clock() - int(issued_text)
        if age > self.max_age_seconds:
            raise TokenError("表单已过期，请再次提交。")
        if age < self.min_fill_seconds:
            raise TokenError("提交过快，请确认填写内容后再次提交。")
        return FormToken(int(issued_text), nonce)

    def _sign(self, body: str, browser: str) -> str:
        digest = hmac.new(self.secret, f"{body}.{browser}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()


def client_ip(request: Request, trusted_proxies: list[str]) -> str:
    """The citizen's address: X-Forwarded-For is believed only from a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    forwarded = request.headers.get("x-forwarded-for")
    if not forwarded or not in_networks(peer, trusted_proxies):
        return peer
    # The right-most address not our own proxies' is the one the nearest proxy saw.
    for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
        if not in_networks(hop, trusted_proxies):
            return hop
    return peer


def browser_of(request: Request) -> str:
    """The browser's own id, kept across forms so several open tabs all stay valid."""
    known = request.cookies.get(COOKIE, "")
    return known if 16 <= len(known) <= 64 and known.isascii() else new_browser_id()


def set_browser_cookie(request: Request, response: Response, browser: str) -> None:
    response.set_cookie(
        COOKIE,
        browser,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=int(DAY),
    )
