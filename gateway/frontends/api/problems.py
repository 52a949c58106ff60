"""Every error of the REST API as an RFC 9457 problem, the router's own 404 and 405 too."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

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


def problem(status: int, title: str, detail: str | None = None) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def answer_with_problems(api: FastAPI) -> None:
    @api.exception_handler(StarletteHTTPException)  # also the router's own 404 and 405
    async def http_problem(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail))

    @api.exception_handler(SQLAlchemyError)
    async def store_down(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        # Wherever the store fails to answer (a token's lookup comes first), the client is
        # told to retry, as docs/api.md promises; any other database error is a bug (500).
        if not is_outage(exc):
            raise exc
        answer = problem(503, "The store is unavailable; retry later")
        answer.headers["Retry-After"] = "30"
        return answer

    @api.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        return problem(422, "Invalid request", where)
