"""A day of the seats' call queue played through CallQueue.handle (the path the SIP workers
take), with a fixed clock: the rows of ``queued_calls`` the figures' tests read.

One caller the evening before (abandoned after 10 s, no seat registered yet), then from
10:00 local on the day, with seats 8001 and 8002 (ring timeout 30 s, maximum wait 120 s):

=====  ========  =============================  ======  ============================
call   joined    outcome                        waited  seat, talk
=====  ========  =============================  ======  ============================
c1     +0 s      answered                       5 s     8001, 60 s
c2     +1 s      answered                       15 s    8002, still talking
c3     +2 s      answered                       70 s    8001, 128 s
c4     +3 s      abandoned                      17 s
c5     +4 s      message (after the max wait)   131 s
c6     +6 s      queue_timeout (a callback)     134 s
c7     +7 s      lost (its worker restarted)    23 s
c8     +210 s    still ringing at 8001          —
=====  ========  =============================  ======  ============================

Finished: 7; answered 3, within 15 s 2 (c2 waited exactly 15 s), abandoned 1, timed out 2,
lost 1; average wait of the answered 30 s, longest 134 s; 8001 two calls and 188 s of talk,
8002 one call and none ended. The clock is left at +225 s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine

from gateway.contract.config import SeatsConfig
from gateway.core import seats
from gateway.core.acd import (
    AcdConfig,
    CallEnded,
    CallerChose,
    CallerHungUp,
    CallerJoined,
    OfferAnswered,
    Tick,
)
from gateway.core.callqueue import CallQueue
from gateway.frontends.console import accounts
from store.db import make_sessionmaker

CONFIG = AcdConfig(
    priorities=("elderly", "normal"),
    ring_timeout_seconds=30,
    max_wait_seconds=120,
    announce_every_seconds=30,
    not_answering_pause_seconds=120,
)
SEATS = ("8001", "8002")
SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class Day:
    queue: CallQueue
    clock: Clock
    opened: datetime  # 10:00 local on the day, UTC


def play(engine: Engine, day: date) -> Day:
    """The day above, in the queue on ``engine``, with the seats' operators (op1, op2)."""
    opened = datetime.combine(day, time(10), SHANGHAI).astimezone(UTC)
    evening = datetime.combine(day, time(), SHANGHAI).astimezone(UTC) - timedelta(seconds=60)
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        for seat, user in zip(SEATS, ("op1", "op2"), strict=True):
            accounts.add_user(session, user, user, "operator", "Pw-long-enough-1", evening)
            seats.add(session, seat, user, SeatsConfig(), now=evening, actor="test")
            seats.set_state(session, seat, "available", now=evening, actor="test")
    clock = Clock(evening)
    queue = CallQueue(sessions, CONFIG, clock, owner_timeout_seconds=10)

    def at(base: datetime, seconds: float) -> float:
        clock.now = base + timedelta(seconds=seconds)
        return clock.now.timestamp()

    queue.handle(CallerJoined("y1", "normal", at(evening, 0)), "w1", registered=set())
    queue.handle(CallerHungUp("y1", at(evening, 10)), "w1")
    queue.handle(Tick(at(opened, 0)), registered=set(SEATS))
    for n, joined in ((1, 0), (2, 1), (3, 2), (4, 3), (5, 4)):
        queue.handle(CallerJoined(f"c{n}", "normal", at(opened, joined)), "w1")
    queue.handle(OfferAnswered("c1", "8001", at(opened, 5)), "w1")
    queue.handle(CallerJoined("c6", "normal", at(opened, 6)), "w1")
    queue.handle(CallerJoined("c7", "normal", at(opened, 7)), "w2")
    queue.handle(OfferAnswered("c2", "8002", at(opened, 16)), "w1")
    queue.handle(CallerHungUp("c4", at(opened, 20)), "w1")
    at(opened, 30)
    assert queue.restart("w2") == ["c7"]
    queue.handle(CallEnded("c1", "8001", at(opened, 65)), "w1")  # 8001 is offered c3
    queue.handle(OfferAnswered("c3", "8001", at(opened, 72)), "w1")
    queue.handle(Tick(at(opened, 130)))  # c5 and c6 past the maximum wait: they choose
    queue.handle(CallerChose("c5", "message", at(opened, 135)), "w1")
    queue.handle(CallerChose("c6", "callback", at(opened, 140)), "w1")
    queue.handle(CallEnded("c3", "8001", at(opened, 200)), "w1")
    queue.handle(CallerJoined("c8", "normal", at(opened, 210)), "w1")  # 8001 rings
    at(opened, 225)
    return Day(queue, clock, opened)
