"""`hotline letters act`: the routing core's actions from the command line, one per call."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from gateway.core.workflow import Actor, Workflow
from gateway.core.workflow.visits import SATISFACTIONS, SATISFIED, UNSATISFIED
from store.models import Letter

# action -> what it calls: (workflow, session, letter, arguments, actor)
Action = Callable[[Workflow, Session, Letter, argparse.Namespace, Actor], None]
ACTIONS: dict[str, Action] = {
    "assign": lambda w, s, le, a, who: _assign(w, s, le, a, who),
    "answer": lambda w, s, le, a, who: w.answer(s, le, a.text, who, public=a.public),
    "escalate": lambda w, s, le, a, who: w.escalate(s, le, who, a.text or ""),
    "instruct": lambda w, s, le, a, who: w.instruct(s, le, a.text, a.department, a.reply_type, who),
    "reject": lambda w, s, le, a, who: w.reject(s, le, a.reason, who),
    "reclassify": lambda w, s, le, a, who: w.reclassify(s, le, a.category, who),
    "sign": lambda w, s, le, a, who: w.sign(s, le, who),
    "reply": lambda w, s, le, a, who: w.reply(
        s, le, a.text, who, final=not a.interim, public=a.public, promised_at=a.promised_at
    ),
    "opinion": lambda w, s, le, a, who: w.opinion(s, le, a.text, who),
    "return": lambda w, s, le, a, who: w.return_letter(s, le, a.reason, who),
    "extend": lambda w, s, le, a, who: w.request_extension(s, le, a.reason, who),
    "decide-extension": lambda w, s, le, a, who: w.decide_extension(s, le, a.approve, who),
    "force": lambda w, s, le, a, who: w.force(s, le, a.text or "", who),
    "visit": lambda w, s, le, a, who: w.visit(s, le, _satisfaction(a), who, a.text or ""),
}

# action -> the options it cannot do without (checked before the letter is looked up)
NEEDS: dict[str, tuple[str, ...]] = {
    "assign": ("department",),
    "answer": ("text",),
    "instruct": ("text", "department"),
    "reject": ("reason",),
    "reclassify": ("category",),
    "reply": ("text",),
    "opinion": ("text",),
    "return": ("reason",),
    "extend": ("reason",),
}


def missing_option(arguments: argparse.Namespace) -> str | None:
    """The first option the action needs and was not given (blank counts as not given),
    as typed on the command line; None when nothing is missing."""
    for name in NEEDS.get(arguments.verb, ()):
        value = getattr(arguments, name)
        if not value or (isinstance(value, str) and not value.strip()):
            return "--" + name.replace("_", "-")
    if arguments.verb == "reply" and arguments.interim and not arguments.promised_at:
        return "--promised-at"
    return None


def promised_moment(text: str, zone: ZoneInfo, day_end: time) -> datetime:
    """--promised-at in UTC: a date means the end of that working day in the city's time
    (as the console's date field does), a date-time without a zone is the city's time.
    ValueError names what was typed."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"--promised-at: not an ISO date or date-time: {text!r}") from None
    if len(text.strip()) <= len("2026-12-20"):  # a date alone: fromisoformat gave midnight
        moment = datetime.combine(date.fromisoformat(text.strip()), day_end)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def _assign(w: Workflow, s: Session, le: Letter, a: argparse.Namespace, who: Actor) -> None:
    w.assign(s, le, a.department, "assign", a.reply_type, who)


def add_parser(actions: Any) -> None:
    act = actions.add_parser("act", help="take a routing-core action on a letter")
    act.add_argument("tracking_number")
    act.add_argument("verb", choices=sorted(ACTIONS), metavar="ACTION")
    act.add_argument(
        "--as",
        dest="actor",
        required=True,
        type=actor,
        help="ROLE:NAME[@DEPARTMENT], e.g. operator:zhang or department:li@city-admin",
    )
    act.add_argument(
        "--department",
        action="append",
        default=[],
        help="department code (repeat: the first leads a joint letter)",
    )
    act.add_argument(
        "--reply-type",
        default="time_limited",
        choices=["time_limited", "promised", "joint", "urgent"],
    )
    act.add_argument("--text", help="reply, opinion, instruction or note")
    act.add_argument("--reason", help="why: rejection code, return or extension reason")
    act.add_argument("--category")
    act.add_argument("--public", action="store_true", help="the reply may be published")
    act.add_argument("--interim", action="store_true", help="an interim reply (承诺件)")
    act.add_argument(
        "--promised-at",
        metavar="DATE",
        help="completion date an interim reply commits to: a date (the end of that working "
        "day) or a local date-time",
    )
    act.add_argument("--approve", action=argparse.BooleanOptionalAction, default=True)
    act.add_argument("--satisfied", action=argparse.BooleanOptionalAction, default=True)
    act.add_argument(
        "--satisfaction",
        choices=SATISFACTIONS,
        help="the citizen's answer to the visit (--satisfied: satisfied, --no-satisfied: "
        "unsatisfied)",
    )


def _satisfaction(arguments: argparse.Namespace) -> str:
    """--satisfaction as given, else what --satisfied / --no-satisfied say."""
    chosen: str | None = getattr(arguments, "satisfaction", None)
    return chosen or (SATISFIED if arguments.satisfied else UNSATISFIED)


def actor(text: str) -> Actor:
    role, _, rest = text.partition(":")
    name, _, department = rest.partition("@")
    if not role or not name:
        raise argparse.ArgumentTypeError(f"expected ROLE:NAME[@DEPARTMENT], got {text!r}")
    return Actor(role, name, department or None)
