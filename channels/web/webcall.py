"""网上呼叫 on the site: the page that calls 12345 from the browser, and the call token.

The page (templates/call.html, static/webcall.js with JsSIP) asks for a token first, as the
letter form asks for its own: the browser's cookie-bound form token, the same rate limits,
and the phone number the citizen may give, checked as the form checks it. The call token
(gateway/contract/call_tokens.py) goes in the INVITE; the SIP worker answering checks it and
takes the caller's number from it, never from the browser's SIP.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from channels.web.form import phone_problem
from channels.web.guard import COOKIE, TokenError, browser_of, client_ip, set_browser_cookie
from gateway.contract import call_tokens
from gateway.contract.limits import RateLimiter
from gateway.contract.logs import log_event
from store.phones import same_number

if TYPE_CHECKING:
    from channels.web.site import Site

log = logging.getLogger(__name__)

HOUR = 3600.0
NO_STORE = {"Cache-Control": "no-store"}
JSSIP = "vendor/jssip-3.13.8.min.js"  # built by `make jssip` (channels/web/jssip/)
# The page talks to Kamailio's WebSocket on its own port (ws: / wss:), and plays the call.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' ws: wss:; media-src 'self' blob: mediastream:; "
    "frame-ancestors 'none'; form-action 'self'"
)


class WebCallPage:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.settings = site.config.channels.sip.webcall
        self.per_ip = RateLimiter(self.settings.calls_per_ip_per_hour, HOUR)

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/call", self.page, methods=["GET"], name="call_page"),
            Route("/call/token", self.token, methods=["POST"], name="call_token"),
        ]

    async def page(self, request: Request) -> Response:
        browser = browser_of(request)
        context = {
            "token": self.site.lookup_tokens.issue(browser),
            "jssip": JSSIP,
            "ws_url": self.settings.ws_url,
            "ws_port": self.settings.ws_port,
            "number": self.settings.number,
        }
        response = self.site.page(request, "call.html", context)
        response.headers["Content-Security-Policy"] = CSP
        set_browser_cookie(request, response, browser)
        return response

    async def token(self, request: Request) -> Response:
        """A call token for this browser, or a problem in words for the citizen."""
        data = await request.form(max_files=0, max_fields=5, max_part_size=4096)
        try:
            self.site.lookup_tokens.check(str(data.get("token") or ""), request.cookies.get(COOKIE))
        except TokenError as exc:
            return _problem(str(exc), 400)
        typed = str(data.get("phone") or "").strip()
        problem = phone_problem(typed)
        if problem:
            return _problem(problem, 400)
        phone = same_number(typed) if typed else None
        ip = client_ip(request, self.site.settings.trusted_proxies)
        if self.per_ip.blocked(ip) or (phone and self.site.per_phone.blocked(phone)):
            log_event(log, "web.call_rate_limited", logging.WARNING)
            return _problem("呼叫过于频繁，请稍后再试，或拨打12345热线电话。", 429)
        self.per_ip.hit(ip)
        if phone:
            self.site.per_phone.hit(phone)
        ticket = call_tokens.issue(self.site.secret, phone)
        log_event(log, "web.call_token", with_phone=phone is not None)
        return JSONResponse({"token": ticket, "header": call_tokens.HEADER}, headers=NO_STORE)


def _problem(text: str, status: int) -> Response:
    return JSONResponse({"problem": text}, status_code=status, headers=NO_STORE)
