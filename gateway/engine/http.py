"""The gateway's one HTTP listener: health and metrics here; web, API and console mount on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.engine.metrics import Metrics

# The page for an unknown address (404) or a failure (500), in the style of the part that
# owns the address; it is never given the exception, so a page cannot show its text.
ErrorPage = Callable[[Request, int], Response]
# (path prefix, its page), the first matching prefix wins; None keeps Starlette's plain
# text, for parts that answer their own errors (the API's JSON problems).
ErrorPages = Sequence[tuple[str, ErrorPage | None]]


def build_app(
    metrics: Metrics,
    database_up: Callable[[], bool],
    spool_depth: Callable[[], int],
    routes: list[BaseRoute] | None = None,
    parts: Callable[[], Mapping[str, bool]] = dict,
    pages: ErrorPages = (),
) -> Starlette:
    """``parts``: every channel part and background task that is enabled, and whether it
    is up (gateway.engine.health). ``pages``: who answers an unknown address or a failure
    under which prefix (Starlette's own answers are English text)."""

    def parts_up() -> Mapping[str, bool]:
        found = parts()
        for part, up in found.items():
            metrics.part_up.labels(part).set(1 if up else 0)
        return found

    async def healthz(_: Request) -> JSONResponse:
        # 200 while the gateway can take contacts, even with the database down: contacts
        # are spooled then, and a load balancer must not take every node out of service.
        # 503 when an enabled part is down: a modem no longer read, a dead task.
        up = await asyncio.to_thread(database_up)
        depth = spool_depth()
        metrics.database_up.set(1 if up else 0)
        metrics.spool_depth.set(depth)
        found = parts_up()
        down = sorted(part for part, ok in found.items() if not ok)
        return JSONResponse(
            {
                "status": "down" if down else ("ok" if up else "degraded"),
                "database": "ok" if up else "unreachable",
                "spool_depth": depth,
                "parts": {part: "ok" if ok else "down" for part, ok in found.items()},
            },
            status_code=503 if down else 200,
        )

    async def metrics_endpoint(_: Request) -> Response:
        parts_up()
        up = await asyncio.to_thread(database_up)  # as of this scrape, not the last /healthz
        metrics.database_up.set(1 if up else 0)
        # Off the event loop: collectors read the database (each lane's queue).
        body = await asyncio.to_thread(generate_latest, metrics.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def page_for(request: Request) -> ErrorPage | None:
        path = request.scope["path"]
        return next((page for prefix, page in pages if path.startswith(prefix)), None)

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        page = page_for(request)
        if page is None:
            return PlainTextResponse(exc.detail, exc.status_code, headers=exc.headers)
        return page(request, exc.status_code)

    async def failed(request: Request, _: Exception) -> Response:
        # Starlette raises the exception on after this answer, for the server to log.
        page = page_for(request)
        if page is None:
            return PlainTextResponse("Internal Server Error", 500)
        return page(request, 500)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics_endpoint),
            *(routes or []),
        ],
        exception_handlers={404: not_found, 500: failed},
    )
