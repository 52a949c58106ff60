"""A worker's link to the seats' queue through a database outage: what the queue must learn
(a talk over, a caller gone) is told again at the next tick, so no seat stays taken."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from channels.sip.queueing import QueueLink
from gateway.core import acd
from gateway.core.callqueue import CallQueue
from store.db import make_sessionmaker
from tests.channels.sip.test_queue_calls import add_seats
from tests.support.tcp_proxy import TcpProxy


def test_a_talk_ended_while_the_database_is_down_frees_the_seat_once_it_is_back(
    cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    add_seats(cut_engine, "zhang")  # seat 1001, signed in
    queue = CallQueue(make_sessionmaker(cut_engine), acd.AcdConfig(), lambda: datetime.now(UTC))
    missed: list[tuple[str, str]] = []
    link = QueueLink(
        queue, "w1", lambda: {"1001"}, tmp_path / "queued", lambda c, *_: missed.append(c)
    )

    async def scenario() -> None:
        await link._tick()  # the registrar's seats reach the queue
        inbox = link.join("call-1", {"dialog": "call-1", "caller": None, "called": None})
        await link.send(acd.CallerJoined("call-1", "normal", queue.now()))
        assert inbox.get_nowait() == acd.Offer("call-1", "1001", 15)
        await link.send(acd.OfferAnswered("call-1", "1001", queue.now()))
        assert [seat.talking for seat in queue.snapshot().seats] == ["call-1"]

        proxy.down()
        await link.tell(acd.CallEnded("call-1", "1001", queue.now()))  # not told: kept
        assert link.owed == [acd.CallEnded("call-1", "1001", link.owed[0].at)]
        proxy.up()
        await link._tick()
        assert link.owed == []

    asyncio.run(scenario())
    [seat] = queue.snapshot().seats
    assert seat.talking is None and seat.presence == "signed_in"
    # Free for the next caller at once (no wrap-up configured).
    actions = queue.handle(acd.CallerJoined("call-2", "normal", queue.now()), "w1")
    assert acd.Offer("call-2", "1001", 15) in actions
    assert missed == []


def test_a_worker_started_while_the_database_is_down_owes_its_predecessors_callers_later(
    cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    """The killed predecessor left a note of a caller who was waiting; the new worker starts
    during an outage. Its link keeps trying, and once the line is back the caller is on the
    callback list, the note gone. An idle link then asks neither Kamailio nor the queue."""
    queue = CallQueue(make_sessionmaker(cut_engine), acd.AcdConfig(), lambda: datetime.now(UTC))
    asked: list[int] = []
    missed: list[tuple[str, str | None, str]] = []
    notes = tmp_path / "queued"
    link = QueueLink(
        queue,
        "w1",
        lambda: asked.append(1) or {"1001"},  # type: ignore[func-returns-value]
        notes,
        lambda call, caller, _called, reason: missed.append((call, caller, reason)),
    )
    link.join("call-0", {"dialog": "call-0", "caller": "13800138000", "called": "12345"})
    link.inboxes.clear()  # as a new process finds it: the note on disk, no call in hand

    async def scenario() -> None:
        stop = asyncio.Event()
        proxy.down()
        running = asyncio.create_task(link.run(stop))
        await asyncio.sleep(1.5)
        assert missed == [] and not running.done()  # still trying, not dead
        proxy.up()
        for _ in range(40):
            if missed:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.5)  # idle ticks: nobody in the queue on this worker
        stop.set()
        await running

    asyncio.run(scenario())
    assert missed == [("call-0", "13800138000", "lost")]
    assert list(notes.glob("*.json")) == []
    assert asked == []


def test_a_caller_joining_an_idle_worker_is_offered_only_seats_registered_now(
    engine: Engine, tmp_path: Path
) -> None:
    """An idle worker does not tick, so the queue's copy of who is registered can be old:
    the joining caller brings the registrar's answer. 1001 registered while no one waited
    (the queue never heard) and is offered; after that talk it signs off, 1002 signs on, and
    the next caller is offered 1002, not 1001 (whose refusal would mark it not answering)."""
    add_seats(engine, "zhang", "wang")  # seats 1001 and 1002, signed in
    queue = CallQueue(make_sessionmaker(engine), acd.AcdConfig(), lambda: datetime.now(UTC))
    registrar = {"1001"}
    link = QueueLink(queue, "w1", lambda: set(registrar), tmp_path / "queued", print)

    async def scenario() -> None:
        first = link.join("call-1", {"dialog": "call-1", "caller": None, "called": None})
        await link.send(acd.CallerJoined("call-1", "normal", queue.now()))
        assert first.get_nowait() == acd.Offer("call-1", "1001", 15)
        await link.send(acd.OfferAnswered("call-1", "1001", queue.now()))
        await link.send(acd.CallEnded("call-1", "1001", queue.now()))
        registrar.clear()
        registrar.add("1002")
        second = link.join("call-2", {"dialog": "call-2", "caller": None, "called": None})
        await link.send(acd.CallerJoined("call-2", "normal", queue.now()))
        assert second.get_nowait() == acd.Offer("call-2", "1002", 15)

    asyncio.run(scenario())
    assert {s.seat_id: s.registered for s in queue.snapshot().seats} == {
        "1001": False,
        "1002": True,
    }
