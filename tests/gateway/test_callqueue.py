"""The call queue in the database (gateway/core/callqueue.py), on SQLite and PostgreSQL:
first come first served across workers, worker processes joining callers at once never
double-offer a seat, a dead worker's callers swept, each action handed out once, the seats
table's presence followed, and the figures from the calls' history."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from gateway.contract.config import AcdSection, SeatsConfig, load_config
from gateway.core import seats
from gateway.core.acd import (
    AcdConfig,
    Action,
    AnnouncePosition,
    CallEnded,
    CallerHungUp,
    CallerJoined,
    CancelOffer,
    Connected,
    MarkMissed,
    Offer,
    OfferAnswered,
    OfferTimedOut,
    SeatNotAnswering,
    SeatRegistration,
    Tick,
)
from gateway.core.callqueue import CallQueue, acd_config
from gateway.core.queue_figures import QueueFigures, SeatFigures, queue_figures
from gateway.frontends.console import accounts
from store.db import make_engine, make_sessionmaker
from store.models import QueuedCall
from tests.conftest import PII

T0 = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)
AT = T0.timestamp()
CONFIG = AcdConfig(
    priorities=("elderly", "normal"),
    ring_timeout_seconds=15,
    max_wait_seconds=600,
    announce_every_seconds=30,
    not_answering_pause_seconds=120,
)
SEATS = ("8001", "8002", "8003", "8004", "8005")
SPAWN = multiprocessing.get_context("spawn")


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> float:
        """Set the clock ``seconds`` after T0 and give that time for an event."""
        self.now = T0 + timedelta(seconds=seconds)
        return self.now.timestamp()


@dataclass
class Desk:
    queue: CallQueue
    clock: Clock
    engine: Engine
    registered: set[str] = field(default_factory=lambda: set(SEATS))

    def state(self, seat: str, state: str) -> None:
        """What the console or `hotline seats state` does: only the seats table changes."""
        with make_sessionmaker(self.engine).begin() as session:
            seats.set_state(session, seat, state, now=self.clock.now, actor="test")


def add_seats(engine: Engine, names: tuple[str, ...], state: str = "available") -> None:
    with make_sessionmaker(engine).begin() as session:
        for n, name in enumerate(names):
            user = f"op{n}"
            accounts.add_user(session, user, user, "operator", "Pw-long-enough-1", T0)
            seats.add(session, name, user, SeatsConfig(), now=T0, actor="test")
            seats.set_state(session, name, state, now=T0, actor="test")


@pytest.fixture
def desk(engine: Engine) -> Iterator[Desk]:
    """Seats 8001 and 8002 signed in and registered; no caller yet."""
    add_seats(engine, SEATS[:2])
    clock = Clock()
    queue = CallQueue(make_sessionmaker(engine), CONFIG, clock, owner_timeout_seconds=10)
    assert queue.handle(Tick(AT), registered={"8001", "8002"}) == []
    yield Desk(queue, clock, engine, {"8001", "8002"})


def waiting(queue: CallQueue) -> list[str]:
    return [caller.call_id for caller in queue.snapshot().waiting]


def history(engine: Engine) -> list[tuple[str, str | None, str | None, float | None]]:
    with make_sessionmaker(engine)() as session:
        calls = session.scalars(select(QueuedCall).order_by(QueuedCall.id))
        return [(c.call_id, c.outcome, c.seat, c.waited_seconds) for c in calls]


def test_callers_of_several_workers_are_served_first_come_first_served(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    assert queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w1") == [
        Offer("c1", "8001", 15)
    ]
    assert queue.handle(CallerJoined("c2", "normal", clock.at(2)), "w2") == [
        Offer("c2", "8002", 15)
    ]
    assert queue.handle(CallerJoined("c3", "normal", clock.at(3)), "w3") == [
        AnnouncePosition("c3", 2)
    ]
    assert queue.handle(CallerJoined("c4", "normal", clock.at(4)), "w1") == [
        AnnouncePosition("c4", 3)
    ]
    # An elderly caller goes before the normal ones still waiting.
    assert queue.handle(CallerJoined("c5", "elderly", clock.at(5)), "w2") == [
        AnnouncePosition("c5", 0)
    ]
    assert waiting(queue) == ["c5", "c1", "c2", "c3", "c4"]
    assert queue.handle(OfferAnswered("c1", "8001", clock.at(6)), "w1") == [
        Connected("c1", "8001", 5.0)
    ]
    # The call ends on w1; the freed seat's next caller is w2's, told on w2's next take.
    assert queue.handle(CallEnded("c1", "8001", clock.at(10)), "w1") == []
    assert queue.take("w3") == []
    assert queue.take("w2") == [Offer("c5", "8001", 15)]
    assert queue.take("w2") == []
    assert waiting(queue) == ["c5", "c2", "c3", "c4"]
    assert history(desk.engine) == [
        ("c1", "answered", "8001", 5.0),
        ("c2", None, None, None),
        ("c3", None, None, None),
        ("c4", None, None, None),
        ("c5", None, None, None),
    ]


def test_a_worker_gets_what_others_addressed_to_it_before_its_own_new_actions(
    desk: Desk,
) -> None:
    """w1's caller was offered by w2's event; w1's hang-up must not reach it after the offer's
    cancel, so handle returns the offer first."""
    queue, clock = desk.queue, desk.clock
    desk.state("8002", "on_break")
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w2")
    assert queue.handle(CallerJoined("c2", "normal", clock.at(2)), "w1") == [
        AnnouncePosition("c2", 1)
    ]
    assert queue.handle(CallerHungUp("c1", clock.at(3)), "w2") == [
        CancelOffer("c1", "8001"),
        MarkMissed("c1", "abandoned"),
    ]
    assert queue.handle(CallerHungUp("c2", clock.at(4)), "w1") == [
        Offer("c2", "8001", 15),
        CancelOffer("c2", "8001"),
        MarkMissed("c2", "abandoned"),
    ]


def test_the_seats_table_is_followed_without_the_console_calling_the_queue(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w1")
    desk.state("8001", "on_break")
    # The ringing seat went on break: its caller goes to the other seat at the next event.
    assert queue.handle(Tick(clock.at(2)), "w1") == [
        CancelOffer("c1", "8001"),
        Offer("c1", "8002", 15),
    ]
    desk.state("8002", "signed_out")
    assert queue.handle(Tick(clock.at(3)), "w1") == [
        CancelOffer("c1", "8002"),
        AnnouncePosition("c1", 0),  # first in line, now without a seat
    ]
    assert sorted((s.seat_id, s.presence) for s in queue.snapshot().seats) == [
        ("8001", "break"),
        ("8002", "signed_out"),
    ]
    desk.state("8001", "available")
    assert queue.handle(Tick(clock.at(4)), "w1") == [Offer("c1", "8001", 15)]


def test_a_seat_not_answering_is_told_to_the_console_and_the_next_seat_rings(
    desk: Desk,
) -> None:
    queue, clock = desk.queue, desk.clock
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w1")
    assert queue.handle(OfferTimedOut("c1", "8001", clock.at(9)), "w1") == [Offer("c1", "8002", 15)]
    assert queue.take(None) == [SeatNotAnswering("8001", AT + 9 + 120)]
    assert queue.take(None) == []


def test_registration_comes_as_the_registered_set_or_as_one_event(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w1")
    # 8001's phone unregistered: the registrar's set says so.
    assert queue.handle(Tick(clock.at(2)), "w1", registered={"8002"}) == [
        CancelOffer("c1", "8001"),
        Offer("c1", "8002", 15),
    ]
    assert queue.handle(SeatRegistration("8002", False, clock.at(3)), "w1") == [
        CancelOffer("c1", "8002"),
        AnnouncePosition("c1", 0),
    ]
    # Without a set, each seat keeps the registration it had.
    assert queue.handle(Tick(clock.at(4)), "w1") == []
    assert queue.handle(Tick(clock.at(5)), "w1", registered={"8001"}) == [Offer("c1", "8001", 15)]


def test_the_queues_time_never_runs_back(desk: Desk) -> None:
    """A join stamped before the last event handled (another node's clock) joins behind."""
    queue, clock = desk.queue, desk.clock
    desk.state("8001", "on_break")
    desk.state("8002", "on_break")
    queue.handle(CallerJoined("late", "normal", AT + 20), "w1")
    queue.handle(CallerJoined("early", "normal", AT + 10), "w2")
    assert [(c.call_id, c.joined) for c in queue.snapshot().waiting] == [
        ("late", AT + 20),
        ("early", AT + 20),
    ]
    assert clock.now == T0


def test_a_dead_workers_callers_are_swept_and_its_seat_freed(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "dead")
    queue.handle(CallerJoined("c2", "normal", clock.at(2)), "dead")
    queue.handle(OfferAnswered("c1", "8001", clock.at(3)), "dead")  # its last word
    queue.handle(CallerJoined("c3", "normal", clock.at(4)), "w2")
    queue.handle(CallerJoined("c4", "normal", clock.at(5)), "w2")
    clock.at(13)
    queue.alive("w2")
    assert queue.sweep(T0 + timedelta(seconds=13)) == []  # silent 10 s: not longer
    assert queue.sweep(T0 + timedelta(seconds=14)) == ["c1", "c2"]
    # c1's seat (talking) and c2's (ringing) are free again, for w2's callers.
    assert queue.take("w2") == [Offer("c3", "8001", 15), Offer("c4", "8002", 15)]
    assert waiting(queue) == ["c3", "c4"]
    assert queue.take("dead") == [CancelOffer("c2", "8002"), MarkMissed("c2", "abandoned")]
    assert history(desk.engine)[:2] == [
        ("c1", "answered", "8001", 2.0),
        ("c2", "lost", None, 12.0),
    ]
    assert queue.sweep(T0 + timedelta(seconds=15)) == []
    # A worker started again under its name: its last process's calls and actions are gone.
    queue.handle(CallerJoined("c5", "normal", clock.at(16)), "w3")
    queue.handle(CallerHungUp("c3", clock.at(17)), "w2")  # 8001 rings for c5: told to w3
    clock.at(18)
    assert queue.restart("w3") == ["c5"]
    assert queue.take("w3") == []
    assert [r.call_id for r in queue.snapshot().ringing] == ["c4"]
    assert history(desk.engine)[4] == ("c5", "lost", None, 2.0)


def test_a_worker_that_beats_keeps_its_callers(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    queue.handle(CallerJoined("c1", "normal", clock.at(1)), "w1")
    for second in (9, 18, 27):
        clock.at(second)
        queue.alive("w1")
        assert queue.sweep(clock.now + timedelta(seconds=9)) == []
    assert [r.call_id for r in queue.snapshot().ringing] == ["c1"]


def test_the_figures_of_a_period(desk: Desk) -> None:
    queue, clock = desk.queue, desk.clock
    for n in range(4):
        queue.handle(CallerJoined(f"c{n + 1}", "normal", clock.at(n)), "w1")
    queue.handle(OfferAnswered("c1", "8001", clock.at(5)), "w1")  # waited 5 s
    queue.handle(OfferAnswered("c2", "8002", clock.at(14)), "w1")  # waited 13 s, still talking
    queue.handle(CallerHungUp("c4", clock.at(43)), "w1")  # abandoned after 40 s
    queue.handle(CallEnded("c1", "8001", clock.at(65)), "w1")  # talked 60 s
    queue.handle(OfferAnswered("c3", "8001", clock.at(72)), "w1")  # waited 70 s
    queue.handle(CallEnded("c3", "8001", clock.at(102)), "w1")  # talked 30 s
    queue.handle(CallerJoined("c5", "normal", clock.at(110)), "w1")  # still ringing
    with make_sessionmaker(desk.engine)() as session:
        figures = queue_figures(session, T0, T0 + timedelta(hours=1))
        empty = queue_figures(session, T0 - timedelta(hours=1), T0)
    assert figures.average_wait_seconds == pytest.approx(88 / 3)
    assert replace(figures, average_wait_seconds=None) == QueueFigures(
        finished=4,
        answered=3,
        answered_within=2,
        abandoned=1,
        timed_out=0,
        lost=0,
        average_wait_seconds=None,
        longest_wait_seconds=70.0,
        seats=(SeatFigures("8001", 2, 90.0), SeatFigures("8002", 1, 0.0)),
    )
    rates = (figures.answered_within_rate, figures.answer_rate, figures.abandon_rate)
    assert rates == (0.5, 0.75, 0.25)
    assert (empty.finished, empty.answer_rate, empty.longest_wait_seconds) == (0, None, None)


def test_the_acd_section_of_config_yaml_is_the_cores_config() -> None:
    shipped = load_config(Path(__file__).resolve().parents[2] / "config.yaml").acd
    assert acd_config(shipped) == AcdConfig()
    assert shipped.owner_timeout_seconds == 15
    with pytest.raises(ValueError, match="distinct"):
        AcdSection(priorities=["normal", "normal"])


# Worker processes, each with its own engine, against the same database.


def _joiner(
    url: str, owner: str, calls: list[str], start: Barrier, out: Queue[tuple[str, list[Action]]]
) -> None:
    engine = make_engine(url, pii=PII)
    queue = CallQueue(make_sessionmaker(engine), CONFIG, lambda: datetime.now(UTC))
    start.wait()
    told: list[Action] = []
    for call in calls:
        told += queue.handle(CallerJoined(call, "normal", queue.now()), owner)
    out.put((owner, told))
    engine.dispose()


def _taker(url: str, owner: str, done: ProcessEvent, out: Queue[list[Action]]) -> None:
    engine = make_engine(url, pii=PII)
    queue = CallQueue(make_sessionmaker(engine), CONFIG, lambda: datetime.now(UTC))
    taken: list[Action] = []
    while not done.is_set():
        taken += queue.take(owner)
    taken += queue.take(owner)
    out.put(taken)
    engine.dispose()


def test_thirty_callers_joined_by_three_processes_at_once_get_five_seats_once_each(
    engine: Engine, database_url: str
) -> None:
    add_seats(engine, SEATS)
    queue = CallQueue(make_sessionmaker(engine), CONFIG, lambda: datetime.now(UTC))
    queue.handle(Tick(queue.now()), registered=set(SEATS))
    start, out = SPAWN.Barrier(3), SPAWN.Queue()
    owners = {f"w{n}": [f"w{n}-c{i}" for i in range(10)] for n in range(3)}
    workers = [
        SPAWN.Process(target=_joiner, args=(database_url, owner, calls, start, out))
        for owner, calls in owners.items()
    ]
    for worker in workers:
        worker.start()
    told = dict(out.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    # The order the queue saw them, whichever process won the lock.
    order = [call for call, *_ in history(engine)]
    assert sorted(order) == sorted(call for calls in owners.values() for call in calls)
    offers = sorted(
        (action for actions in told.values() for action in actions if isinstance(action, Offer)),
        key=lambda offer: order.index(offer.call_id),
    )
    assert offers == [Offer(call, seat, 15) for call, seat in zip(order, SEATS, strict=False)]
    assert waiting(queue) == order
    assert [ring.call_id for ring in queue.snapshot().ringing] == order[:5]
    for owner, actions in told.items():
        # Each worker heard exactly about its own callers: an offer or its place in line.
        expected = [
            Offer(call, SEATS[i], 15) if i < 5 else AnnouncePosition(call, i)
            for i, call in enumerate(order)
            if call.startswith(owner + "-")
        ]
        assert actions == expected
        assert queue.take(owner) == []


def test_two_takers_racing_get_every_action_exactly_once(engine: Engine, database_url: str) -> None:
    """No seat: each caller hears the queue shorten until they hang up, in turn."""
    clock = Clock()
    patient = replace(CONFIG, max_wait_seconds=3600)
    queue = CallQueue(make_sessionmaker(engine), patient, clock)
    calls = [f"c{i:02}" for i in range(30)]
    for call in calls:
        queue.handle(CallerJoined(call, "normal", AT), "w1")
    done, out = SPAWN.Event(), SPAWN.Queue()
    takers = [SPAWN.Process(target=_taker, args=(database_url, "w1", done, out)) for _ in "ab"]
    for taker in takers:
        taker.start()
    made: list[Action] = []
    for r, call in enumerate(calls):
        # Each hang-up is due the others' next announcement: 您前面还有N位, one fewer.
        at = clock.at(30 * (r + 1))
        queue.handle(CallerHungUp(call, at))
        made += [MarkMissed(call, "abandoned")]
        made += [AnnouncePosition(later, j) for j, later in enumerate(calls[r + 1 :])]
    done.set()
    taken = [out.get(timeout=120) for _ in takers]
    for taker in takers:
        taker.join(timeout=30)
        assert taker.exitcode == 0
    assert len(made) == 30 + 29 * 30 // 2
    assert Counter(taken[0] + taken[1]) == Counter(made)
    assert max(Counter(taken[0] + taken[1]).values()) == 1
    for mine in taken:
        assert mine == [action for action in made if action in set(mine)]


def _joining_until_killed(url: str, started: ProcessEvent) -> None:
    engine = make_engine(url, pii=PII)
    queue = CallQueue(make_sessionmaker(engine), CONFIG, lambda: datetime.now(UTC))
    for n in range(100_000):
        queue.handle(CallerJoined(f"k-{n:06}", "normal", queue.now()), "killed")
        if n == 5:
            started.set()


def test_a_worker_killed_mid_event_leaves_a_whole_queue_that_goes_on(
    engine: Engine, database_url: str
) -> None:
    """SIGKILL while joining callers as fast as it can: each join is in the queue and its
    history both or neither; the sweep gives them up and frees the seats they rang."""
    add_seats(engine, SEATS[:2])
    queue = CallQueue(make_sessionmaker(engine), CONFIG, lambda: datetime.now(UTC))
    queue.handle(Tick(queue.now()), registered=set(SEATS[:2]))
    started = SPAWN.Event()
    worker = SPAWN.Process(target=_joining_until_killed, args=(database_url, started))
    worker.start()
    assert started.wait(timeout=120)
    worker.kill()
    worker.join(timeout=30)
    assert worker.exitcode == -9
    joined = [call for call, outcome, *_ in history(engine) if outcome is None]
    assert len(joined) >= 6
    assert joined == [f"k-{n:06}" for n in range(len(joined))]
    assert waiting(queue) == joined
    assert [(r.call_id, r.seat_id) for r in queue.snapshot().ringing] == [
        ("k-000000", "8001"),
        ("k-000001", "8002"),
    ]
    later = datetime.now(UTC) + timedelta(seconds=16)
    assert queue.sweep(later) == joined
    assert waiting(queue) == []
    assert {outcome for _, outcome, *_ in history(engine)} == {"lost"}
    assert queue.handle(CallerJoined("after", "normal", queue.now()), "w2") == [
        Offer("after", "8001", 15)
    ]
