"""`hotline console add-user|set-password|users`: console accounts from the command line
(the first admin is made here; the rest can be made on /console/admin/users)."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import Config
from gateway.core.views import iso_utc
from store.db import make_sessionmaker
from store.letters import record_event
from store.models import ConsoleUser, Department

PASSWORD_ENV = "HOTLINE_CONSOLE_PASSWORD"
EXIT_NOT_FOUND, EXIT_USAGE = 1, 2


def add_parsers(commands: Any) -> None:
    console = commands.add_parser("console", help="console users (sign-in accounts)")
    actions = console.add_subparsers(dest="action", required=True)
    add = actions.add_parser(
        "add-user", help=f"add a user; the password from ${PASSWORD_ENV} or asked twice"
    )
    add.add_argument("username")
    add.add_argument("--name", required=True, help="the name shown on pages (姓名)")
    add.add_argument(
        "--role", required=True, help="operator, supervisor, leader, department or admin"
    )
    add.add_argument("--department", help="a department's code (for the department role)")
    password = actions.add_parser(
        "set-password", help=f"a new password (${PASSWORD_ENV} or asked twice); also unlocks"
    )
    password.add_argument("username")
    users = actions.add_parser("users", help="list the users (never their passwords)")
    users.add_argument("--json", action="store_true", help="one JSON array")


def console(config: Config, args: argparse.Namespace, print_json: Callable[[Any], None]) -> int:
    """``print_json`` is the command line's one JSON printer (gateway.cli_common)."""
    from gateway.engine.database import engine_for

    engine = engine_for(config)
    try:
        sessions = make_sessionmaker(engine)
        if args.action == "users":
            with sessions() as session:
                rows = _users(session, datetime.now(UTC))
            if args.json:
                print_json(rows)
            else:
                _print(rows)
            return 0
        return _change(config, args, sessions)
    finally:
        engine.dispose()


def _change(config: Config, args: argparse.Namespace, sessions: sessionmaker[Session]) -> int:
    # Imported here: accounts hashes a dummy password at import (~0.1 s), which every other
    # `hotline` command would pay.
    from gateway.engine.dispatch import workflow_for
    from gateway.frontends.console import accounts

    password = _read_password()
    if password is None:
        return EXIT_USAGE
    now = datetime.now(UTC)
    actor = f"cli:{getpass.getuser()}"
    try:
        with sessions.begin() as session:
            if args.action == "add-user":
                workflow_for(config, lambda: now).sync_departments(session)
                accounts.add_user(
                    session, args.username, args.name, args.role, password, now, args.department
                )
                record_event(
                    session,
                    at=now,
                    actor=actor,
                    kind="console.user_added",
                    username=args.username,
                    role=args.role,
                    department=args.department,
                )
            else:
                user = session.scalars(
                    select(ConsoleUser).where(ConsoleUser.username == args.username)
                ).one_or_none()
                if user is None:
                    print(f"hotline: no console user {args.username!r}", file=sys.stderr)
                    return EXIT_NOT_FOUND
                accounts.set_password(session, user, password, now)
                record_event(
                    session,
                    at=now,
                    actor=actor,
                    kind="console.password_reset",
                    username=args.username,
                    generated=False,
                )
    except accounts.AccountError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    done = "added" if args.action == "add-user" else "password set for"
    print(f"{done} {args.username}")
    return 0


def _read_password() -> str | None:
    """From the environment (scripts), else asked twice without echo; never an argument,
    which any user of the machine could read in the process list."""
    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        print("hotline: the passwords differ", file=sys.stderr)
        return None
    return first


def _users(session: Session, now: datetime) -> list[dict[str, Any]]:
    rows = session.execute(
        select(ConsoleUser, Department.code)
        .outerjoin(Department, Department.id == ConsoleUser.department_id)
        .order_by(ConsoleUser.username)
    )
    found = []
    for user, department in rows:
        if not user.active:
            state = "disabled"
        elif user.locked_until is not None and user.locked_until > now:
            state = "locked"
        else:
            state = "active"
        last = user.last_login_at
        found.append(
            {
                "username": user.username,
                "display_name": user.display_name,
                "role": user.role,
                "department": department,
                "state": state,
                "last_login_at": iso_utc(last) if last else None,
            }
        )
    return found


def _print(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(
            f"{row['username']}  {row['role']}  {row['department'] or '-'}  {row['state']}  "
            f"last sign-in {row['last_login_at'] or '-'}  {row['display_name']}"
        )
