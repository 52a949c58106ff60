"""`hotline seats add|list|reset-password|remove|state`: operators' phone seats (坐席), their
SIP accounts and states (gateway/core/seats.py, docs/cli.md)."""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.cli_common import EXIT_NOT_FOUND, EXIT_USAGE, print_json
from gateway.contract.config import Config
from gateway.core import seats
from gateway.core.views import iso_utc
from store.db import make_sessionmaker
from store.models import Seat


def add_parsers(commands: Any) -> None:
    parser = commands.add_parser("seats", help="operators' phone seats (坐席) and their states")
    actions = parser.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="a SIP account for an operator (password shown once)")
    add.add_argument("username", help="the SIP user name: digits or a-z0-9._-")
    add.add_argument("--user", required=True, help="the operator's console user name")
    listing = actions.add_parser("list", help="every seat, its operator and state")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    reset = actions.add_parser("reset-password", help="a new password (shown once)")
    reset.add_argument("username")
    remove = actions.add_parser("remove", help="delete a seat and its credential")
    remove.add_argument("username")
    state = actions.add_parser("state", help="set a seat's state")
    state.add_argument("username")
    # Checked by gateway/core/seats.py, which refuses an unknown state in one line.
    state.add_argument("state", help=" | ".join(seats.STATES))


def seats_command(config: Config, args: argparse.Namespace) -> int:
    from gateway.engine.database import engine_for

    engine = engine_for(config)
    sessions = make_sessionmaker(engine)
    now = datetime.now(UTC)
    actor = f"cli:{getpass.getuser()}"
    try:
        with sessions.begin() as session:
            if args.action == "list":
                rows = [seat_row(seat) for seat in seats.list_seats(session)]
            elif args.action == "add":
                made = seats.add(
                    session, args.username, args.user, config.seats, now=now, actor=actor
                )
            elif args.action == "reset-password":
                made = seats.reset_password(
                    session, args.username, config.seats, now=now, actor=actor
                )
            elif args.action == "remove":
                seats.remove(session, args.username, now=now, actor=actor)
            else:
                seats.set_state(session, args.username, args.state, now=now, actor=actor)
    except seats.SeatNotFound as exc:
        print(f"hotline: {exc.args[0]}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except seats.SeatRefused as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        engine.dispose()  # its connections closed before a test or a caller goes on
    if args.action == "list":
        if args.json:
            print_json(rows)
            return 0
        for row in rows:
            since = datetime.fromisoformat(row["state_since"]).astimezone(config.zone)
            print(f"{row['username']}  {row['user']}  {row['state']} since {since:%Y-%m-%d %H:%M}")
    elif args.action in ("add", "reset-password"):
        # Printed only after the commit: a password shown is a password that works.
        print(made.password)
        print("(shown once: only its digest HA1 is kept)", file=sys.stderr)
    elif args.action == "remove":
        print(f"removed seat {args.username}")
    else:
        print(f"{args.username}: {args.state}")
    return 0


def seat_row(seat: Seat) -> dict[str, Any]:
    """A seat as `seats list --json` shows it: never its HA1 (as good as the password to
    anyone registering with it)."""
    return {
        "username": seat.username,
        "user": seat.user.username,
        "display_name": seat.user.display_name,
        "realm": seat.realm,
        "state": seat.state,
        "state_since": iso_utc(seat.state_since),
        "created_at": iso_utc(seat.created_at),
        "updated_at": iso_utc(seat.updated_at),
    }
