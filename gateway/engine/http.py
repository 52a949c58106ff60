"""The gateway's one HTTP listener: health and metrics here; web, API and console mount on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.engine.metrics import Metrics


def build_app(
    metrics: Metrics,
    database_up: Callable[[], bool],
    spool_depth: Callable[[], int],
    routes: list[BaseRoute] | None = None,
    parts: Callable[[], Mapping[str, bool]] = dict,
) -> Starlette:
    """``parts``: every channel part and background task that is enabled, and whether it
    is up (gateway.engine.health)."""

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

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics_endpoint),
            *(routes or []),
        ]
    )
