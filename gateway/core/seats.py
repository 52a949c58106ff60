"""Operators' phone seats (坐席): who has which SIP account and what state the seat is in.

The SIP password is made here, returned once and never kept: the table holds its digest
HA1, md5("username:realm:password") (RFC 2617 3.2.2.2), which is what Kamailio's auth_db
checks a REGISTER against. The console and `hotline seats` both call these functions; each
change is written to the audit log as the console's administration is.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from gateway.contract.config import SeatsConfig
from store.letters import record_event
from store.models import ConsoleUser, Seat

STATES = ("signed_out", "available", "on_break")
# The console's role that answers calls; a seat of anyone else is refused.
OPERATOR = "operator"
# A SIP user part a desk phone can type: digits (an extension) or [a-z0-9._-].
USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_ALPHABET = string.ascii_letters + string.digits


class SeatNotFound(LookupError):
    """No seat, or no console user, of that name."""


class SeatRefused(ValueError):
    """The change breaks a rule: a taken name, an unknown state, a user who is no operator."""


@dataclass(frozen=True)
class NewPassword:
    """A seat with the password just made for it: shown once, then only its HA1 remains."""

    seat: Seat
    password: str


def ha1(username: str, realm: str, password: str) -> str:
    return hashlib.md5(f"{username}:{realm}:{password}".encode()).hexdigest()


def add(
    session: Session,
    username: str,
    user: str,
    settings: SeatsConfig,
    *,
    now: datetime,
    actor: str,
) -> NewPassword:
    if not USERNAME.fullmatch(username):
        raise SeatRefused(
            f"seat name {username!r}: 1 to 32 of digits, a-z, '.', '_' or '-', "
            "starting with a digit or letter"
        )
    if session.scalar(select(Seat.id).where(Seat.username == username)) is not None:
        raise SeatRefused(f"seat {username!r} exists")
    person = session.scalar(select(ConsoleUser).where(ConsoleUser.username == user))
    if person is None:
        raise SeatNotFound(f"no console user {user!r}")
    _check_operator(person)
    taken = session.scalar(select(Seat.username).where(Seat.user_id == person.id))
    if taken is not None:
        raise SeatRefused(f"console user {user!r} already has seat {taken!r}")
    password = _password(settings.password_length)
    realm = settings.realm
    seat = Seat(
        username=username,
        user=person,
        realm=realm,
        ha1=ha1(username, realm, password),
        state="signed_out",
        state_since=now,
        created_at=now,
        updated_at=now,
    )
    session.add(seat)
    session.flush()
    record_event(
        session, at=now, actor=actor, kind="console.seat_added", seat=username, username=user
    )
    return NewPassword(seat, password)


def reset_password(
    session: Session,
    username: str,
    settings: SeatsConfig,
    *,
    now: datetime,
    actor: str,
) -> NewPassword:
    """A new password, under the configured realm (a changed realm is taken up here)."""
    seat = find(session, username)
    password, realm = _password(settings.password_length), settings.realm
    seat.realm, seat.ha1, seat.updated_at = realm, ha1(username, realm, password), now
    record_event(
        session,
        at=now,
        actor=actor,
        kind="console.seat_password_reset",
        seat=username,
        username=seat.user.username,
    )
    return NewPassword(seat, password)


def remove(session: Session, username: str, *, now: datetime, actor: str) -> None:
    seat = find(session, username)
    record_event(
        session,
        at=now,
        actor=actor,
        kind="console.seat_removed",
        seat=username,
        username=seat.user.username,
    )
    session.delete(seat)


def set_state(session: Session, username: str, state: str, *, now: datetime, actor: str) -> Seat:
    """The seat's state, and since when; the same state again keeps its time."""
    if state not in STATES:
        raise SeatRefused(f"unknown state {state!r}; known: {', '.join(STATES)}")
    seat = find(session, username)
    _check_operator(seat.user)
    if seat.state != state:
        seat.state, seat.state_since, seat.updated_at = state, now, now
        record_event(
            session,
            at=now,
            actor=actor,
            kind="console.seat_state_changed",
            seat=username,
            username=seat.user.username,
            state=state,
        )
    return seat


def find(session: Session, username: str) -> Seat:
    seat = session.scalar(
        select(Seat).where(Seat.username == username).options(joinedload(Seat.user))
    )
    if seat is None:
        raise SeatNotFound(f"no seat {username!r}")
    return seat


def list_seats(session: Session) -> list[Seat]:
    return list(
        session.scalars(select(Seat).options(joinedload(Seat.user)).order_by(Seat.username))
    )


def _check_operator(user: ConsoleUser) -> None:
    if user.role != OPERATOR or not user.active:
        why = "is disabled" if user.role == OPERATOR else f"is a {user.role}, not an operator"
        raise SeatRefused(f"console user {user.username!r} {why}")


def _password(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))
