"""`hotline webhooks list|dead|replay|enable`: the integrators' endpoints and what was given
up sending to them (docs/cli.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.cli_common import EXIT_NOT_FOUND, moment, print_json
from gateway.contract.config import Config
from gateway.contract.kinds import WEBHOOK
from gateway.core.views import iso_utc
from store.db import make_sessionmaker
from store.models import Letter, OutboxMessage, WebhookCursor


def add_parsers(commands: Any) -> None:
    hooks = commands.add_parser("webhooks", help="dead-lettered webhooks and disabled endpoints")
    actions = hooks.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="each endpoint: enabled or not, messages waiting")
    listing.add_argument("--json", action="store_true", help="one JSON array")
    dead = actions.add_parser("dead", help="the dead-lettered messages, newest first")
    dead.add_argument("--endpoint")
    dead.add_argument("--limit", type=int, default=100)
    dead.add_argument("--json", action="store_true", help="one JSON array")
    replay = actions.add_parser("replay", help="send dead-lettered webhooks again")
    replay.add_argument("--endpoint")
    replay.add_argument("--since", type=moment, help="ISO date or time; local time if no zone")
    enable = actions.add_parser("enable", help="re-enable an endpoint that answered 410")
    enable.add_argument("endpoint")


def webhooks_command(config: Config, args: argparse.Namespace) -> int:
    from gateway.engine import webhooks
    from gateway.engine.database import engine_for

    sessions = make_sessionmaker(engine_for(config))
    if args.action in ("list", "dead"):
        with sessions() as session:
            if args.action == "list":
                rows = _endpoints(session, [e.name for e in config.webhooks.endpoints])
            else:
                rows = _dead(session, args.endpoint, max(1, args.limit))
        if args.json:
            print_json(rows)
        else:
            _print(rows, args.action)
        return 0
    if args.action == "replay":
        since = args.since
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=config.zone)
        print(f"queued {webhooks.replay(sessions, args.endpoint, since)} webhook(s) again")
        return 0
    try:
        webhooks.enable(sessions, args.endpoint)
    except LookupError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(f"{args.endpoint}: enabled")
    return 0


def _endpoints(session: Session, configured: list[str]) -> list[dict[str, Any]]:
    """The configured endpoints, then any the database still knows that config no longer
    names (their dead letters can still be looked at)."""
    cursors = {c.endpoint: c for c in session.scalars(select(WebhookCursor))}
    counts: dict[tuple[str, str], int] = {
        (destination, status): n
        for destination, status, n in session.execute(
            select(OutboxMessage.destination, OutboxMessage.status, func.count())
            .where(OutboxMessage.kind == WEBHOOK, OutboxMessage.status.in_(("pending", "failed")))
            .group_by(OutboxMessage.destination, OutboxMessage.status)
        )
    }
    names = [*configured, *sorted(set(cursors) - set(configured))]
    rows = []
    for name in names:
        cursor = cursors.get(name)
        disabled = cursor.disabled_at if cursor is not None else None
        rows.append(
            {
                "endpoint": name,
                "configured": name in configured,
                "enabled": disabled is None,
                "disabled_at": iso_utc(disabled) if disabled else None,
                "disabled_reason": cursor.disabled_reason if cursor is not None else None,
                "last_event_id": cursor.last_event_id if cursor is not None else None,
                "pending": counts.get((name, "pending"), 0),
                "dead_lettered": counts.get((name, "failed"), 0),
            }
        )
    return rows


def _dead(session: Session, endpoint: str | None, limit: int) -> list[dict[str, Any]]:
    """The given-up messages without their payloads (sealed: they may carry PII)."""
    query = (
        select(OutboxMessage, Letter.tracking_number)
        .outerjoin(Letter, Letter.id == OutboxMessage.letter_id)
        .where(OutboxMessage.kind == WEBHOOK, OutboxMessage.status == "failed")
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(limit)
    )
    if endpoint is not None:
        query = query.where(OutboxMessage.destination == endpoint)
    return [
        {
            "id": message.id,
            "endpoint": message.destination,
            "tracking_number": number,
            "created_at": iso_utc(message.created_at),
            "attempts": message.attempts,
            "last_error": message.last_error,
        }
        for message, number in session.execute(query)
    ]


def _print(rows: list[dict[str, Any]], action: str) -> None:
    for row in rows:
        if action == "list":
            state = "enabled" if row["enabled"] else f"disabled ({row['disabled_reason']})"
            print(
                f"{row['endpoint']}  {state}  pending {row['pending']}  "
                f"dead-lettered {row['dead_lettered']}"
                + ("" if row["configured"] else "  (not in the config)")
            )
        else:
            error = (row["last_error"] or "")[:80]
            print(
                f"{row['id']}  {row['endpoint']}  {row['tracking_number'] or '-'}  "
                f"{row['created_at']}  tries {row['attempts']}  {error}"
            )
