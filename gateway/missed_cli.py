"""`hotline missed list`: the callback list (漏接回拨) as the console shows it, numbers masked
unless a reason to see them is given, which goes to the audit log (docs/cli.md)."""

from __future__ import annotations

import argparse
import getpass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from gateway.cli_common import print_json
from gateway.contract.config import Config
from gateway.contract.redaction import mask_phone
from gateway.core.views import iso_utc
from store.db import make_sessionmaker
from store.letters import record_event
from store.models import MissedCall


def add_parsers(commands: Any) -> None:
    missed = commands.add_parser("missed", help="missed calls to call back (漏接回拨)")
    actions = missed.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="newest first; callers' numbers masked")
    listing.add_argument("--done", action="store_true", help="those already called back")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true", help="one JSON array")
    listing.add_argument("--reveal-pii", metavar="REASON", help="full numbers; the read is audited")


def missed(config: Config, args: argparse.Namespace) -> int:
    from gateway.engine.database import engine_for

    sessions = make_sessionmaker(engine_for(config))
    called_back = MissedCall.called_back_at
    with sessions.begin() as session:
        calls = session.scalars(
            select(MissedCall)
            .where(called_back.is_not(None) if args.done else called_back.is_(None))
            .options(selectinload(MissedCall.citizen))
            .order_by(MissedCall.at.desc(), MissedCall.id.desc())
            .limit(max(1, args.limit))
        ).all()
        rows = [_row(call, reveal=bool(args.reveal_pii)) for call in calls]
        if args.reveal_pii and calls:
            record_event(
                session,
                at=datetime.now(UTC),
                actor=f"cli:{getpass.getuser()}",
                kind="pii.revealed",
                reason=args.reveal_pii,
                missed_calls=[call.id for call in calls],
            )
    if args.json:
        print_json(rows)
        return 0
    from gateway.frontends.console.callbacks import REASONS

    for row in rows:
        local = datetime.fromisoformat(row["at"]).astimezone(config.zone)
        done = f"  已回拨 {row['called_back_by']}" if row["called_back_at"] else ""
        print(
            f"{row['id']}  {local:%Y-%m-%d %H:%M}  {row['caller'] or '-'}  "
            f"{REASONS.get(row['reason'], row['reason'])}  {row['source']}{done}"
        )
    return 0


def _row(call: MissedCall, *, reveal: bool) -> dict[str, Any]:
    """The call's own key (a SIP Call-ID, a Twilio CallSid) is left out: it may carry the
    caller's number."""
    phone = call.citizen.phone if call.citizen is not None else None
    return {
        "id": call.id,
        "at": iso_utc(call.at),
        "source": call.source,
        "reason": call.reason,
        "caller": phone if reveal else mask_phone(phone),
        "called": call.called,
        "called_back_at": iso_utc(call.called_back_at) if call.called_back_at else None,
        "called_back_by": call.called_back_by,
    }
