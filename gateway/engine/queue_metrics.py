"""The seats' call queue in /metrics: who waits now, and today's callers by outcome, their
waits and each seat's calls, read from the database at each scrape (every node sees all).

Today is the city's day (``config.timezone``): the counters count callers who joined the
queue since local midnight and have left it, as gateway/core/queue_figures.py does for a
period, and start again at midnight (their ``_created`` says when; ``rate()`` and
``increase()`` take it as a counter reset). Kept cheap: the queue's one row and one
grouped query over today's callers by ``ix_queued_calls_joined_at``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from gateway.core import acd
from gateway.core.queue_figures import SERVICE_SECONDS
from store.db import is_outage
from store.models import QueuedCall

# queued_calls.outcome, each always exposed (0 until one happens) so a ratio never lacks a term.
OUTCOMES = ("answered", "abandoned", "queue_timeout", "message", "lost")
# Upper bounds of the wait histogram, in seconds; GB/T 33358's 15 s among them.
WAIT_BUCKETS = (5.0, 10.0, SERVICE_SECONDS, 20.0, 30.0, 60.0, 120.0, 180.0, 300.0)
# acd.Seat as the gauge counts it: busy first, then presence.
SEAT_STATES = ("talking", "ringing", "signed_in", "break", "signed_out")


@dataclass(frozen=True)
class Tally:
    """Today's callers of one outcome (and, answered, one seat)."""

    outcome: str
    seat: str | None
    calls: int
    wait_seconds: float  # their waits added up
    longest_wait_seconds: float
    within: tuple[int, ...]  # callers who waited at most each of WAIT_BUCKETS
    talk_seconds: float  # of the answered calls already ended


@dataclass(frozen=True)
class QueueReading:
    state: acd.QueueState
    now: datetime
    since: datetime  # the local midnight that starts today's counters
    tallies: tuple[Tally, ...]


QueueReader = Callable[[], QueueReading | None]  # None while the database cannot be reached


def queue_reader(
    snapshot: Callable[[], acd.QueueState],
    reads: sessionmaker[Session],
    clock: Callable[[], datetime],
    zone: ZoneInfo,
) -> QueueReader:
    """``snapshot``: CallQueue.snapshot, the queue as last saved (no lock taken)."""

    def read() -> QueueReading | None:
        now = clock()
        since = datetime.combine(now.astimezone(zone).date(), time(), zone).astimezone(UTC)
        try:
            state = snapshot()
            with reads() as session:
                return QueueReading(state, now, since, tallies(session, since))
        except SQLAlchemyError as exc:
            if is_outage(exc):
                return None  # no figure rather than a false zero
            raise

    return read


def tallies(session: Session, since: datetime) -> tuple[Tally, ...]:
    """Callers who joined at ``since`` or later and have left the queue, by outcome and seat."""
    waited = QueuedCall.waited_seconds
    within = [
        func.coalesce(func.sum(case((waited <= bound, 1), else_=0)), 0) for bound in WAIT_BUCKETS
    ]
    rows = session.execute(
        select(
            QueuedCall.outcome,
            QueuedCall.seat,
            func.count(),
            func.coalesce(func.sum(waited), 0.0),
            func.coalesce(func.max(waited), 0.0),
            func.coalesce(func.sum(QueuedCall.talk_seconds), 0.0),
            *within,
        )
        .where(QueuedCall.joined_at >= since, QueuedCall.outcome.is_not(None))
        .group_by(QueuedCall.outcome, QueuedCall.seat)
    ).all()
    return tuple(
        Tally(
            str(outcome),
            seat,
            int(calls),
            float(wait),
            float(longest),
            tuple(int(n) for n in counts),
            float(talk),
        )
        for outcome, seat, calls, wait, longest, talk, *counts in rows
    )


class QueueCollector(Collector):
    def __init__(self, read: QueueReader) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        reading = self.read()
        if reading is None:
            return
        yield from _now(reading)
        yield from _today(reading)


def _now(reading: QueueReading) -> Iterator[Metric]:
    state, at = reading.state, reading.now.timestamp()
    yield GaugeMetricFamily(
        "hotline_queue_waiting",
        "Callers waiting in the seats' queue now (those a seat is ringing for included).",
        value=len(state.waiting),
    )
    yield GaugeMetricFamily(
        "hotline_queue_ringing", "Callers a seat is ringing for now.", value=len(state.ringing)
    )
    yield GaugeMetricFamily(
        "hotline_queue_oldest_wait_seconds",
        "How long the caller waiting longest now has waited (0 when nobody waits).",
        value=max((at - caller.joined for caller in state.waiting), default=0.0),
    )
    ringing = {ring.seat_id for ring in state.ringing}
    seats = GaugeMetricFamily(
        "hotline_queue_seats",
        "Seats now: talking, ringing, else by presence (signed_in, break, signed_out).",
        labels=["state"],
    )
    counted = dict.fromkeys(SEAT_STATES, 0)
    for seat in state.seats:
        if seat.talking is not None:
            counted["talking"] += 1
        elif seat.seat_id in ringing:
            counted["ringing"] += 1
        else:
            counted[seat.presence] += 1
    for name, n in counted.items():
        seats.add_metric([name], n)
    yield seats


def _today(reading: QueueReading) -> Iterator[Metric]:
    since = reading.since.timestamp()
    calls = CounterMetricFamily(
        "hotline_queue_calls",
        "Callers who joined the seats' queue today (local day) and left it, per outcome: "
        "answered, abandoned (hung up waiting), queue_timeout (callback after the maximum "
        "wait), message (left one after it), lost (their SIP worker died).",
        labels=["outcome"],
    )
    waits = HistogramMetricFamily(
        "hotline_queue_wait_seconds",
        "How long today's callers waited in the queue, per outcome; answered with "
        f'le="{SERVICE_SECONDS:g}" is the service level (answered within 15 s, GB/T 33358).',
        labels=["outcome"],
    )
    longest = GaugeMetricFamily(
        "hotline_queue_longest_wait_seconds",
        "The longest wait of any caller who joined today and left the queue (0 when none).",
    )
    handled = CounterMetricFamily(
        "hotline_queue_seat_calls",
        "Queued calls each seat answered today (a seat appears with its first).",
        labels=["seat"],
    )
    talk = CounterMetricFamily(
        "hotline_queue_seat_talk_seconds",
        "Talk time of each seat's answered calls that have ended, today.",
        labels=["seat"],
    )
    by_outcome = {outcome: _Sum() for outcome in OUTCOMES}
    for tally in reading.tallies:
        by_outcome.setdefault(tally.outcome, _Sum()).add(tally)
        if tally.outcome == "answered" and tally.seat is not None:
            handled.add_metric([tally.seat], tally.calls, created=since)
            talk.add_metric([tally.seat], tally.talk_seconds, created=since)
    for outcome, total in by_outcome.items():
        calls.add_metric([outcome], total.calls, created=since)
        buckets = [(f"{bound:g}", n) for bound, n in zip(WAIT_BUCKETS, total.within, strict=True)]
        buckets.append(("+Inf", total.calls))
        waits.add_metric([outcome], buckets, total.wait_seconds)
    longest.add_metric([], max((t.longest_wait_seconds for t in reading.tallies), default=0.0))
    yield from (calls, waits, longest, handled, talk)


class _Sum:
    def __init__(self) -> None:
        self.calls = 0
        self.wait_seconds = 0.0
        self.within = [0] * len(WAIT_BUCKETS)

    def add(self, tally: Tally) -> None:
        self.calls += tally.calls
        self.wait_seconds += tally.wait_seconds
        self.within = [a + b for a, b in zip(self.within, tally.within, strict=True)]
