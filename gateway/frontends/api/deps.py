"""What every route of the REST API is given: the services, a read session, the token's
holder, and the one letter that holder may see (a read of its citizen put on record)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Connection, Engine, select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from gateway.contract import tracking
from gateway.contract.config import ApiConfig
from gateway.core.access import Viewer, visible_to
from gateway.core.workflow import Workflow
from gateway.engine.intake import Intake
from gateway.frontends.api import auth
from store.attachments import AttachmentStore
from store.db import engine_of, reads_like
from store.letters import record_event
from store.models import Letter


@dataclass
class Services:
    settings: ApiConfig
    sessions: sessionmaker[Session]
    files: AttachmentStore
    intake: Intake
    workflow: Workflow
    clock: Callable[[], datetime]

    def __post_init__(self) -> None:
        self.reads = reads_like(self.sessions)
        # Pages read through Core: their rows are columns, never ORM objects.
        self.read_engine: Engine = engine_of(self.reads)


def services_of(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _session(request: Request) -> Iterator[Session]:
    with services_of(request).reads() as s:
        yield s


# The bearer token, as the OpenAPI document's security scheme. auto_error=False: no token,
# or another scheme than Bearer, comes here as None and is the API's own 401 problem.
BEARER = HTTPBearer(
    scheme_name="token", description="An API token (hotline tokens create)", auto_error=False
)
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
REALM = "12345"


def authenticate(
    db: Session | Connection, settings: ApiConfig, bearer: HTTPAuthorizationCredentials | None
) -> auth.Principal:
    """The token's holder, looked up afresh each request: a revoked token stops at once."""
    found = auth.find(db, settings, bearer.credentials) if bearer else None
    if found is None:
        # RFC 6750 §3: the challenge names the error only when a token was given.
        challenge = f'Bearer realm="{REALM}"' + (', error="invalid_token"' if bearer else "")
        raise HTTPException(
            401, "A valid bearer token is required", {"WWW-Authenticate": challenge}
        )
    return found


def _principal(request: Request, s: Db, bearer: Bearer) -> auth.Principal:
    return authenticate(s, services_of(request).settings, bearer)


async def _given(request: Request) -> Services:
    return services_of(request)  # async: FastAPI runs it on the loop, not in a thread


# FastAPI resolves the routes' string annotations in their own modules: they import these.
Db = Annotated[Session, Depends(_session)]
Who = Annotated[auth.Principal, Depends(_principal)]
Given = Annotated[Services, Depends(_given)]


def require(who: auth.Principal, scope: str) -> None:
    if not who.can(scope):
        # RFC 6750 §3.1: insufficient_scope, naming the scope the request needs.
        challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
        raise HTTPException(
            403, f"This token lacks the {scope} scope", {"WWW-Authenticate": challenge}
        )


def viewer(who: auth.Principal) -> Viewer:
    return Viewer.token(who.department, who.can("pii"))


def load(s: Session, who: auth.Principal, number: str) -> Letter:
    letter = s.scalars(
        select(Letter)
        .where(Letter.tracking_number == tracking.normalize(number), visible_to(viewer(who)))
        .options(selectinload(Letter.attachments), selectinload(Letter.events))
    ).one_or_none()
    if letter is None:  # also when it exists but is another department's
        raise HTTPException(404, f"No letter {number}")
    return letter


def audited(services: Services, who: auth.Principal, letter: Letter, **detail: Any) -> None:
    """A read of the citizen on record, committed before it is answered."""
    with services.sessions.begin() as audit:
        record_event(
            audit,
            at=services.clock(),
            actor=f"api:{who.name}",
            kind="pii_read",
            letter=audit.get(Letter, letter.id),
            reason="api",
            **detail,
        )
