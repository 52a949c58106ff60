"""`hotline jobs list|retry|purge`: the background work an operator looks at (docs/cli.md)."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.cli_common import print_json
from gateway.contract.config import Config
from gateway.contract.kinds import LANES, lane_of
from gateway.core.views import iso_utc
from store import jobs
from store.db import make_sessionmaker
from store.models import Job, Letter, OutboxMessage
from store.outbox import unseal
from store.pii import keyring_of

STATUSES = (jobs.QUEUED, jobs.RUNNING, jobs.FAILED, jobs.DONE)


def add_parsers(commands: Any) -> None:
    found = commands.add_parser("jobs", help="background work: routing, notices, OCR, media")
    actions = found.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="jobs by lane and status, oldest first")
    listing.add_argument("--lane", choices=sorted(LANES))
    listing.add_argument("--status", choices=STATUSES, help="default: all but done")
    listing.add_argument("--limit", type=int, default=50)
    listing.add_argument("--json", action="store_true", help="one JSON array")
    retry = actions.add_parser("retry", help="queue failed jobs again, due now")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], help="job ids")
    which.add_argument("--failed", action="store_true", help="every failed job (of --lane)")
    retry.add_argument("--lane", choices=sorted(LANES))
    worker = actions.add_parser("worker", help="a lane's worker process (serve starts these)")
    worker.add_argument("--lane", required=True, choices=("media", "ocr", "route"))
    purge = actions.add_parser("purge", help="delete done jobs now (serve does it hourly)")
    purge.add_argument(
        "--older-than-days", type=float, help="default: jobs.keep_done_days of the config"
    )


def jobs_command(config: Config, args: argparse.Namespace) -> int:
    from gateway.engine.database import engine_for

    if args.action == "worker":
        from gateway.handlers import run_lane

        return run_lane(config, args.lane)

    sessions = make_sessionmaker(engine_for(config))
    now = datetime.now(UTC)
    if args.action == "purge":
        days = config.jobs.keep_done_days if args.older_than_days is None else args.older_than_days
        purged = jobs.purge_done(sessions, now - timedelta(days=max(0.0, days)))
        print(f"deleted {purged} done job(s) finished more than {days:g} day(s) ago")
        return 0
    query = select(Job).order_by(Job.run_after, Job.id)
    if args.lane:
        query = query.where(Job.kind.in_(LANES[args.lane]))
    if args.action == "retry":
        if args.ids:
            query = query.where(Job.id.in_(args.ids))
        with sessions.begin() as session:
            again = jobs.retry(session, query, now)
            for job in again:
                _reopen_message(session, job, now)
        print(f"queued {len(again)} failed job(s) again")
        return 0 if again or not args.ids else 1
    status = args.status
    query = query.where(Job.status == status if status else Job.status != jobs.DONE)
    with sessions() as session:
        rows = session.execute(
            query.add_columns(Letter.tracking_number)
            .outerjoin(Letter, Letter.id == Job.letter_id)
            .limit(max(1, args.limit))
        ).all()
        found = [_row(job, number) for job, number in rows]
    if args.json:
        print_json(found)
        return 0
    for row in found:
        error = f"  {row['last_error'][:80]}" if row["last_error"] else ""
        print(
            f"{row['id']}  {row['lane']}/{row['kind']}  {row['status']}  "
            f"tries {row['attempts']}  {row['tracking_number'] or '-'}  "
            f"due {row['run_after']}{error}"
        )
    return 0


def _row(job: Job, tracking_number: str | None) -> dict[str, Any]:
    return {
        "id": job.id,
        "lane": lane_of(job.kind),
        "kind": job.kind,
        "status": job.status,
        "attempts": job.attempts,
        "tracking_number": tracking_number,
        "run_after": iso_utc(job.run_after),
        "finished_at": iso_utc(job.finished_at) if job.finished_at else None,
        "last_error": job.last_error,
    }


def _reopen_message(session: Any, job: Job, now: datetime) -> None:
    """A delivery given up left its message failed and sealed (store/outbox.py): open it
    again, or the retried job would find nothing to send."""
    outbox_id = job.payload.get("outbox_id")
    message = session.get(OutboxMessage, outbox_id) if outbox_id is not None else None
    if message is None or message.status != "failed":
        return
    unseal(message, keyring_of(session.get_bind().dialect))
    message.status, message.next_attempt_at = "pending", now
