"""Bearer tokens for integrators: stored as SHA-256 only, each with scopes and maybe a
department (a department token sees only that department's letters)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from gateway.contract.config import ApiConfig
from store.models import ApiToken

SCOPES = ("read", "write", "act", "pii")


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[str]
    department: str | None

    def can(self, scope: str) -> bool:
        return scope in self.scopes


# Built once: SQLAlchemy then finds it compiled without deriving its cache key each time.
_HOLDER = select(ApiToken.name, ApiToken.scopes, ApiToken.department).where(
    ApiToken.token_hash == bindparam("hash"), ApiToken.revoked_at.is_(None)
)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find(db: Session | Connection, settings: ApiConfig, token: str) -> Principal | None:
    """The holder of ``token``, read from the store on every call (never cached): a token
    revoked by another process stops working with the next request."""
    hashed = digest(token)
    for configured in settings.tokens:
        # Compared in constant time: a token is a password.
        if secrets.compare_digest(configured.sha256, hashed):
            return Principal(configured.name, frozenset(configured.scopes), configured.department)
    row = db.execute(_HOLDER, {"hash": hashed}).one_or_none()
    if row is None:
        return None
    return Principal(row.name, frozenset(row.scopes), row.department)


def create(
    session: Session, name: str, scopes: list[str], department: str | None, now: datetime
) -> str:
    """A new token; it is shown once and only its hash is kept."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scopes {sorted(unknown)}; known: {', '.join(SCOPES)}")
    token = "hk_" + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            name=name,
            token_hash=digest(token),
            scopes=sorted(set(scopes)),
            department=department,
            created_at=now,
        )
    )
    return token


def revoke(session: Session, name: str, now: datetime) -> int:
    rows = session.scalars(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    ).all()
    for row in rows:
        row.revoked_at = now
    return len(rows)
