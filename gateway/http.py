"""The gateway's one HTTP listener: health and metrics here; web, API and console mount on it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.metrics import Metrics


def build_app(
    metrics: Metrics,
    database_up: Callable[[], bool],
    spool_depth: Callable[[], int],
    routes: list[BaseRoute] | None = None,
) -> Starlette:
    async def healthz(_: Request) -> JSONResponse:
        # 200 while the gateway can take contacts, even with the database down: contacts
        # are spooled then, and a load balancer must not take every node out of service.
        up = await asyncio.to_thread(database_up)
        depth = spool_depth()
        metrics.database_up.set(1 if up else 0)
        metrics.spool_depth.set(depth)
        return JSONResponse(
            {
                "status": "ok" if up else "degraded",
                "database": "ok" if up else "unreachable",
                "spool_depth": depth,
            }
        )

    async def metrics_endpoint(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/metrics", metrics_endpoint),
            *(routes or []),
        ]
    )
