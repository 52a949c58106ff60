"""The citizen's web site (in Chinese, for a phone browser, no JavaScript needed):
write a letter, get its tracking number and code, follow its progress, read published
letters and replies (选登).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import pass_context
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from channels.web.form import LetterForm
from channels.web.formdata import FormError, read_form
from channels.web.guard import (
    COOKIE,
    FormTokens,
    TokenError,
    browser_of,
    client_ip,
    set_browser_cookie,
)
from channels.web.uploads import UploadError, check_upload, size_text
from channels.web.views import (
    progress,
    published_count,
    published_letter,
    published_page,
)
from channels.web.webcall import WebCallPage
from gateway.contract.config import CATEGORIES, Config
from gateway.contract.contact import Accept, Attachment
from gateway.contract.errors import StoreUnavailable
from gateway.contract.labels import CATEGORY_LABELS
from gateway.contract.limits import RateLimiter
from gateway.contract.logs import log_event
from gateway.core.access import citizens_letter
from gateway.engine.keys import load_secret
from store.letters import find_by_external_id
from store.phones import same_number

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
HOUR, DAY = 3600.0, 86400.0
NO_STORE = {"Cache-Control": "no-store"}


class Site:
    def __init__(
        self,
        config: Config,
        accept: Accept,
        reads: sessionmaker[Session],
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.settings = settings = config.channels.web
        self.accept = accept
        self.reads = reads
        self.clock = clock
        self.zone: ZoneInfo = config.zone
        self.districts = list(config.routing.districts)
        self.rejections = dict(config.routing.screening.replies)
        self.secret = secret = load_secret(settings.secret, settings.secret_file)
        max_age = settings.form_max_age_hours * HOUR
        self.letter_tokens = FormTokens(secret, settings.min_fill_seconds, max_age)
        self.lookup_tokens = FormTokens(secret, 0, max_age)
        self.per_ip = RateLimiter(settings.letters_per_ip_per_hour, HOUR)
        self.per_phone = RateLimiter(settings.letters_per_phone_per_day, DAY)
        self.failed_lookups = RateLimiter(settings.lookups_failed_per_ip_per_hour, HOUR)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        self.templates.env.globals["categories"] = [(c, CATEGORY_LABELS[c]) for c in CATEGORIES]
        self.templates.env.globals["url_for"] = self._url_for
        self.webcall = WebCallPage(self) if config.channels.sip.webcall.enabled else None
        self.templates.env.globals["webcall_on"] = self.webcall is not None
        # Whole request: every attachment at its limit plus the text fields.
        self.max_body = settings.max_attachments * settings.max_attachment_bytes + 1024 * 1024

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.form_page, methods=["GET"]),
            Route("/letters", self.submit, methods=["POST"]),
            Route("/track", self.track_page, methods=["GET"]),
            Route("/track", self.track, methods=["POST"]),
            Route("/published", self.published, methods=["GET"]),
            Route("/published/{number}", self.published_one, methods=["GET"]),
            *(self.webcall.routes() if self.webcall is not None else []),
            Mount("/static", app=StaticFiles(directory=HERE / "static"), name="static"),
        ]

    # -- pages ------------------------------------------------------------------------

    @pass_context
    def _url_for(self, context: dict[str, Any], name: str, /, **params: Any) -> str:
        """A link from the configured address, never from the Host header (Starlette's own
        url_for would post a form to whatever Host the request named)."""
        request: Request = context["request"]
        path = str(request.scope["router"].url_path_for(name, **params))
        public = self.settings.public_url.rstrip("/")
        return public + path if public else request.scope.get("app_root_path", "") + path

    def page(
        self, request: Request, name: str, context: dict[str, Any], status: int = 200
    ) -> Response:
        return self.templates.TemplateResponse(
            request, name, context, status_code=status, headers=NO_STORE
        )

    def _form(
        self,
        request: Request,
        form: LetterForm | None = None,
        status: int = 200,
        problem: str = "",
        nonce: str | None = None,
    ) -> Response:
        browser = browser_of(request)
        token = self.letter_tokens.issue(browser, nonce)
        response = self.page(
            request,
            "form.html",
            {
                "form": form or LetterForm.read({}),
                "token": token,
                "problem": problem,
                "districts": self.districts,
                "settings": self.settings,
                "max_size": size_text(self.settings.max_attachment_bytes),
            },
            status,
        )
        set_browser_cookie(request, response, browser)
        return response

    async def form_page(self, request: Request) -> Response:
        return self._form(request)

    async def submit(self, request: Request) -> Response:
        size = request.headers.get("content-length")
        if size is None or not size.isdigit():
            return self._form(request, status=411, problem="请求无效，请重新提交。")
        if int(size) > self.max_body:
            limit = size_text(self.settings.max_attachment_bytes)
            problem = f"附件总大小超出限制（每个文件不超过 {limit}），请减少或压缩附件后重新提交。"
            return self._form(request, status=413, problem=problem)
        try:
            submitted = await read_form(
                request,
                # A few files over the limit still parse, so the citizen is told which rule
                # and keeps the text; the body's size limit bounds them anyway.
                max_files=self.settings.max_attachments + 10,
                max_fields=40,
                max_field_bytes=self.settings.max_field_bytes,
                max_file_bytes=self.settings.max_attachment_bytes,
            )
        except FormError as exc:
            log_event(log, "web.unreadable_form", logging.WARNING, reason=str(exc))
            problem = f"提交内容无法识别，附件最多 {self.settings.max_attachments} 个。"
            return self._form(request, status=400, problem=problem)
        fields, uploads = submitted.fields, submitted.uploads
        form = LetterForm.read(fields, frozenset(submitted.cut))
        try:
            token = self.letter_tokens.check(fields.get("token", ""), request.cookies.get(COOKIE))
        except TokenError as exc:
            # Keep what they typed, with a fresh token and key.
            return self._form(request, form, 400, str(exc))
        if fields.get("homepage"):  # the honeypot: people never see this field
            log_event(log, "web.honeypot", logging.WARNING)
            return self._form(request, form, 400, "提交未通过校验，请重新提交。", token.nonce)
        form.validate(self.settings, self.districts)
        for name, most in form.too_long(self.settings).items():
            chars, cut = len(form.values[name]), name in form.cut
            log_event(log, "web.too_long", field=name, chars=chars, limit=most, cut=cut)
        attachments = await asyncio.to_thread(self._attachments, uploads, form)
        if form.errors:
            return self._form(request, form, 400, "请按提示修改后重新提交。", token.nonce)
        ip = client_ip(request, self.settings.trusted_proxies)
        # One number however it was written (+86 138 1234 5678 is 13812345678).
        phone = same_number(form.values["phone"]) if form.values["phone"] else ""
        if self.per_ip.blocked(ip) or (phone and self.per_phone.blocked(phone)):
            log_event(log, "web.rate_limited", logging.WARNING)
            problem = "提交过于频繁，请稍后再试。您填写的内容已保留。"
            return self._form(request, form, 429, problem, token.nonce)
        self.per_ip.hit(ip)
        if phone:
            self.per_phone.hit(phone)
        contact = form.contact(self.settings.source, token.nonce, self.clock(), ip, attachments)
        try:
            accepted = await self.accept(contact)
        except StoreUnavailable:
            problem = "系统繁忙，暂时无法保存您的来信，请稍后再次提交。您填写的内容已保留。"
            return self._form(request, form, 503, problem, token.nonce)
        code = accepted.verification_code
        if not accepted.created:  # the same form sent again: the same letter, shown again
            code = await asyncio.to_thread(self._code_of, token.nonce)
        return self.page(
            request,
            "submitted.html",
            {"number": accepted.tracking_number, "code": code, "again": not accepted.created},
        )

    def _attachments(
        self, uploads: list[tuple[str, bytes]], form: LetterForm
    ) -> tuple[Attachment, ...]:
        if len(uploads) > self.settings.max_attachments:
            form.errors["attachments"] = (
                f"附件最多 {self.settings.max_attachments} 个，请减少后重新选择。"
            )
            return ()
        checked = []
        for index, (name, data) in enumerate(uploads, start=1):
            try:
                checked.append(check_upload(name, data, index, self.settings.max_attachment_bytes))
            except UploadError as exc:
                form.errors["attachments"] = str(exc) + "请重新选择附件。"
        return tuple(checked)

    def _code_of(self, key: str) -> str | None:
        with self.reads() as session:
            letter = find_by_external_id(session, self.settings.source, key)
            return letter.verification_code if letter else None

    async def track_page(self, request: Request) -> Response:
        return self._track_form(request, number=request.query_params.get("number", ""))

    def _track_form(
        self, request: Request, number: str = "", problem: str = "", status: int = 200
    ) -> Response:
        browser = browser_of(request)
        token = self.lookup_tokens.issue(browser)
        response = self.page(
            request, "track.html", {"token": token, "number": number, "problem": problem}, status
        )
        set_browser_cookie(request, response, browser)
        return response

    async def track(self, request: Request) -> Response:
        data = await request.form(max_files=0, max_fields=10, max_part_size=4096)
        number, code = str(data.get("number") or "").strip(), str(data.get("code") or "")
        try:
            self.lookup_tokens.check(str(data.get("token") or ""), request.cookies.get(COOKIE))
        except TokenError as exc:
            return self._track_form(request, number, str(exc), 400)
        ip = client_ip(request, self.settings.trusted_proxies)
        if self.failed_lookups.blocked(ip):
            return self._track_form(request, number, "查询次数过多，请一小时后再试。", 429)
        found = await asyncio.to_thread(self._progress, number, code)
        if found is None:
            self.failed_lookups.hit(ip)
            problem = "未查到该来信，请核对受理编号和查询码。"
            return self._track_form(request, number, problem, 404)
        return self.page(request, "progress.html", {"letter": found})

    def _progress(self, number: str, code: str) -> dict[str, Any] | None:
        with self.reads() as session:
            letter = citizens_letter(session, number, code)
            return progress(session, letter, self.zone, self.rejections) if letter else None

    async def published(self, request: Request) -> Response:
        page = request.query_params.get("page", "1")
        page_number = int(page) if page.isdigit() and 0 < int(page) < 100_000 else 1
        size = self.settings.published_page_size
        letters, total = await asyncio.to_thread(self._published, page_number, size)
        pages = max(1, -(-total // size))
        context = {"letters": letters, "page": page_number, "pages": pages}
        return self.page(request, "published.html", context)

    def _published(self, page: int, size: int) -> tuple[list[dict[str, Any]], int]:
        with self.reads() as session:
            return published_page(session, page, size, self.zone), published_count(session)

    async def published_one(self, request: Request) -> Response:
        number = request.path_params["number"]
        letter = await asyncio.to_thread(self._published_one, number)
        if letter is None:
            return self.page(request, "missing.html", {}, 404)
        return self.page(request, "published_letter.html", {"letter": letter})

    def _published_one(self, number: str) -> dict[str, Any] | None:
        with self.reads() as session:
            return published_letter(session, number, self.zone)
