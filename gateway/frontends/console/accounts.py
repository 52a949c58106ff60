"""Console accounts: Argon2 passwords, lockout after repeated failures, database sessions.

Sessions live in the database (not in a signed cookie) so that several gateway nodes share
them and signing out or disabling a user ends every session at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.contract.config import ConsoleConfig
from store.models import ConsoleSession, ConsoleUser, Department

ROLES = ("operator", "supervisor", "leader", "department", "admin")
MIN_PASSWORD = 10
_HASHER = PasswordHasher()  # Argon2id with the library's RFC 9106 low-memory profile
# Checked when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """A user that cannot be made or changed as asked; the message says why."""


@dataclass(frozen=True)
class Staff:
    """The signed-in person, as the pages need them (no ORM object outlives a request)."""

    user_id: int
    username: str
    name: str
    role: str
    department_id: int | None
    department: str | None  # its code
    session_id: int
    csrf: str
    department_name: str | None = None  # what the header shows: 市生态环境局, not its code


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"密码至少 {MIN_PASSWORD} 位")


def add_user(
    session: Session,
    username: str,
    name: str,
    role: str,
    password: str,
    now: datetime,
    department: str | None = None,
) -> ConsoleUser:
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
    if (role == "department") != (department is not None):
        raise AccountError("a department clerk, and only a clerk, belongs to a department")
    check_password(password)
    if session.scalar(select(ConsoleUser.id).where(ConsoleUser.username == username)):
        raise AccountError(f"user {username!r} exists")
    department_id = None
    if department is not None:
        department_id = session.scalar(select(Department.id).where(Department.code == department))
        if department_id is None:
            raise AccountError(f"unknown department {department!r}")
    user = ConsoleUser(
        username=username,
        display_name=name,
        password_hash=_HASHER.hash(password),
        role=role,
        department_id=department_id,
        active=True,
        failed_logins=0,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: ConsoleUser, password: str, now: datetime) -> None:
    check_password(password)
    user.password_hash = _HASHER.hash(password)
    user.failed_logins, user.locked_until = 0, None
    end_sessions(session, user.id, now)


@dataclass(frozen=True)
class SignIn:
    user: ConsoleUser | None
    # "ok", "wrong" (name or password: never said which), "locked", "disabled"
    outcome: str
    token: str = ""


@dataclass(frozen=True)
class Attempt:
    """A password checked outside any transaction: Argon2 is slow on purpose, and on SQLite
    a write transaction held that long would hold back intake with every guess."""

    user_id: int | None
    checked_hash: str = ""  # the hash the password was checked against
    matched: bool = False
    new_hash: str | None = None  # the same password under the hasher's current parameters


def check(session: Session, username: str, password: str, now: datetime) -> Attempt:
    """Read the account, close the read, then verify (an unknown name costs the same)."""
    with session:
        found = session.execute(
            select(ConsoleUser.id, ConsoleUser.password_hash, ConsoleUser.locked_until).where(
                ConsoleUser.username == username
            )
        ).one_or_none()
    if found is None:
        _verify(_DUMMY_HASH, password)
        return Attempt(None)
    if found.locked_until is not None and found.locked_until > now:
        return Attempt(found.id, found.password_hash)  # not even checked while locked
    matched = _verify(found.password_hash, password)
    rehash = matched and _HASHER.check_needs_rehash(found.password_hash)
    return Attempt(
        found.id, found.password_hash, matched, _HASHER.hash(password) if rehash else None
    )


def sign_in(session: Session, settings: ConsoleConfig, attempt: Attempt, now: datetime) -> SignIn:
    """Settle a checked attempt in one short write: count a failure (locking the account
    after too many), or open a session."""
    if attempt.user_id is None:
        return SignIn(None, "wrong")
    user = session.get(ConsoleUser, attempt.user_id, with_for_update=True)
    if user is None:
        return SignIn(None, "wrong")
    if user.locked_until is not None and user.locked_until > now:
        return SignIn(user, "locked")
    # A password reset since the check makes the checked password worthless.
    if not attempt.matched or user.password_hash != attempt.checked_hash:
        user.failed_logins += 1
        if user.failed_logins >= settings.max_failed_logins:
            user.locked_until = now + timedelta(minutes=settings.lockout_minutes)
            user.failed_logins = 0
            return SignIn(user, "locked")
        return SignIn(user, "wrong")
    if not user.active:
        return SignIn(user, "disabled")
    if attempt.new_hash is not None:
        user.password_hash = attempt.new_hash
    user.failed_logins, user.locked_until, user.last_login_at = 0, None, now
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=_digest(token),
            user_id=user.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
        )
    )
    return SignIn(user, "ok", token)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Seen:
    """Who a session cookie belongs to, and what its row needs: nothing, a fresh
    last-seen time (once a minute at most), or ending (idle, too old, user disabled)."""

    staff: Staff | None
    session_id: int | None = None
    ends: bool = False
    touch: bool = False


def current(session: Session, settings: ConsoleConfig, token: str, now: datetime) -> Seen:
    """Reads only, so pages can run on a read session; ``mark`` writes what ``Seen`` asks."""
    if not token:
        return Seen(None)
    found = session.execute(
        select(ConsoleSession, ConsoleUser)
        .join(ConsoleUser, ConsoleSession.user_id == ConsoleUser.id)
        .where(ConsoleSession.token_hash == _digest(token), ConsoleSession.ended_at.is_(None))
    ).one_or_none()
    if found is None:
        return Seen(None)
    row, user = found
    idle = now - row.last_seen_at > timedelta(minutes=settings.idle_minutes)
    old = now - row.created_at > timedelta(hours=settings.max_session_hours)
    if idle or old or not user.active:
        return Seen(None, row.id, ends=True)
    department = user.department.code if user.department else None
    staff = Staff(
        user.id,
        user.username,
        user.display_name,
        user.role,
        user.department_id,
        department,
        row.id,
        row.csrf,
        user.department.name if user.department else None,
    )
    return Seen(staff, row.id, touch=now - row.last_seen_at > timedelta(minutes=1))


def mark(session: Session, seen: Seen, now: datetime) -> None:
    values = {"ended_at": now} if seen.ends else {"last_seen_at": now}
    session.execute(
        update(ConsoleSession).where(ConsoleSession.id == seen.session_id).values(**values)
    )


def sign_out(session: Session, session_id: int, now: datetime) -> None:
    session.execute(
        update(ConsoleSession).where(ConsoleSession.id == session_id).values(ended_at=now)
    )


def end_sessions(session: Session, user_id: int, now: datetime) -> None:
    """Every browser of this user must sign in again (password changed, user disabled)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=now)
    )
