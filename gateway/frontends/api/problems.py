"""Every error of the REST API as an RFC 9457 problem, the router's own 404 and 405 too."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from gateway.frontends.api.schemas import Problem
from store.db import is_outage

PROBLEM = {"model": Problem, "content": {"application/problem+json": {}}}
# The errors every route may answer with, as its OpenAPI responses.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: PROBLEM,
    403: PROBLEM,
    404: PROBLEM,
    409: PROBLEM,
    422: PROBLEM,
    503: PROBLEM,
}


# How long a client waits before it retries while the store is down.
RETRY_AFTER = {"Retry-After": "30"}
# RFC 9110's names where Python's HTTPStatus still has RFC 7231's (before Python 3.13).
_PHRASES = {413: "Content Too Large", 422: "Unprocessable Content"}


def _phrase(status: int) -> str | None:
    try:
        return HTTPStatus(status).phrase
    except ValueError:  # a status no RFC names
        return None


def title_of(status: int) -> str:
    """A problem's title: with type about:blank it is the status phrase (RFC 9457 §4.2.1),
    the same for every problem of that status; what went wrong is the detail."""
    return _PHRASES.get(status) or _phrase(status) or "Error"


def problem(
    status: int, detail: str | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = Problem(title=title_of(status), status=status, detail=detail).model_dump()
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


def allowed(request: Request) -> str:
    """Every method the address takes (RFC 9110 §10.2.1), for a 405's Allow: the router
    names only the first route with that path, and GET and POST /letters are two."""
    methods = {
        method
        for route in request.app.router.routes
        if isinstance(route, Route) and route.matches(request.scope)[0] is not Match.NONE
        for method in route.methods or ()
    }
    return ", ".join(sorted(methods))


def answer_with_problems(api: FastAPI) -> None:
    @api.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405
    async def http_problem(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Its headers go with it: a 401's WWW-Authenticate, a 405's Allow, a Retry-After.
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed(request)
        detail: str | None = str(exc.detail)
        if detail == _phrase(exc.status_code):  # the router's bare 404 or 405: nothing to add
            detail = None
        return problem(exc.status_code, detail, headers)

    @api.exception_handler(SQLAlchemyError)
    async def store_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        # Wherever the store fails to answer (a token's lookup comes first), the client is
        # told to retry, as docs/api.md promises; any other database error is a bug (500).
        if not is_outage(exc):
            raise exc
        return problem(503, "The store is unavailable; retry later", RETRY_AFTER)

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem(422, where)
