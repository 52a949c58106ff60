"""`hotline letters list|show|act`: the stored letters from the command line (docs/cli.md).

list and show should start fast (issue 16): this module imports only what they use; `act`
brings in the routing core when it runs.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.cli_common import EXIT_NOT_FOUND, EXIT_USAGE, moment, print_json
from gateway.contract import tracking
from gateway.contract.config import Config
from gateway.contract.labels import AWAITING_TEXT_LABELS
from gateway.core.access import Sight, citizen_view, letter_assignments
from gateway.core.views import letter_detail, letter_summary
from gateway.engine.database import engine_for
from store import letters
from store.db import make_sessionmaker


def add_parsers(commands: Any, *, reading_only: bool = False) -> None:
    """The `letters` command. ``reading_only``: list and show alone, without -h, for the
    parser gateway/cli.py tries first (act's parser needs the routing core)."""
    helps = not reading_only
    found = commands.add_parser("letters", help="look at stored letters", add_help=helps)
    actions = found.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", add_help=helps)
    listing.add_argument("--channel")
    listing.add_argument("--status")
    listing.add_argument("--since", type=moment, help="ISO date or time; local time if no zone")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")
    show = actions.add_parser("show", add_help=helps)
    show.add_argument("tracking_number")
    show.add_argument("--json", action="store_true")
    show.add_argument(
        "--reveal-pii", metavar="REASON", help="also show the citizen; the read is audited"
    )
    if not reading_only:
        from gateway.core.actions import add_parser as add_action_parser

        add_action_parser(actions)


def letters_command(config: Config, args: argparse.Namespace) -> int:
    sessions = make_sessionmaker(engine_for(config))
    if args.action == "act":
        return _act(config, sessions, args)
    if args.action == "list":
        return _list(config, sessions, args)
    return _show(config, sessions, args)


def _list(config: Config, sessions: Any, args: argparse.Namespace) -> int:
    since = args.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=config.zone)
    with sessions() as session:
        rows = letters.list_letters(
            session,
            letters.LetterFilter(args.channel, args.status, since, args.limit),
        )
        views = [letter_summary(letter) for letter in rows]
    if args.json:
        print_json(views)
        return 0
    for view in views:
        local = datetime.fromisoformat(view["received_at"]).astimezone(config.zone)
        print(
            f"{view['tracking_number']}  {local:%Y-%m-%d %H:%M}  {view['channel']:<5}  "
            f"{view['status']:<10}  {view['subject']}"
        )
    return 0


def _show(config: Config, sessions: Any, args: argparse.Namespace) -> int:
    number = tracking.normalize(args.tracking_number)
    if not tracking.is_valid(number):
        print(f"hotline: {args.tracking_number!r} is not a valid tracking number", file=sys.stderr)
        return EXIT_USAGE
    with sessions.begin() as session:
        letter = letters.find_by_tracking_number(session, number)
        if letter is None:
            print(f"hotline: no letter {number}", file=sys.stderr)
            return EXIT_NOT_FOUND
        view = letter_detail(letter, session.scalars(letter_assignments(letter.id)).all())
        if args.reveal_pii and letter.citizen is not None:
            view["citizen"] = citizen_view(letter.citizen, Sight.FULL)
            letters.record_event(
                session,
                at=datetime.now(UTC),
                actor=f"cli:{getpass.getuser()}",
                kind="pii_read",
                letter=letter,
                reason=args.reveal_pii,
            )
    if args.json:
        print_json(view)
        return 0
    local = datetime.fromisoformat(view["received_at"]).astimezone(config.zone)
    print(f"信件 {view['tracking_number']}  ({view['channel']}, {view['source']})")
    print(
        f"收到: {local:%Y-%m-%d %H:%M:%S}  状态: {view['status']}  类别: {view['category'] or '-'}"
    )
    if view["awaiting_text"]:
        print(AWAITING_TEXT_LABELS[view["awaiting_text"]])
    print(f"主题: {view['subject']}")
    print(view["text"])
    if view["transcript"]:
        print(f"{'识别' if view['text_source'] == 'ocr' else '转写'}: {view['transcript']}")
    for item in view["attachments"]:
        print(f"附件: {item['filename']} ({item['media_type']}, {item['size']} B)")
    if "citizen" in view:
        for key, value in view["citizen"].items():
            if value:
                print(f"来信人 {key}: {value}")
    for held in view["assignments"]:
        due = held["due_at"] and datetime.fromisoformat(held["due_at"]).astimezone(config.zone)
        print(
            f"交办: {held['department_name']} ({held['department']}) "
            f"{'牵头' if held['lead'] else '会办'}  {held['reply_type']}  {held['status']}  "
            f"期限: {f'{due:%Y-%m-%d %H:%M}' if due else '-'}"
        )
    for event in view["events"]:
        at = datetime.fromisoformat(event["at"]).astimezone(config.zone)
        print(f"  {at:%Y-%m-%d %H:%M:%S}  {event['kind']:<10} {event['actor']}")
    return 0


def _act(config: Config, sessions: Any, args: argparse.Namespace) -> int:
    from gateway.core.actions import ACTIONS, missing_option, promised_moment
    from gateway.core.workflow import WorkflowError
    from gateway.engine.dispatch import workflow_for

    number = tracking.normalize(args.tracking_number)
    if not tracking.is_valid(number):
        print(f"hotline: {args.tracking_number!r} is not a valid tracking number", file=sys.stderr)
        return EXIT_USAGE
    missing = missing_option(args)
    if missing is not None:
        print(f"hotline: {args.verb} needs {missing}", file=sys.stderr)
        return EXIT_USAGE
    if args.promised_at is not None:
        try:
            args.promised_at = promised_moment(
                args.promised_at, config.zone, config.deadlines.day_end
            )
        except ValueError as exc:
            print(f"hotline: {exc}", file=sys.stderr)
            return EXIT_USAGE
    workflow = workflow_for(config, lambda: datetime.now(UTC))
    try:
        with sessions.begin() as session:
            workflow.sync_departments(session)
            letter = letters.find_by_tracking_number(session, number)
            if letter is None:
                print(f"hotline: no letter {number}", file=sys.stderr)
                return EXIT_NOT_FOUND
            ACTIONS[args.verb](workflow, session, letter, args, args.actor)
            status = letter.status
    except WorkflowError as exc:
        print(f"hotline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{number}: {status}")
    return 0
