"""Jobs queued by another process wake this one's lanes at once, on PostgreSQL.

A SIP worker's voicemail, another node's mail, an operator's `hotline jobs retry`: each
commit that queues jobs sends a NOTIFY naming their kinds (store.jobs.announce), and this
listens on its own connection. Without it a lane finds such jobs at its next poll; on
SQLite, which has no notices, that poll is all there is. Jobs queued in this process wake
the lanes directly (Intake.jobs_queued) and need no notice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql
from sqlalchemy import Engine

from gateway.contract.logs import log_event
from store.jobs import NOTICES

log = logging.getLogger(__name__)

# What an operator sees in pg_stat_activity.
APPLICATION_NAME = "hotline jobs notices"
# How often the listener looks at `stop` between notices.
CHECK_SECONDS = 1.0
# After a lost connection (a database restart): the lanes poll meanwhile.
RECONNECT_SECONDS = (0.5, 30.0)


async def listen(
    engine: Engine,
    wake: Callable[[str], None],
    wake_all: Callable[[], None],
    stop: asyncio.Event,
) -> None:
    """Until ``stop``: ``wake(kind)`` for each kind a commit elsewhere queued, and
    ``wake_all()`` after each (re)connection, for the notices missed while away."""
    if engine.dialect.name != "postgresql":
        await stop.wait()
        return
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    delay = RECONNECT_SECONDS[0]

    def connected() -> None:
        nonlocal delay
        delay = RECONNECT_SECONDS[0]
        wake_all()

    while not stop.is_set():
        try:
            await _listen_once(url, wake, connected, stop)
            return
        except psycopg.OperationalError as exc:
            # Not a task failure: every lane still polls, and /healthz already reports
            # the database.
            log_event(log, "jobs.notices_lost", logging.WARNING, error=str(exc), retry_in=delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(delay * 2, RECONNECT_SECONDS[1])


async def _listen_once(
    url: str, wake: Callable[[str], None], connected: Callable[[], None], stop: asyncio.Event
) -> None:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, application_name=APPLICATION_NAME
    ) as conn:
        await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTICES)))
        connected()
        while not stop.is_set():
            async for notice in conn.notifies(timeout=CHECK_SECONDS):
                for kind in notice.payload.split(","):
                    wake(kind)
