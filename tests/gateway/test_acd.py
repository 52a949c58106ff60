"""The call queue's rules, event by event, and its invariants over random walks."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.core.acd import (
    AcdConfig,
    Action,
    AnnouncePosition,
    CallEnded,
    CallerChose,
    CallerHungUp,
    CallerJoined,
    CancelOffer,
    Connected,
    Event,
    MarkMissed,
    Offer,
    OfferAnswered,
    OfferMessageOrCallback,
    OfferTimedOut,
    QueueState,
    SeatNotAnswering,
    SeatPresenceChanged,
    SeatRegistration,
    TakeMessage,
    Tick,
    available,
    step,
)

CONFIG = AcdConfig(
    priorities=("elderly", "normal"),
    ring_timeout_seconds=15,
    max_wait_seconds=120,
    announce_every_seconds=30,
    not_answering_pause_seconds=300,
)


def feed(
    events: Iterable[Event], state: QueueState | None = None, config: AcdConfig = CONFIG
) -> tuple[QueueState, list[tuple[Action, ...]]]:
    state = state or QueueState()
    replies = []
    for event in events:
        state, actions = step(config, state, event)
        replies.append(actions)
    return state, replies


def seats_ready(*seat_ids: str, at: float = 0) -> QueueState:
    """Seats signed in and registered, idle since ``at`` plus their place in the list."""
    events: list[Event] = []
    for place, seat_id in enumerate(seat_ids):
        events.append(SeatRegistration(seat_id, True, at + place))
        events.append(SeatPresenceChanged(seat_id, "signed_in", at + place))
    state, _ = feed(events)
    return state


def test_a_free_seat_is_offered_the_caller_at_once_and_the_answer_connects_them() -> None:
    state, replies = feed(
        [CallerJoined("c1", "normal", 10), OfferAnswered("c1", "s1", 14)], seats_ready("s1")
    )
    assert replies == [(Offer("c1", "s1", 15),), (Connected("c1", "s1", 4),)]
    assert state.waiting == () and state.ringing == ()
    assert [seat.talking for seat in state.seats] == ["c1"]


def test_the_seat_idle_longest_is_offered_first() -> None:
    state = seats_ready("s1", "s2", "s3")  # idle since 0, 1, 2
    # s1 takes a call and ends it at 50: now the idle longest is s2.
    _, replies = feed(
        [
            CallerJoined("c1", "normal", 10),
            OfferAnswered("c1", "s1", 11),
            CallEnded("c1", "s1", 50),
            CallerJoined("c2", "normal", 60),
            CallerJoined("c3", "normal", 61),
            CallerJoined("c4", "normal", 62),
        ],
        state,
    )
    assert replies[0] == (Offer("c1", "s1", 15),)
    assert replies[3:] == [
        (Offer("c2", "s2", 15),),
        (Offer("c3", "s3", 15),),
        (Offer("c4", "s1", 15),),
    ]


def test_callers_are_served_by_class_then_in_order_of_joining() -> None:
    state, replies = feed(
        [
            CallerJoined("n1", "normal", 1),
            CallerJoined("n2", "normal", 2),
            CallerJoined("e1", "elderly", 3),
            CallerJoined("e2", "elderly", 4),
        ]
    )
    # Positions as they join: an elderly caller goes before every normal one.
    assert replies == [
        (AnnouncePosition("n1", 0),),
        (AnnouncePosition("n2", 1),),
        (AnnouncePosition("e1", 0),),
        (AnnouncePosition("e2", 1),),
    ]
    assert [c.call_id for c in state.waiting] == ["e1", "e2", "n1", "n2"]
    _, replies = feed(
        [
            SeatRegistration("s1", True, 5),
            SeatRegistration("s2", True, 5),
            SeatRegistration("s3", True, 5),
            SeatPresenceChanged("s1", "signed_in", 6),
            SeatPresenceChanged("s2", "signed_in", 7),
            SeatPresenceChanged("s3", "signed_in", 8),
        ],
        state,
    )
    assert replies[3:] == [
        (Offer("e1", "s1", 15),),
        (Offer("e2", "s2", 15),),
        (Offer("n1", "s3", 15),),
    ]


def test_no_seat_is_offered_a_second_call_while_it_rings_or_talks() -> None:
    _, replies = feed(
        [
            CallerJoined("c1", "normal", 1),
            CallerJoined("c2", "normal", 2),
            Tick(10),
            OfferAnswered("c1", "s1", 12),
            Tick(20),
            CallEnded("c1", "s1", 25),
        ],
        seats_ready("s1"),
    )
    assert replies == [
        (Offer("c1", "s1", 15),),
        (AnnouncePosition("c2", 1),),
        (),
        (Connected("c1", "s1", 11),),
        (),
        (Offer("c2", "s1", 15),),
    ]


def test_a_ring_timeout_offers_the_caller_to_the_next_seat_and_pauses_the_first() -> None:
    state, replies = feed(
        [CallerJoined("c1", "normal", 10), Tick(24), Tick(25)], seats_ready("s1", "s2")
    )
    assert replies == [
        (Offer("c1", "s1", 15),),
        (),
        (CancelOffer("c1", "s1"), SeatNotAnswering("s1", 325), Offer("c1", "s2", 15)),
    ]
    # The phone's own timeout says the same without asking to stop the ringing.
    _, replies = feed([OfferTimedOut("c1", "s2", 30), CallerJoined("c2", "normal", 31)], state)
    assert replies == [
        (SeatNotAnswering("s2", 330), AnnouncePosition("c1", 0)),
        (AnnouncePosition("c2", 1),),
    ]


def test_a_seat_not_answering_is_offered_again_after_the_pause_or_signing_in_again() -> None:
    config = AcdConfig(not_answering_pause_seconds=60)
    state, replies = feed([CallerJoined("c1", "normal", 10), Tick(25)], seats_ready("s1"), config)
    assert replies[1] == (
        CancelOffer("c1", "s1"),
        SeatNotAnswering("s1", 85),
        AnnouncePosition("c1", 0),
    )
    _, replies = feed([Tick(84), Tick(85)], state, config)
    assert replies == [(AnnouncePosition("c1", 0),), (Offer("c1", "s1", 15),)]
    _, replies = feed([SeatPresenceChanged("s1", "signed_in", 40)], state, config)
    assert replies == [(Offer("c1", "s1", 15),)]


@pytest.mark.parametrize(
    "events",
    [
        pytest.param([SeatPresenceChanged("s1", "break", 5)], id="on-break"),
        pytest.param([SeatPresenceChanged("s1", "signed_out", 5)], id="signed-out"),
        pytest.param([SeatRegistration("s1", False, 5)], id="unregistered"),
        pytest.param([CallerJoined("x", "normal", 5), OfferAnswered("x", "s1", 6)], id="talking"),
    ],
)
def test_only_signed_in_registered_idle_seats_are_offered(events: list[Event]) -> None:
    state, _ = feed(events, seats_ready("s1"))
    _, replies = feed([CallerJoined("c1", "normal", 10), Tick(20)], state)
    assert replies == [(AnnouncePosition("c1", 0),), ()]


def test_a_seat_going_on_break_in_a_call_is_not_offered_after_it_until_it_signs_in() -> None:
    state, _ = feed(
        [CallerJoined("c1", "normal", 1), OfferAnswered("c1", "s1", 2)], seats_ready("s1")
    )
    _, replies = feed(
        [
            SeatPresenceChanged("s1", "break", 10),
            CallerJoined("c2", "normal", 11),
            CallEnded("c1", "s1", 20),
            SeatPresenceChanged("s1", "signed_in", 30),
        ],
        state,
    )
    assert replies == [(), (AnnouncePosition("c2", 0),), (), (Offer("c2", "s1", 15),)]


def test_wrap_up_keeps_the_seat_free_of_calls_for_its_seconds() -> None:
    config = AcdConfig(wrap_up_seconds=20)
    state, _ = feed(
        [CallerJoined("c1", "normal", 1), OfferAnswered("c1", "s1", 2), CallEnded("c1", "s1", 30)],
        seats_ready("s1"),
        config,
    )
    _, replies = feed([CallerJoined("c2", "normal", 31), Tick(49), Tick(50)], state, config)
    assert replies == [(AnnouncePosition("c2", 0),), (), (Offer("c2", "s1", 15),)]


def test_a_seat_leaving_while_it_rings_gives_its_caller_to_the_next_seat_unpaused() -> None:
    state, replies = feed(
        [CallerJoined("c1", "normal", 10), SeatRegistration("s1", False, 12)],
        seats_ready("s1", "s2"),
    )
    assert replies == [(Offer("c1", "s1", 15),), (CancelOffer("c1", "s1"), Offer("c1", "s2", 15))]
    assert all(seat.paused_until is None for seat in state.seats)


def test_positions_are_announced_every_interval_and_shrink_as_callers_ahead_leave() -> None:
    _, replies = feed(
        [
            CallerJoined("c1", "normal", 0),
            CallerJoined("c2", "normal", 10),
            CallerJoined("c3", "normal", 20),
            Tick(29),
            Tick(30),
            CallerHungUp("c1", 35),
            Tick(40),
            Tick(50),
        ]
    )
    assert replies == [
        (AnnouncePosition("c1", 0),),
        (AnnouncePosition("c2", 1),),
        (AnnouncePosition("c3", 2),),
        (),
        (AnnouncePosition("c1", 0),),
        (MarkMissed("c1", "abandoned"),),
        (AnnouncePosition("c2", 0),),
        (AnnouncePosition("c3", 1),),
    ]


def test_a_caller_hanging_up_while_a_seat_rings_is_abandoned_and_the_seat_freed() -> None:
    _, replies = feed(
        [CallerJoined("c1", "normal", 1), CallerJoined("c2", "normal", 2), CallerHungUp("c1", 5)],
        seats_ready("s1"),
    )
    assert replies[2] == (
        CancelOffer("c1", "s1"),
        MarkMissed("c1", "abandoned"),
        Offer("c2", "s1", 15),
    )


@pytest.mark.parametrize(
    ("last", "outcome"),
    [
        pytest.param(
            CallerChose("c1", "callback", 125), MarkMissed("c1", "queue_timeout"), id="callback"
        ),
        pytest.param(CallerChose("c1", "message", 125), TakeMessage("c1"), id="message"),
        pytest.param(CallerHungUp("c1", 125), MarkMissed("c1", "queue_timeout"), id="hung-up"),
    ],
)
def test_past_the_maximum_wait_the_caller_leaves_a_message_or_asks_a_callback(
    last: Event, outcome: Action
) -> None:
    state, replies = feed([CallerJoined("c1", "normal", 0), Tick(119), Tick(120)])
    assert replies[1:] == [(AnnouncePosition("c1", 0),), (OfferMessageOrCallback("c1"),)]
    # A seat free now is too late: the caller is choosing, no longer queued for a seat.
    ready, chosen = feed(
        [SeatRegistration("s1", True, 121), SeatPresenceChanged("s1", "signed_in", 121)], state
    )
    assert chosen == [(), ()]
    end, replies = feed([last], ready)
    assert replies == [(outcome,)]
    assert end.waiting == ()


def test_a_free_seat_wins_over_the_maximum_wait() -> None:
    state, _ = feed([CallerJoined("c1", "normal", 0), Tick(100)])
    state, _ = feed([SeatRegistration("s1", True, 110)], state)
    _, replies = feed([SeatPresenceChanged("s1", "signed_in", 120)], state)
    assert replies == [(Offer("c1", "s1", 15),)]


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(OfferAnswered("c1", "s2", 5), id="answer-from-another-seat"),
        pytest.param(OfferAnswered("zz", "s1", 5), id="answer-unknown-call"),
        pytest.param(OfferTimedOut("c1", "s2", 5), id="timeout-from-another-seat"),
        pytest.param(CallEnded("c1", "s1", 5), id="end-of-a-call-not-talking"),
        pytest.param(CallerChose("c1", "callback", 5), id="choice-before-max-wait"),
        pytest.param(CallerHungUp("zz", 5), id="hang-up-unknown-call"),
        pytest.param(CallerJoined("c1", "normal", 5), id="joined-twice"),
    ],
)
def test_events_that_make_no_sense_are_ignored(event: Event) -> None:
    state, _ = feed([CallerJoined("c1", "normal", 1)], seats_ready("s1"))
    after, replies = feed([event], state)
    assert (after, replies) == (state, [()])


def test_bad_configuration_and_unknown_classes_fail_fast() -> None:
    with pytest.raises(ValueError, match="distinct"):
        AcdConfig(priorities=("vip", "vip"))
    with pytest.raises(ValueError, match="positive"):
        AcdConfig(ring_timeout_seconds=0)
    with pytest.raises(ValueError, match="'vip'"):
        step(CONFIG, QueueState(), CallerJoined("c1", "vip", 0))


# Random walks: 30 callers, 5 seats, events drawn from what the state makes possible.

CALLERS = [f"c{n:02}" for n in range(30)]
SEATS = [f"s{n}" for n in range(5)]


@settings(max_examples=25, deadline=None, database=None)
@given(st.data())
def test_invariants_hold_at_every_step_of_a_random_walk(data: st.DataObject) -> None:
    state, now = QueueState(), 0.0
    rank = {name: index for index, name in enumerate(CONFIG.priorities)}
    joined: dict[str, tuple[int, float, int]] = {}  # call -> (class, time, arrival)
    outcomes: dict[str, Action] = {}
    for _ in range(data.draw(st.integers(60, 200))):
        now += data.draw(st.sampled_from([0, 0.5, 1, 5, 16, 60]))
        event = data.draw(_events(state, now, joined))
        if isinstance(event, CallerJoined):
            joined[event.call_id] = (rank[event.priority], event.at, len(joined))
        before = state
        state, actions = step(CONFIG, state, event)
        _check(before, state, actions, now, joined, outcomes)
    # Every caller who joined is answered, missed with a reason, took a message, or waits.
    queued = {c.call_id for c in state.waiting}
    assert set(outcomes) | queued == set(joined)
    assert not set(outcomes) & queued


def _events(
    state: QueueState, now: float, joined: dict[str, tuple[int, float, int]]
) -> st.SearchStrategy[Event]:
    talking = [(s.talking, s.seat_id) for s in state.seats if s.talking]
    rings = [(r.call_id, r.seat_id) for r in state.ringing]
    choosing = [c.call_id for c in state.waiting if c.choosing]
    newcomers = [c for c in CALLERS if c not in joined]
    options: list[st.SearchStrategy[Event]] = [
        st.builds(Tick, st.just(now)),
        st.builds(
            SeatPresenceChanged,
            st.sampled_from(SEATS),
            st.sampled_from(["signed_in", "signed_in", "break", "signed_out"]),
            st.just(now),
        ),
        st.builds(
            SeatRegistration,
            st.sampled_from(SEATS),
            st.sampled_from([True, True, False]),
            st.just(now),
        ),
        # Stale and stray events too: the core must ignore them.
        st.builds(OfferAnswered, st.sampled_from(CALLERS), st.sampled_from(SEATS), st.just(now)),
    ]
    if newcomers:
        options += [
            st.builds(
                CallerJoined,
                st.sampled_from(newcomers),
                st.sampled_from(CONFIG.priorities),
                st.just(now),
            )
        ] * 3
    if state.waiting:
        options.append(
            st.builds(
                CallerHungUp, st.sampled_from([c.call_id for c in state.waiting]), st.just(now)
            )
        )
    if rings:
        options += [st.sampled_from(rings).map(lambda r: OfferAnswered(r[0], r[1], now))] * 3
        options.append(st.sampled_from(rings).map(lambda r: OfferTimedOut(r[0], r[1], now)))
    if talking:
        options += [st.sampled_from(talking).map(lambda t: CallEnded(str(t[0]), t[1], now))] * 2
    if choosing:
        options.append(
            st.builds(
                CallerChose,
                st.sampled_from(choosing),
                st.sampled_from(["message", "callback"]),
                st.just(now),
            )
        )
    return st.one_of(options)


def _check(
    before: QueueState,
    after: QueueState,
    actions: tuple[Action, ...],
    now: float,
    joined: dict[str, tuple[int, float, int]],
    outcomes: dict[str, Action],
) -> None:
    # One ring per seat, one per caller, each for a queued caller and a seat fit to take it.
    ring_seats = [r.seat_id for r in after.ringing]
    ring_calls = [r.call_id for r in after.ringing]
    assert len(set(ring_seats)) == len(ring_seats)
    assert len(set(ring_calls)) == len(ring_calls)
    seats = {s.seat_id: s for s in after.seats}
    waiting = {c.call_id: c for c in after.waiting}
    for ring in after.ringing:
        assert ring.call_id in waiting and not waiting[ring.call_id].choosing
        seat = seats[ring.seat_id]
        assert seat.presence == "signed_in" and seat.registered and seat.talking is None
    talking = [s.talking for s in after.seats if s.talking]
    assert len(set(talking)) == len(talking)
    # Offers go to free seats, the idle longest first, and to the queue's best callers.
    offers = [a for a in actions if isinstance(a, Offer)]
    idle = {s.seat_id: s.idle_since for s in after.seats}
    for offer in offers:
        assert available(seats[offer.seat_id], now)
    idles = [(idle[o.seat_id], o.seat_id) for o in offers]
    assert idles == sorted(idles)
    keys = [joined[o.call_id] for o in offers]
    assert keys == sorted(keys)
    left_waiting = [
        joined[c.call_id] for c in after.waiting if not c.choosing and c.call_id not in ring_calls
    ]
    if offers and left_waiting:
        assert max(keys) < min(left_waiting)
    left_free = [
        (s.idle_since, s.seat_id)
        for s in after.seats
        if s.seat_id not in ring_seats and available(s, now)
    ]
    if left_free:
        assert not left_waiting  # a free seat and a waiting caller are never left apart
        if idles:
            assert max(idles) < min(left_free)
    # Each caller has one outcome at most, and leaves the queue with it.
    for action in actions:
        if isinstance(action, Connected | MarkMissed | TakeMessage):
            assert action.call_id not in outcomes and action.call_id not in waiting
            outcomes[action.call_id] = action
        if isinstance(action, MarkMissed):
            left = next(c for c in before.waiting if c.call_id == action.call_id)
            assert action.reason == ("queue_timeout" if left.choosing else "abandoned")
