"""One console request as the pages see it: the signed-in staff member, an open database
session, the posted form, and how to answer (a page, a redirect, an error)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from gateway.contract.config import Config
from gateway.core.workflow import Actor, Workflow
from gateway.frontends.console.accounts import Staff
from gateway.frontends.console.memo import Memo
from gateway.frontends.console.scope import may
from store.attachments import AttachmentStore
from store.letters import record_event

# Every console answer: never cached, never framed, no script or style from elsewhere.
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}


class NotFound(Exception):
    """No such page or letter, or not one this user may see (the same answer for both)."""


@dataclass(frozen=True)
class Tools:
    """What pages use beyond the request: the core, the files, the config, the templates."""

    config: Config
    workflow: Workflow
    files: AttachmentStore
    templates: Jinja2Templates
    writes: sessionmaker[Session]
    reads: sessionmaker[Session]
    memo: Memo[Any]


@dataclass
class Desk:
    request: Request
    db: Session
    staff: Staff
    form: FormData | None
    now: datetime
    tools: Tools

    @property
    def actor(self) -> Actor:
        return Actor(self.staff.role, self.staff.username, self.staff.department)

    def field(self, name: str) -> str:
        value = self.form.get(name) if self.form is not None else None
        return value.strip() if isinstance(value, str) else ""

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def query(self, name: str) -> str:
        return self.request.query_params.get(name, "").strip()

    def audit(self, kind: str, **detail: Any) -> None:
        """On record in its own transaction, before the response leaves (pages that only
        show run on a read session)."""
        with self.tools.writes.begin() as session:
            record_event(
                session, at=self.now, actor=f"console:{self.staff.username}", kind=kind, **detail
            )

    def render(self, name: str, status: int = 200, **context: Any) -> Response:
        return page(self.tools.templates, self.request, self.staff, name, status, **context)

    def see_other(self, url: str) -> Response:
        return RedirectResponse(url, status_code=303, headers=HEADERS)


def page(
    templates: Jinja2Templates,
    request: Request,
    staff: Staff | None,
    name: str,
    status: int = 200,
    **context: Any,
) -> Response:
    return templates.TemplateResponse(
        request,
        name,
        {"staff": staff, "may": (lambda right: staff is not None and may(staff, right)), **context},
        status_code=status,
        headers=HEADERS,
    )


Handler = Callable[[Desk], Response]
