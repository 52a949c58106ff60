"""The call queue's figures for a period, from ``queued_calls`` (gateway/core/callqueue.py):
GB/T 33358's answered within 15 s, answer and abandon rates, waits, each seat's calls.

A caller counts in the period they joined the queue, once they have left it (answered,
abandoned, timed out, left a message, or lost with their worker); callers still waiting
count nowhere yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from store.models import QueuedCall

SERVICE_SECONDS = 15.0  # GB/T 33358: a call answered within 15 seconds


@dataclass(frozen=True)
class SeatFigures:
    seat: str
    handled: int  # calls answered
    talk_seconds: float  # of those calls already ended


@dataclass(frozen=True)
class QueueFigures:
    finished: int  # callers who left the queue, by any way
    answered: int
    answered_within: int  # within ``service_seconds``
    abandoned: int  # hung up while waiting
    timed_out: int  # past max wait: a callback (queue_timeout) or a message
    lost: int  # their worker died
    average_wait_seconds: float | None  # of answered calls (the average speed of answer)
    longest_wait_seconds: float | None  # of every caller, answered or not
    seats: tuple[SeatFigures, ...]  # by seat name

    @property
    def answered_within_rate(self) -> float | None:
        return _share(self.answered_within, self.finished)

    @property
    def answer_rate(self) -> float | None:
        return _share(self.answered, self.finished)

    @property
    def abandon_rate(self) -> float | None:
        return _share(self.abandoned, self.finished)


def queue_figures(
    session: Session, start: datetime, end: datetime, service_seconds: float = SERVICE_SECONDS
) -> QueueFigures:
    """Callers who joined in [start, end)."""
    period = (
        QueuedCall.joined_at >= start,
        QueuedCall.joined_at < end,
        QueuedCall.outcome.is_not(None),
    )
    answered = QueuedCall.outcome == "answered"

    def count(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = session.execute(
        select(
            func.count(),
            count(answered),
            count(answered & (QueuedCall.waited_seconds <= service_seconds)),
            count(QueuedCall.outcome == "abandoned"),
            count(QueuedCall.outcome.in_(("queue_timeout", "message"))),
            count(QueuedCall.outcome == "lost"),
            func.avg(case((answered, QueuedCall.waited_seconds))),
            func.max(QueuedCall.waited_seconds),
        ).where(*period)
    ).one()
    seats = session.execute(
        select(
            QueuedCall.seat,
            func.count(),
            func.coalesce(func.sum(QueuedCall.talk_seconds), 0.0),
        )
        .where(*period, answered)
        .group_by(QueuedCall.seat)
        .order_by(QueuedCall.seat)
    ).all()
    finished, n_answered, within, abandoned, timed_out, lost, average, longest = row
    return QueueFigures(
        finished=int(finished),
        answered=int(n_answered),
        answered_within=int(within),
        abandoned=int(abandoned),
        timed_out=int(timed_out),
        lost=int(lost),
        average_wait_seconds=None if average is None else float(average),
        longest_wait_seconds=None if longest is None else float(longest),
        seats=tuple(SeatFigures(str(seat), int(n), float(talk or 0)) for seat, n, talk in seats),
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None
