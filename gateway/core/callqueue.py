"""The call queue kept in the database, so it holds across SIP workers and nodes and
outlives any one of them; the rules are gateway/core/acd.py's, applied here one event at a
time under a lock.

One row (``call_queue``) holds the ``QueueState`` as JSON, which worker ("owner") holds
each call in it, and the queue's clock. ``handle`` locks the row (PostgreSQL ``SELECT ...
FOR UPDATE``; SQLite's ``BEGIN IMMEDIATE``, store/db.py), brings the seats' presence and
registration up to date, steps the core, saves, and addresses each action to the worker
holding its call (``call_queue_actions``; an action about a seat alone, ``SeatNotAnswering``,
to the console, owner ``None``). Workers say they are alive; ``sweep`` gives up the callers
of a worker silent too long, so a dead worker's callers never hold the queue or a seat.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import AcdSection
from gateway.core import acd
from store.db import reads_like
from store.models import CallQueueAction, CallQueueOwner, CallQueueRow, QueuedCall
from store.models import Seat as SeatRow

Owner = str | None  # a worker's name; None: the console
# The seats table's states (gateway/core/seats.py) as the queue sees them.
PRESENCE: Mapping[str, acd.Presence] = {
    "signed_out": "signed_out",
    "available": "signed_in",
    "on_break": "break",
}
_ACTIONS: Mapping[str, type[acd.Action]] = {
    kind.__name__: kind
    for kind in (
        acd.Offer,
        acd.CancelOffer,
        acd.Connected,
        acd.SeatNotAnswering,
        acd.AnnouncePosition,
        acd.OfferMessageOrCallback,
        acd.TakeMessage,
        acd.MarkMissed,
    )
}
_ROW = 1  # the one city-wide queue
_OWNER_CHARS = 64  # call_queue_owners.owner


def acd_config(section: AcdSection) -> acd.AcdConfig:
    return acd.AcdConfig(
        priorities=tuple(section.priorities),
        ring_timeout_seconds=section.ring_timeout_seconds,
        max_wait_seconds=section.max_wait_seconds,
        announce_every_seconds=section.announce_every_seconds,
        not_answering_pause_seconds=section.not_answering_pause_seconds,
        wrap_up_seconds=section.wrap_up_seconds,
    )


class CallQueue:
    """The queue as every worker, node and the console share it.

    Events carry their time as POSIX seconds (``now()``); the queue's time never runs
    back, so an event stamped before the last one handled (another node's clock, or it
    waited for the lock) is handled at that last time: callers join in the order the queue
    saw them. Registration comes with the event: ``registered``, when given, is every seat
    username registered now, and is reconciled like presence; ``SeatRegistration`` events
    change one seat. Without either a seat keeps the registration it had.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: acd.AcdConfig,
        clock: Callable[[], datetime],
        *,
        owner_timeout_seconds: float = 15,
    ) -> None:
        if owner_timeout_seconds <= 0:
            raise ValueError("owner_timeout_seconds must be positive")
        self._sessions = sessions
        self.config = config
        self._clock = clock
        self._owner_timeout = timedelta(seconds=owner_timeout_seconds)

    @classmethod
    def configured(
        cls, sessions: sessionmaker[Session], section: AcdSection, clock: Callable[[], datetime]
    ) -> CallQueue:
        return cls(
            sessions,
            acd_config(section),
            clock,
            owner_timeout_seconds=section.owner_timeout_seconds,
        )

    def now(self) -> float:
        """The time to stamp an event with."""
        return self._clock().timestamp()

    def handle(
        self,
        event: acd.Event,
        owner: Owner = None,
        *,
        registered: Collection[str] | None = None,
    ) -> list[acd.Action]:
        """Step the queue; return ``owner``'s actions, those still waiting first, in order.

        ``owner`` is the worker sending the event (it is alive, and a ``CallerJoined`` is its
        call); the other workers' actions wait for their ``take``.
        """
        if isinstance(event, acd.CallerJoined) and owner is None:
            raise ValueError("a caller joins the queue from the worker holding the call")
        with self._sessions.begin() as session:
            now = self._clock()
            if owner is not None:
                _touch(session, owner, now)
            queue = _Locked(session, self.config, now)
            queue.step(event, owner, registered)
            queue.save()
            return _take(session, owner) if owner is not None else []

    def take(self, owner: Owner) -> list[acd.Action]:
        """The actions addressed to ``owner``, in order, each handed out once."""
        with self._sessions.begin() as session:
            return _take(session, owner)

    def alive(self, owner: str) -> None:
        """The worker's heartbeat: its callers are kept while it beats."""
        with self._sessions.begin() as session:
            _touch(session, owner, self._clock())

    def sweep(
        self, now: datetime | None = None, *, registered: Collection[str] | None = None
    ) -> list[str]:
        """Give up the calls of every worker silent longer than the owner timeout: a
        waiting caller hangs up (``MarkMissed``, recorded as ``lost``), a seat talking to
        one is free again. Returns those call ids. Run by any worker on its tick.

        The actions stay addressed to the silent worker: one only stalled learns its callers
        were dropped; one started again under its name calls ``restart`` first.
        """
        now = now or self._clock()
        limit = now - self._owner_timeout
        with reads_like(self._sessions)() as session:  # most ticks: no lock, nothing to do
            row = session.get(CallQueueRow, _ROW)
            if row is None or not _silent(session, row.owners, limit):
                return []
        with self._sessions.begin() as session:
            queue = _Locked(session, self.config, now)
            silent = _silent(session, queue.owners, limit)  # again, under the lock
            lost = queue.give_up(silent, now.timestamp(), registered)
            queue.save()
            return lost

    def restart(self, owner: str) -> list[str]:
        """A worker started again under ``owner``: the calls its last process held ended
        with it, so they are given up as ``sweep`` would, what was addressed to it is
        dropped, and it is alive. Returns those call ids."""
        with self._sessions.begin() as session:
            now = self._clock()
            _touch(session, owner, now)
            queue = _Locked(session, self.config, now)
            lost = queue.give_up({owner}, now.timestamp(), None)
            queue.save()
            session.execute(delete(CallQueueAction).where(CallQueueAction.owner == owner))
            return lost

    def snapshot(self) -> acd.QueueState:
        """The queue as last saved (for the console and tests; no lock taken)."""
        with reads_like(self._sessions)() as session:
            row = session.get(CallQueueRow, _ROW)
            return acd.QueueState() if row is None else load_state(row.state)


class _Locked:
    """The queue row, locked for one transaction: steps, records and addresses actions."""

    def __init__(self, session: Session, config: acd.AcdConfig, now: datetime) -> None:
        self._session = session
        self._config = config
        self._now = now
        self._row = _locked_row(session, now)
        self.state = load_state(self._row.state)
        self.owners: dict[str, str] = dict(self._row.owners)
        self._last_at = self._row.last_at
        self._lost: set[str] = set()

    def step(self, event: acd.Event, owner: Owner, registered: Collection[str] | None) -> None:
        at = max(event.at, self._last_at)
        self._reconcile(at, registered)
        if isinstance(event, acd.CallerJoined) and owner is not None:
            self.owners.setdefault(event.call_id, owner)  # a second join changes nothing
        self._apply(replace(event, at=at))

    def give_up(self, silent: set[str], at: float, registered: Collection[str] | None) -> list[str]:
        at = max(at, self._last_at)
        self._reconcile(at, registered)
        calls = sorted(call for call, owner in self.owners.items() if owner in silent)
        self._lost.update(calls)
        for call_id in calls:
            seat = next((s for s in self.state.seats if s.talking == call_id), None)
            if seat is not None:
                self._apply(acd.CallEnded(call_id, seat.seat_id, at))
            else:
                self._apply(acd.CallerHungUp(call_id, at))
        return calls

    def save(self) -> None:
        live = {c.call_id for c in self.state.waiting}
        live |= {s.talking for s in self.state.seats if s.talking is not None}
        self._row.state = dump_state(self.state)
        self._row.owners = {call: o for call, o in self.owners.items() if call in live}
        self._row.last_at = self._last_at
        self._row.version += 1
        self._row.updated_at = self._now

    def _reconcile(self, at: float, registered: Collection[str] | None) -> None:
        """The seats table (the console, `hotline seats state`) and the registrar are the
        truth for presence and registration; the queue catches up before each event."""
        rows = self._session.execute(select(SeatRow.username, SeatRow.state))
        table = {username: state for username, state in rows}
        known = {seat.seat_id: seat for seat in self.state.seats}
        for seat_id in sorted(known.keys() | table.keys()):
            seat = known.get(seat_id, acd.Seat(seat_id))
            presence = PRESENCE.get(table.get(seat_id, "signed_out"), "signed_out")
            if presence != seat.presence:
                self._apply(acd.SeatPresenceChanged(seat_id, presence, at))
            if registered is not None and (seat_id in registered) != seat.registered:
                self._apply(acd.SeatRegistration(seat_id, seat_id in registered, at))

    def _apply(self, event: acd.Event) -> None:
        before = self.state
        self.state, actions = acd.step(self._config, before, event)
        self._last_at = max(self._last_at, event.at)
        _History(self._session, event.at, self._lost).record(before, event, actions)
        for action in actions:
            call_id = getattr(action, "call_id", None)
            self._session.add(
                CallQueueAction(
                    owner=None if call_id is None else self.owners.get(call_id),
                    kind=type(action).__name__,
                    body=asdict(action),
                    created_at=self._now,
                )
            )


class _History:
    """One ``queued_calls`` row per caller: joined, answered (wait, seat) or left, and the
    talk time when the call ends (gateway/core/queue_figures.py reads them)."""

    def __init__(self, session: Session, at: float, lost: set[str]) -> None:
        self._session = session
        self._at = at
        self._when = datetime.fromtimestamp(at, UTC)
        self._lost = lost

    def record(
        self, before: acd.QueueState, event: acd.Event, actions: Sequence[acd.Action]
    ) -> None:
        match event:
            case acd.CallerJoined(call_id=call_id, priority=priority):
                if not _queued(before, call_id) and self._call(call_id) is None:
                    self._session.add(
                        QueuedCall(call_id=call_id, priority=priority, joined_at=self._when)
                    )
            case acd.CallEnded(call_id=call_id, seat_id=seat_id):
                seat = next((s for s in before.seats if s.seat_id == seat_id), None)
                call = self._call(call_id)
                if seat is not None and seat.talking == call_id and call is not None:
                    call.ended_at = self._when
                    if call.answered_at is not None:
                        call.talk_seconds = self._at - call.answered_at.timestamp()
        for action in actions:
            match action:
                case acd.Connected(call_id=call_id, seat_id=seat_id, waited_seconds=waited):
                    call = self._call(call_id)
                    if call is not None:
                        call.outcome, call.seat, call.waited_seconds = "answered", seat_id, waited
                        call.answered_at = self._when
                case acd.MarkMissed(call_id=call_id, reason=reason):
                    self._left(call_id, "lost" if call_id in self._lost else reason)
                case acd.TakeMessage(call_id=call_id):
                    self._left(call_id, "message")

    def _call(self, call_id: str) -> QueuedCall | None:
        return self._session.scalar(select(QueuedCall).where(QueuedCall.call_id == call_id))

    def _left(self, call_id: str, outcome: str) -> None:
        call = self._call(call_id)
        if call is not None:
            call.outcome, call.left_at = outcome, self._when
            call.waited_seconds = self._at - call.joined_at.timestamp()


def dump_state(state: acd.QueueState) -> dict[str, Any]:
    return asdict(state)


def load_state(raw: Mapping[str, Any]) -> acd.QueueState:
    return acd.QueueState(
        waiting=tuple(acd.Waiting(**caller) for caller in raw["waiting"]),
        seats=tuple(acd.Seat(**seat) for seat in raw["seats"]),
        ringing=tuple(acd.Ringing(**ring) for ring in raw["ringing"]),
    )


def load_action(kind: str, body: Mapping[str, Any]) -> acd.Action:
    return _ACTIONS[kind](**body)


def _queued(state: acd.QueueState, call_id: str) -> bool:
    return any(caller.call_id == call_id for caller in state.waiting)


def _silent(session: Session, owners: Mapping[str, str], limit: datetime) -> set[str]:
    """The workers holding calls whose last heartbeat is before ``limit`` (or none)."""
    holding = set(owners.values())
    if not holding:
        return set()
    rows = session.execute(
        select(CallQueueOwner.owner, CallQueueOwner.last_seen).where(
            CallQueueOwner.owner.in_(holding)
        )
    )
    beats = {owner: last_seen for owner, last_seen in rows}
    return {owner for owner in holding if owner not in beats or beats[owner] < limit}


def _locked_row(session: Session, now: datetime) -> CallQueueRow:
    row = session.get(CallQueueRow, _ROW, with_for_update=True)
    if row is None:
        # The first event ever: two nodes may both get here; the second's insert is a no-op.
        session.execute(
            _dialect_insert(session)(CallQueueRow)
            .values(
                id=_ROW,
                state=dump_state(acd.QueueState()),
                owners={},
                last_at=0.0,
                version=0,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
        row = session.get(CallQueueRow, _ROW, with_for_update=True)
        assert row is not None
    return row


def _touch(session: Session, owner: str, now: datetime) -> None:
    if not 0 < len(owner) <= _OWNER_CHARS:
        raise ValueError(f"a worker's name is 1 to {_OWNER_CHARS} characters: {owner!r}")
    session.execute(
        _dialect_insert(session)(CallQueueOwner)
        .values(owner=owner, last_seen=now)
        .on_conflict_do_update(index_elements=["owner"], set_={"last_seen": now})
    )


def _take(session: Session, owner: Owner) -> list[acd.Action]:
    addressed = CallQueueAction.owner.is_(None) if owner is None else CallQueueAction.owner == owner
    # DELETE ... RETURNING: a second taker waits for the row locks and then finds them gone.
    taken = session.execute(
        delete(CallQueueAction)
        .where(addressed)
        .returning(CallQueueAction.id, CallQueueAction.kind, CallQueueAction.body)
    ).all()
    return [load_action(kind, body) for _, kind, body in sorted(taken, key=lambda t: t[0])]


def _dialect_insert(session: Session) -> Any:
    # The dialect's own insert for its upsert; PostgreSQL's is not loaded on SQLite.
    name = session.get_bind().dialect.name
    return importlib.import_module(f"sqlalchemy.dialects.{name}").insert
