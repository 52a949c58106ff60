"""Offers per second of the call queue's pure core (gateway/core/acd.py) against a plain
deque FIFO fed the same events in the same run: what the rules (classes, idle-longest seat,
ring timeouts, announcements, max wait) cost per decision.

    .venv/bin/python -m benchmarks.acd [--callers 60] [--seats 20] [--rounds 20] [--seed 1]

A seeded simulation makes the trace once: callers arriving over ten minutes (one in five of
the elderly class), seats that answer after 1-8 s or, one offer in ten, not at all, talk
times of 1-4 minutes, callers who hang up after 20 s-5 min, a tick every second. The core's
actions drive the simulation. Every offer is then checked by rules written here again, not
by the core: the seat was fit and the idle longest of those free, the caller the first of the
queue not ringing; an offer that fails is printed as a failure and not counted. The timed
part replays the trace through ``step`` and must give the same actions, or nothing counts.

The baseline is a deque of callers and a deque of free seats, paired whenever both hold
someone; it is fed the same joins, hang-ups and seat frees and each pairing is checked to be
the earliest caller and the earliest free seat.
"""

from __future__ import annotations

import argparse
import heapq
import random
import time
from collections import deque
from dataclasses import dataclass, field

from gateway.core.acd import (
    AcdConfig,
    Action,
    CallEnded,
    CallerHungUp,
    CallerJoined,
    CancelOffer,
    Connected,
    Event,
    MarkMissed,
    Offer,
    OfferAnswered,
    OfferMessageOrCallback,
    QueueState,
    SeatPresenceChanged,
    SeatRegistration,
    Tick,
    available,
    step,
)

CONFIG = AcdConfig(ring_timeout_seconds=15, max_wait_seconds=180, announce_every_seconds=30)


@dataclass(order=True)
class _Due:
    at: float
    order: int
    event: Event = field(compare=False)


def simulate(callers: int, seats: int, seed: int) -> list[Event]:
    """The trace: the events the world sent, in order, as the core's actions made them."""
    rnd = random.Random(seed)
    due: list[_Due] = []
    count = 0

    def later(event: Event) -> None:
        nonlocal count
        count += 1
        heapq.heappush(due, _Due(event.at, count, event))

    for n in range(seats):
        later(SeatRegistration(f"s{n:02}", True, 0))
        later(SeatPresenceChanged(f"s{n:02}", "signed_in", rnd.uniform(0, 5)))
    for n in range(callers):
        joined = rnd.uniform(5, 600)
        later(CallerJoined(f"c{n:03}", "elderly" if rnd.random() < 0.2 else "normal", joined))
        later(CallerHungUp(f"c{n:03}", joined + rnd.uniform(20, 300)))
    for second in range(0, 1800):
        later(Tick(float(second)))
    trace: list[Event] = []
    state, gone = QueueState(), set()
    while due:
        event = heapq.heappop(due).event
        if isinstance(event, CallerHungUp) and event.call_id in gone:
            continue  # answered and done, or already off the queue
        trace.append(event)
        state, actions = step(CONFIG, state, event)
        for action in actions:
            if isinstance(action, Offer) and rnd.random() < 0.9:
                later(OfferAnswered(action.call_id, action.seat_id, event.at + rnd.uniform(1, 8)))
            elif isinstance(action, Connected):
                gone.add(action.call_id)
                later(CallEnded(action.call_id, action.seat_id, event.at + rnd.uniform(60, 240)))
            elif isinstance(action, MarkMissed | OfferMessageOrCallback):
                gone.add(action.call_id)
                if isinstance(action, OfferMessageOrCallback):
                    later(CallerHungUp(action.call_id, event.at + 5))
    return trace


def check(before: QueueState, after: QueueState, actions: tuple[Action, ...], at: float) -> int:
    """How many of the step's offers keep the rules; raises on one that does not."""
    offers = [a for a in actions if isinstance(a, Offer)]
    if not offers:
        return 0
    ended = {a.call_id for a in actions if isinstance(a, CancelOffer)}
    rung = {r.call_id for r in before.ringing} - ended
    seats = {s.seat_id: s for s in after.seats}
    busy = {r.seat_id for r in before.ringing if r.call_id not in ended}
    free = sorted(
        (s.idle_since, s.seat_id) for s in after.seats if s.seat_id not in busy and available(s, at)
    )
    # Those who left in the step are gone from ``after``; those who joined are in it.
    queue = [
        c.call_id
        for c in sorted(after.waiting, key=lambda c: (c.rank, c.joined))
        if c.call_id not in rung and not c.choosing
    ]
    for index, offer in enumerate(offers):
        seat = seats[offer.seat_id]
        if not available(seat, at) or (seat.idle_since, seat.seat_id) != free[index]:
            raise AssertionError(f"{offer}: not the free seat idle longest")
        if offer.call_id != queue[index]:
            raise AssertionError(f"{offer}: not the first caller waiting ({queue[index]})")
    return len(offers)


def replay(trace: list[Event]) -> tuple[int, list[tuple[Action, ...]]]:
    state, replies = QueueState(), []
    for event in trace:
        state, actions = step(CONFIG, state, event)
        replies.append(actions)
    return sum(isinstance(a, Offer) for r in replies for a in r), replies


def baseline(trace: list[Event]) -> int:
    """Pairings a bare FIFO makes from the same joins, hang-ups and seat frees, checked."""
    waiting: deque[str] = deque()
    free: deque[str] = deque()
    busy: set[str] = set()
    paired = 0
    for event in trace:
        match event:
            case CallerJoined(call_id=call_id):
                waiting.append(call_id)
            case CallerHungUp(call_id=call_id) if call_id in waiting:
                waiting.remove(call_id)
            case SeatPresenceChanged(seat_id=seat_id):
                free.append(seat_id)
            case CallEnded(seat_id=seat_id) if seat_id in busy:
                busy.discard(seat_id)
                free.append(seat_id)
        while waiting and free:
            first_caller, first_seat = waiting[0], free[0]
            call_id, seat_id = waiting.popleft(), free.popleft()
            if (call_id, seat_id) != (first_caller, first_seat) or seat_id in busy:
                raise AssertionError(f"baseline paired {call_id} with {seat_id}")
            busy.add(seat_id)
            paired += 1
    return paired


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=60)
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    trace = simulate(args.callers, args.seats, args.seed)
    state, verified, failures = QueueState(), 0, 0
    expected: list[tuple[Action, ...]] = []
    for event in trace:
        before = state
        state, actions = step(CONFIG, state, event)
        expected.append(actions)
        try:
            verified += check(before, state, actions, event.at)
        except AssertionError as failure:
            failures += 1
            print("failure:", failure)
    answered = sum(isinstance(a, Connected) for r in expected for a in r)
    missed = sum(isinstance(a, MarkMissed | OfferMessageOrCallback) for r in expected for a in r)

    started = time.perf_counter()
    for _ in range(args.rounds):
        offers, replies = replay(trace)
        if replies != expected:
            verified = 0  # not deterministic: nothing counts
    core_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.rounds):
        paired = baseline(trace)
    base_seconds = time.perf_counter() - started

    core_rate = verified * args.rounds / core_seconds
    base_rate = paired * args.rounds / base_seconds
    print(
        f"trace: {len(trace)} events, {args.callers} callers, {args.seats} seats; "
        f"{answered} answered, {missed} missed or timed out; {offers} offers, "
        f"{verified} verified, {failures} failures"
    )
    events_rate = len(trace) * args.rounds / core_seconds
    print(f"core:     {core_rate:10.0f} offers/s  ({events_rate:.0f} events/s)")
    print(f"baseline: {base_rate:10.0f} pairings/s ({paired} pairings a round)")
    print(f"core/baseline: {core_rate / base_rate:.3f}")


if __name__ == "__main__":
    main()
