"""The call desk's event stream (server-sent events): the desk's panel again whenever what
it shows changes — the seat's state, a call ringing, answered or ended, its letter stored
or recorded, a pause for not answering — so the screen pops without reload.

Per seat, the server polls the queue's snapshot and the seat's rows every ``poll_seconds``
and sends the panel rendered anew (the same template as the page, so the browser's script
only swaps it in; no inline script, the console's CSP kept). Each event's id is a digest of
what it showed: a browser reconnecting with ``Last-Event-ID`` gets nothing until it changes.

A stream ends after ``stream_seconds`` and the browser reconnects (``retry``): a gateway
stopping waits for open responses, so none may last long. It also ends, with an ``ended``
event, once the console session does; it never extends the session (the idle timeout
holds with a desk left open).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.contract.config import ConsoleConfig
from gateway.contract.logs import log_event
from gateway.frontends.console import accounts
from gateway.frontends.console.desk import HEADERS, Tools
from gateway.frontends.console.desk_call import (
    SeatView,
    kamailio_registrar,
    last_answered,
    queue_for,
    seat_view,
    take_notices,
)
from gateway.frontends.console.desk_page import PANEL, panel_context
from gateway.frontends.console.scope import may

log = logging.getLogger(__name__)
REGISTRAR_EVERY = 10  # polls between two questions to Kamailio (its answer changes slowly)


class DeskEvents:
    def __init__(
        self,
        tools: Tools,
        settings: ConsoleConfig,
        clock: Callable[[], datetime],
        cookie: str,
        *,
        poll_seconds: float = 0.5,
        stream_seconds: float = 15.0,
    ) -> None:
        self.tools = tools
        self.settings = settings
        self.clock = clock
        self.cookie = cookie
        self.poll_seconds = poll_seconds
        self.stream_seconds = stream_seconds
        self.queue = queue_for(tools.config, tools.writes, clock)
        self.registrar = kamailio_registrar(tools.config)

    async def stream(self, request: Request) -> Response:
        token = request.cookies.get(self.cookie, "")
        try:
            staff = await run_in_threadpool(self._staff, token)
        except SQLAlchemyError as exc:
            log_event(log, "console.database_unavailable", logging.ERROR, error=type(exc).__name__)
            return Response(status_code=503, headers=HEADERS)
        if staff is None or not may(staff, "desk"):
            # Not 200: the browser's EventSource gives up instead of reconnecting.
            return Response(status_code=401 if staff is None else 403, headers=HEADERS)
        last = request.headers.get("last-event-id", "")
        return StreamingResponse(
            self._events(staff, token, last),
            media_type="text/event-stream",
            headers={**HEADERS, "X-Accel-Buffering": "no"},  # a proxy must not hold them
        )

    async def _events(self, staff: accounts.Staff, token: str, last: str) -> AsyncIterator[str]:
        retry_ms = int(self.poll_seconds * 1000)
        yield f"retry: {retry_ms}\n\n"
        loop = asyncio.get_running_loop()
        ends = loop.time() + self.stream_seconds
        registered: set[str] | None = None
        recent = _Recent()
        polls = 0
        while True:
            if polls % REGISTRAR_EVERY == 0:
                registered = await run_in_threadpool(self.registrar)
            polls += 1
            try:
                if await run_in_threadpool(self._staff, token) != staff:
                    yield event("ended", "", "ended")
                    return
                tag, panel = await run_in_threadpool(self._panel, staff, registered, recent, last)
            except SQLAlchemyError as exc:  # the browser reconnects, and is told 503 if still
                log_event(
                    log, "console.database_unavailable", logging.ERROR, error=type(exc).__name__
                )
                return
            if panel is not None:
                last = tag
                yield event("panel", panel, tag)
            if loop.time() >= ends:
                return
            await asyncio.sleep(self.poll_seconds)

    def _staff(self, token: str) -> accounts.Staff | None:
        with self.tools.reads() as db:
            return accounts.current(db, self.settings, token, self.clock()).staff

    def _panel(
        self, staff: accounts.Staff, registered: set[str] | None, recent: _Recent, last: str
    ) -> tuple[str, str | None]:
        """The digest of what the desk shows now, and its panel when that is not ``last``."""
        now = self.clock()
        with self.tools.reads() as db:
            take_notices(self.queue, db, self.tools.writes, now)
            view = seat_view(
                db, staff, self.queue.snapshot(), registered, now, recent.ended(db, now)
            )
            recent.saw(view)
            tag = hashlib.sha256(repr(view.key()).encode()).hexdigest()[:16]
            if tag == last:
                return tag, None
            template = self.tools.templates.env.get_template(PANEL)
            return tag, template.render(
                staff=staff, may=lambda right: may(staff, right), **panel_context(view)
            )


class _Recent:
    """The seat's last ended call, for its wrap-up: looked up once when the stream starts,
    then the call this stream last saw talking (no query on every poll)."""

    def __init__(self) -> None:
        self.known = False
        self.call_id: str | None = None

    def ended(self, db: Session, now: datetime) -> Callable[[str], str | None]:
        def last(seat: str) -> str | None:
            if not self.known:
                self.call_id, self.known = last_answered(db, seat, now), True
            return self.call_id

        return last

    def saw(self, view: SeatView) -> None:
        if view.call is not None and view.call.phase == "talking":
            self.call_id, self.known = view.call.call_id, True


def event(kind: str, data: str, id_: str) -> str:
    """One server-sent event (HTML Living Standard 9.2): each line of the data its own
    ``data:`` field, a blank line ending it."""
    lines = data.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join([f"event: {kind}\nid: {id_}\n", *(f"data: {line}\n" for line in lines), "\n"])
