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
