"""The console's assembly: sign-in and sign-out, and the wrapper every page goes through
(session cookie -> staff, role check, CSRF check on every POST, one transaction)."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from gateway.contract.config import Config
from gateway.contract.labels import (
    AWAITING_TEXT_LABELS,
    CATEGORY_LABELS,
    CHANNEL_LABELS,
    EVENT_LABELS,
    REJECTION_LABELS,
    STATUS_LABELS,
)
from gateway.contract.limits import RateLimiter
from gateway.contract.logs import log_event
from gateway.core.workflow import Workflow
from gateway.frontends.console import (
    accounts,
    admin,
    audit,
    boards,
    callbacks,
    dashboard,
    desk_page,
    desk_record,
    ids,
    letters,
    seats_admin,
)
from gateway.frontends.console.desk import HEADERS, Desk, Handler, NotFound, Tools, page
from gateway.frontends.console.desk_events import DeskEvents
from gateway.frontends.console.memo import Memo
from gateway.frontends.console.scope import HOME, may
from store.attachments import AttachmentStore
from store.db import reads_like
from store.letters import record_event

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
COOKIE = "hotline_console"
LOGIN_COOKIE = "hotline_console_login"  # the sign-in form's own CSRF value
# (path, methods, right, handler) from each page module.
PAGES = (
    *letters.PAGES,
    *boards.PAGES,
    *callbacks.PAGES,
    *dashboard.PAGES,
    *admin.PAGES,
    *seats_admin.PAGES,
    *audit.PAGES,
    *desk_page.PAGES,
    *desk_record.PAGES,
)


class Console:
    def __init__(
        self,
        config: Config,
        sessions: sessionmaker[Session],
        files: AttachmentStore,
        workflow: Workflow,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.settings = config.console
        self.sessions = sessions
        self.reads = reads_like(sessions)
        self.clock = clock
        self.zone: ZoneInfo = config.zone
        # Password guessing from one address across many accounts.
        self.failures_per_ip = RateLimiter(self.settings.max_failed_logins * 10, 3600.0)
        self.templates = Jinja2Templates(directory=HERE / "templates")
        env = self.templates.env
        env.globals.update(
            channels=CHANNEL_LABELS,
            categories=CATEGORY_LABELS,
            statuses=STATUS_LABELS,
            awaiting=AWAITING_TEXT_LABELS,
            events_labels=EVENT_LABELS,
            rejections=REJECTION_LABELS,
            config=config,
        )
        env.filters["local"] = env.globals["local"] = self._local
        self.tools = Tools(config, workflow, files, self.templates, sessions, self.reads, Memo())
        self.desk_events = DeskEvents(self.tools, self.settings, clock, COOKIE)

    def _local(self, moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(self.zone).strftime(fmt) if moment else ""

    def routes(self) -> list[BaseRoute]:
        ids.register()  # before the routes below compile their {..:row} ids
        pages: list[BaseRoute] = [
            Route(path, self._endpoint(handler, right), methods=methods)
            for path, methods, right, handler in PAGES
        ]
        return [
            Route("/console", self.slash, methods=["GET"]),
            Mount(
                "/console",
                routes=[
                    Route("/", self.home, methods=["GET"]),
                    Route("/login", self.login_page, methods=["GET"]),
                    Route("/login", self.login, methods=["POST"]),
                    Route("/logout", self._endpoint(self._logout, None), methods=["POST"]),
                    *pages,
                    Route("/desk/events", self.desk_events.stream, methods=["GET"]),
                    Mount(
                        "/static",
                        # static/vendor is the site's (JsSIP, channels/web/static/vendor).
                        app=StaticFiles(directory=HERE / "static", follow_symlink=True),
                    ),
                ],
            ),
        ]

    async def slash(self, request: Request) -> Response:
        """The console's address as typed without its slash: the site at the root would
        answer it with 404 (the README and every link name /console/)."""
        query = "?" + request.url.query if request.url.query else ""
        return RedirectResponse("/console/" + query, 308, headers=HEADERS)

    # -- every page --------------------------------------------------------------------

    def _endpoint(self, handler: Handler, right: str | None) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            # The console's forms carry no files: one sent is refused (400) unread.
            form = await request.form(max_files=0) if request.method == "POST" else None
            return await run_in_threadpool(self._serve, request, form, handler, right)

        return endpoint

    def _serve(
        self, request: Request, form: FormData | None, handler: Handler, right: str | None
    ) -> Response:
        now = self.clock()
        try:
            with self.reads() as db:
                seen = accounts.current(db, self.settings, request.cookies.get(COOKIE, ""), now)
            if seen.ends or seen.touch:
                with self.sessions.begin() as db:
                    accounts.mark(db, seen, now)
            staff = seen.staff
            if staff is None:
                path = request.url.path + ("?" + request.url.query if request.url.query else "")
                return RedirectResponse(f"/console/login?next={quote(path)}", 303, headers=HEADERS)
            if right is not None and not may(staff, right):
                return self._error(request, staff, 403, "您的角色无权访问此页面。")
            if form is not None and not secrets.compare_digest(
                str(form.get("csrf", "")), staff.csrf
            ):
                return self._error(request, staff, 403, "页面已过期，请返回刷新后重试。")
            # Pages that only show run on a read session: on SQLite they never hold the
            # write lock that intake needs, however long a page takes.
            maker = self.sessions if form is not None else self.reads
            with maker() as db:
                desk = Desk(request, db, staff, form, now, self.tools)
                try:
                    response = handler(desk)
                except NotFound:
                    db.rollback()
                    return self._error(request, staff, 404, "没有这个页面或信件，或您无权查看。")
                db.commit()
                return response
        except SQLAlchemyError as exc:
            log_event(log, "console.database_unavailable", logging.ERROR, error=type(exc).__name__)
            return self._error(request, None, 503, "系统暂时无法访问数据库，请稍后再试。")

    def _error(
        self, request: Request, staff: accounts.Staff | None, status: int, text: str
    ) -> Response:
        return page(self.templates, request, staff, "error.html", status, message=text)

    def error_page(self, request: Request, status: int) -> Response:
        """An address under /console/ that has no page (404), or a failure (500): the
        console's own page, shown without looking up who is signed in."""
        text = "没有这个页面，请检查网址。" if status == 404 else "系统出错了，请稍后再试。"
        return self._error(request, None, status, text)

    # -- signing in and out --------------------------------------------------------------

    async def home(self, request: Request) -> Response:
        return await run_in_threadpool(self._serve, request, None, self._home, None)

    def _home(self, desk: Desk) -> Response:
        return desk.see_other(HOME[desk.staff.role])

    async def login_page(self, request: Request) -> Response:
        return self._login_form(request)

    def _login_form(
        self, request: Request, status: int = 200, problem: str = "", username: str = ""
    ) -> Response:
        value = secrets.token_urlsafe(24)
        response = page(
            self.templates,
            request,
            None,
            "login.html",
            status,
            problem=problem,
            username=username,
            token=value,
            next=_safe_next(request.query_params.get("next", "")),
        )
        self._set_cookie(request, response, LOGIN_COOKIE, value)
        return response

    async def login(self, request: Request) -> Response:
        form = await request.form(max_files=0)
        username = str(form.get("username", "")).strip()
        password = str(form.get("password", ""))
        token = str(form.get("token", ""))
        if not token or not secrets.compare_digest(token, request.cookies.get(LOGIN_COOKIE, "")):
            return self._login_form(request, 403, "页面已过期，请重新登录。", username)
        ip = request.client.host if request.client else "unknown"
        if self.failures_per_ip.blocked(ip):
            return self._login_form(request, 429, "登录失败次数过多，请稍后再试。", username)
        try:
            outcome, cookie = await run_in_threadpool(self._sign_in, username, password, ip)
        except SQLAlchemyError as exc:
            log_event(log, "console.database_unavailable", logging.ERROR, error=type(exc).__name__)
            return self._login_form(request, 503, "系统暂时无法访问数据库，请稍后再试。", username)
        if outcome != "ok":
            self.failures_per_ip.hit(ip)
            problem = {
                "locked": "该账号因多次密码错误已被暂时锁定，请稍后再试或联系管理员。",
                "disabled": "该账号已停用，请联系管理员。",
            }.get(outcome, "用户名或密码错误。")
            return self._login_form(request, 401 if outcome == "wrong" else 403, problem, username)
        target = _safe_next(form.get("next", "")) or "/console/"
        response = RedirectResponse(target, 303, headers=HEADERS)
        self._set_cookie(request, response, COOKIE, cookie)
        response.delete_cookie(LOGIN_COOKIE, path="/console")
        return response

    def _sign_in(self, username: str, password: str, ip: str) -> tuple[str, str]:
        now = self.clock()
        attempt = accounts.check(self.reads(), username, password, now)
        with self.sessions() as db:
            result = accounts.sign_in(db, self.settings, attempt, now)
            kind = {"ok": "console.signed_in", "locked": "console.locked"}.get(
                result.outcome, "console.sign_in_failed"
            )
            # Only a known account is named: a password typed into the name field by
            # mistake must not land in the audit log.
            who = result.user.username if result.user is not None else "(unknown)"
            record_event(
                db,
                at=now,
                actor=f"console:{who}",
                kind=kind,
                outcome=result.outcome,
                ip=ip,
            )
            db.commit()
        log_event(log, kind, user=who, outcome=result.outcome)
        return result.outcome, result.token

    def _logout(self, desk: Desk) -> Response:
        accounts.sign_out(desk.db, desk.staff.session_id, desk.now)
        response = desk.see_other("/console/login")
        response.delete_cookie(COOKIE, path="/console")
        return response

    def _set_cookie(self, request: Request, response: Response, name: str, value: str) -> None:
        """Never read by script, never sent from another site, only to the console, and
        Secure whenever the browser came over https (or always, when configured)."""
        secure = self.settings.secure_cookies or request.url.scheme == "https"
        response.set_cookie(
            name, value, httponly=True, samesite="strict", secure=secure, path="/console"
        )


def _safe_next(target: object) -> str:
    """Only a path inside the console: never an open redirect to another site."""
    text = str(target or "")
    if text.startswith("/console/") and not text.startswith("//") and "\\" not in text:
        return text
    return ""
