"""The city-wide call queue (ACD) as a pure decision core: events in, actions out.

Callers who chose a person wait in one queue, ordered by priority class (``AcdConfig``'s
``priorities``, first served first) and within a class by the time they joined. Whenever a
seat is free the longest-waiting caller of the highest class is offered to the seat that has
been idle longest; only signed-in, registered seats, not ringing, not talking, past their
wrap-up and not paused as "not answering", are offered. A seat rings one call at most and a
caller rings one seat at most.

Time comes in the events (``at``, seconds on any one clock), never from a clock read here, so
the same events give the same actions. Every event also runs the rules that depend on time
(ring timeouts, wrap-up, the not-answering pause, maximum wait, position announcements);
``Tick`` carries nothing else. Events that make no sense in the state (a stale answer after
its offer was withdrawn, a hang-up of a call no longer queued) are ignored, never raised.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from typing import Literal

Presence = Literal["signed_in", "break", "signed_out"]
Choice = Literal["message", "callback"]
MissedReason = Literal["abandoned", "queue_timeout"]


@dataclass(frozen=True)
class AcdConfig:
    priorities: tuple[str, ...] = ("elderly", "normal")  # first served first
    ring_timeout_seconds: float = 15
    max_wait_seconds: float = 180
    announce_every_seconds: float = 30
    not_answering_pause_seconds: float = 300
    wrap_up_seconds: float = 0  # after a call, before the seat is offered again

    def __post_init__(self) -> None:
        if not self.priorities or len(set(self.priorities)) != len(self.priorities):
            raise ValueError("acd priorities: one or more distinct classes")
        positive = (
            self.ring_timeout_seconds,
            self.max_wait_seconds,
            self.announce_every_seconds,
            self.not_answering_pause_seconds,
        )
        if min(positive) <= 0 or self.wrap_up_seconds < 0:
            raise ValueError("acd timings must be positive (wrap-up may be 0)")


# State


@dataclass(frozen=True)
class Waiting:
    call_id: str
    priority: str
    joined: float
    rank: int  # the priority's place in AcdConfig.priorities
    announced: float | None = None  # the last position announcement
    choosing: bool = False  # past max wait: offered a message or a callback, no more seats


@dataclass(frozen=True)
class Seat:
    seat_id: str
    presence: Presence = "signed_out"
    registered: bool = False
    idle_since: float = 0.0  # after a call, the end of its wrap-up
    talking: str | None = None  # the call id
    paused_until: float | None = None  # marked not answering


@dataclass(frozen=True)
class Ringing:
    call_id: str
    seat_id: str
    until: float


@dataclass(frozen=True)
class QueueState:
    waiting: tuple[Waiting, ...] = ()  # in queue order: class, then join time, then arrival
    seats: tuple[Seat, ...] = ()
    ringing: tuple[Ringing, ...] = ()


# Events


@dataclass(frozen=True)
class CallerJoined:
    call_id: str
    priority: str
    at: float


@dataclass(frozen=True)
class CallerHungUp:
    call_id: str
    at: float


@dataclass(frozen=True)
class CallerChose:
    """The caller's key after ``OfferMessageOrCallback``."""

    call_id: str
    choice: Choice
    at: float


@dataclass(frozen=True)
class SeatPresenceChanged:
    seat_id: str
    presence: Presence
    at: float


@dataclass(frozen=True)
class SeatRegistration:
    seat_id: str
    registered: bool
    at: float


@dataclass(frozen=True)
class OfferAnswered:
    call_id: str
    seat_id: str
    at: float


@dataclass(frozen=True)
class OfferTimedOut:
    """The seat's phone rang out (or refused) before the queue's own ring timeout."""

    call_id: str
    seat_id: str
    at: float


@dataclass(frozen=True)
class CallEnded:
    call_id: str
    seat_id: str
    at: float


@dataclass(frozen=True)
class Tick:
    at: float


Event = (
    CallerJoined
    | CallerHungUp
    | CallerChose
    | SeatPresenceChanged
    | SeatRegistration
    | OfferAnswered
    | OfferTimedOut
    | CallEnded
    | Tick
)


# Actions: what the SIP side does, in order


@dataclass(frozen=True)
class Offer:
    """Ring the seat's phone for the caller; ``OfferAnswered`` or ``OfferTimedOut`` follows."""

    call_id: str
    seat_id: str
    ring_timeout_seconds: float


@dataclass(frozen=True)
class CancelOffer:
    """Stop ringing the seat (the queue's ring timeout, the caller or the seat left)."""

    call_id: str
    seat_id: str


@dataclass(frozen=True)
class Connected:
    """The seat answered: bridge them. The wait is for the figures (answered within 15 s)."""

    call_id: str
    seat_id: str
    waited_seconds: float


@dataclass(frozen=True)
class SeatNotAnswering:
    """Shown on the console; the seat is offered again when it signs in or at ``until``."""

    seat_id: str
    until: float


@dataclass(frozen=True)
class AnnouncePosition:
    """您前面还有N位: ``ahead`` callers are before this one."""

    call_id: str
    ahead: int


@dataclass(frozen=True)
class OfferMessageOrCallback:
    """Past the maximum wait: leave a message, or press a key for a callback."""

    call_id: str


@dataclass(frozen=True)
class TakeMessage:
    """Record a voicemail letter, as the IVR does."""

    call_id: str


@dataclass(frozen=True)
class MarkMissed:
    """Onto the missed-call callback list (漏接回拨)."""

    call_id: str
    reason: MissedReason


Action = (
    Offer
    | CancelOffer
    | Connected
    | SeatNotAnswering
    | AnnouncePosition
    | OfferMessageOrCallback
    | TakeMessage
    | MarkMissed
)
Reply = tuple[QueueState, tuple[Action, ...]]


def step(config: AcdConfig, state: QueueState, event: Event) -> Reply:
    """The next state and the actions for ``event`` and for the time it carries."""
    state, actions = _apply(config, state, event)
    state, timed = _time_passes(config, state, event.at)
    return state, actions + timed


def available(seat: Seat, at: float) -> bool:
    """Whether the seat may be offered a call now (ringing is checked by the caller)."""
    return (
        seat.presence == "signed_in"
        and seat.registered
        and seat.talking is None
        and seat.idle_since <= at
        and (seat.paused_until is None or seat.paused_until <= at)
    )


def _apply(config: AcdConfig, state: QueueState, event: Event) -> Reply:
    match event:
        case CallerJoined(call_id=call_id, priority=priority, at=at):
            if priority not in config.priorities:
                raise ValueError(f"not an acd priority class: {priority!r}")
            if _find_waiting(state, call_id) is not None:
                return state, ()
            return _enqueue(
                state, Waiting(call_id, priority, at, config.priorities.index(priority))
            ), ()
        case CallerHungUp(call_id=call_id):
            return _hung_up(state, call_id)
        case CallerChose(call_id=call_id, choice=choice):
            caller = _find_waiting(state, call_id)
            if caller is None or not caller.choosing:
                return state, ()
            outcome: Action = (
                TakeMessage(call_id)
                if choice == "message"
                else MarkMissed(call_id, "queue_timeout")
            )
            return _without_caller(state, call_id), (outcome,)
        case SeatPresenceChanged(seat_id=seat_id, presence=presence, at=at):
            return _presence(state, seat_id, presence, at)
        case SeatRegistration(seat_id=seat_id, registered=registered):
            seat = _seat(state, seat_id)
            state = _with_seat(state, replace(seat, registered=registered))
            return (state, ()) if registered else _withdraw(state, seat_id)
        case OfferAnswered(call_id=call_id, seat_id=seat_id, at=at):
            return _answered(state, call_id, seat_id, at)
        case OfferTimedOut(call_id=call_id, seat_id=seat_id, at=at):
            ring = _find_ringing(state, call_id)
            if ring is None or ring.seat_id != seat_id:
                return state, ()
            return _not_answering(config, state, ring, at, cancel=False)
        case CallEnded(call_id=call_id, seat_id=seat_id, at=at):
            seat = _seat(state, seat_id)
            if seat.talking != call_id:
                return state, ()
            idle = replace(seat, talking=None, idle_since=at + config.wrap_up_seconds)
            return _with_seat(state, idle), ()
    return state, ()


def _time_passes(config: AcdConfig, state: QueueState, at: float) -> Reply:
    actions: list[Action] = []
    for ring in state.ringing:
        if ring.until <= at:
            state, done = _not_answering(config, state, ring, at, cancel=True)
            actions.extend(done)
    # Seats before the maximum wait: a caller with a free seat is put through, not timed out.
    state, offers = _dispatch(config, state, at)
    actions.extend(offers)
    state, told = _max_wait_and_announce(config, state, at)
    return state, (*actions, *told)


def _dispatch(config: AcdConfig, state: QueueState, at: float) -> Reply:
    ringing_calls = {ring.call_id for ring in state.ringing}
    ringing_seats = {ring.seat_id for ring in state.ringing}
    free = sorted(
        (seat for seat in state.seats if seat.seat_id not in ringing_seats and available(seat, at)),
        key=lambda seat: (seat.idle_since, seat.seat_id),
    )
    if not free:
        return state, ()
    # The queue is kept in order, so the first callers not ringing are the longest waiting.
    callers = [c for c in state.waiting if not c.choosing and c.call_id not in ringing_calls]
    rings = tuple(
        Ringing(caller.call_id, seat.seat_id, at + config.ring_timeout_seconds)
        for caller, seat in zip(callers, free, strict=False)
    )
    offers = tuple(Offer(r.call_id, r.seat_id, config.ring_timeout_seconds) for r in rings)
    return replace(state, ringing=state.ringing + rings), offers


def _max_wait_and_announce(config: AcdConfig, state: QueueState, at: float) -> Reply:
    ringing_calls = {ring.call_id for ring in state.ringing}
    actions: list[Action] = []
    waiting: list[Waiting] = []
    ahead = 0  # callers still queued before this one, ringing ones included
    for caller in state.waiting:
        if caller.choosing:
            waiting.append(caller)
            continue
        if caller.call_id not in ringing_calls:
            if at - caller.joined >= config.max_wait_seconds:
                actions.append(OfferMessageOrCallback(caller.call_id))
                waiting.append(replace(caller, choosing=True))
                continue
            if caller.announced is None or at - caller.announced >= config.announce_every_seconds:
                actions.append(AnnouncePosition(caller.call_id, ahead))
                caller = replace(caller, announced=at)
        waiting.append(caller)
        ahead += 1
    return replace(state, waiting=tuple(waiting)), tuple(actions)


def _hung_up(state: QueueState, call_id: str) -> Reply:
    caller = _find_waiting(state, call_id)
    if caller is None:
        return state, ()
    reason: MissedReason = "queue_timeout" if caller.choosing else "abandoned"
    ring = _find_ringing(state, call_id)
    cancel: tuple[Action, ...] = () if ring is None else (CancelOffer(call_id, ring.seat_id),)
    return _without_caller(state, call_id), (*cancel, MarkMissed(call_id, reason))


def _presence(state: QueueState, seat_id: str, presence: Presence, at: float) -> Reply:
    seat = _seat(state, seat_id)
    if presence == "signed_in":
        # Signing in again is how a seat marked not answering comes back at once.
        came = seat.presence != "signed_in" and seat.talking is None
        seat = replace(
            seat,
            presence=presence,
            paused_until=None,
            idle_since=max(at, seat.idle_since) if came else seat.idle_since,
        )
        return _with_seat(state, seat), ()
    return _withdraw(_with_seat(state, replace(seat, presence=presence)), seat_id)


def _withdraw(state: QueueState, seat_id: str) -> Reply:
    """The seat left (break, signed out, unregistered): its ringing caller waits again."""
    ring = next((r for r in state.ringing if r.seat_id == seat_id), None)
    if ring is None:
        return state, ()
    return _without_ring(state, ring.call_id), (CancelOffer(ring.call_id, seat_id),)


def _answered(state: QueueState, call_id: str, seat_id: str, at: float) -> Reply:
    ring = _find_ringing(state, call_id)
    caller = _find_waiting(state, call_id)
    if ring is None or caller is None or ring.seat_id != seat_id:
        return state, ()
    seat = replace(_seat(state, seat_id), talking=call_id)
    state = _with_seat(_without_caller(state, call_id), seat)
    return state, (Connected(call_id, seat_id, at - caller.joined),)


def _not_answering(
    config: AcdConfig, state: QueueState, ring: Ringing, at: float, *, cancel: bool
) -> Reply:
    until = at + config.not_answering_pause_seconds
    seat = replace(_seat(state, ring.seat_id), paused_until=until)
    state = _with_seat(_without_ring(state, ring.call_id), seat)
    stop: tuple[Action, ...] = (CancelOffer(ring.call_id, ring.seat_id),) if cancel else ()
    return state, (*stop, SeatNotAnswering(ring.seat_id, until))


# Small helpers over the tuples; the queue holds tens of callers and seats, not thousands.


def _enqueue(state: QueueState, caller: Waiting) -> QueueState:
    keys = [(c.rank, c.joined) for c in state.waiting]
    index = bisect_right(keys, (caller.rank, caller.joined))
    waiting = (*state.waiting[:index], caller, *state.waiting[index:])
    return replace(state, waiting=waiting)


def _find_waiting(state: QueueState, call_id: str) -> Waiting | None:
    return next((c for c in state.waiting if c.call_id == call_id), None)


def _find_ringing(state: QueueState, call_id: str) -> Ringing | None:
    return next((r for r in state.ringing if r.call_id == call_id), None)


def _without_ring(state: QueueState, call_id: str) -> QueueState:
    return replace(state, ringing=tuple(r for r in state.ringing if r.call_id != call_id))


def _without_caller(state: QueueState, call_id: str) -> QueueState:
    waiting = tuple(c for c in state.waiting if c.call_id != call_id)
    return _without_ring(replace(state, waiting=waiting), call_id)


def _seat(state: QueueState, seat_id: str) -> Seat:
    return next((s for s in state.seats if s.seat_id == seat_id), Seat(seat_id))


def _with_seat(state: QueueState, seat: Seat) -> QueueState:
    others = tuple(s for s in state.seats if s.seat_id != seat.seat_id)
    return replace(state, seats=(*others, seat))
