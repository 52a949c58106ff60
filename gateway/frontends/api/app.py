"""The integrator REST API (/api/v1): letters, their files, and departments' actions."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.frontends.api import actions, files, letters
from gateway.frontends.api.deps import Services
from gateway.frontends.api.problems import answer_with_problems

__all__ = ["Services", "build_api"]


def build_api(services: Services) -> FastAPI:
    api = FastAPI(
        title="12345 Hotline Gateway API",
        version="1",
        description="Letters for integrators' case systems. Errors are RFC 9457 problems.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        servers=[{"url": "/api/v1"}],
    )
    answer_with_problems(api)
    api.state.services = services
    # In this order the OpenAPI document lists the paths as it always has.
    for routes in (letters, files, actions):
        routes.add_routes(api)
    return api
