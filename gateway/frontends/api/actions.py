"""A department's actions on its letters over the REST API: sign, reply, return, extend.
The workflow decides whether one is allowed; a refusal is a 409."""

from __future__ import annotations

from typing import Annotated

from fastapi import FastAPI, HTTPException, Path

from gateway.contract import tracking
from gateway.core.workflow import DEPARTMENT, Actor, WorkflowError
from gateway.frontends.api.deps import Given, Who, load, require
from gateway.frontends.api.letters import aware
from gateway.frontends.api.problems import ERRORS
from gateway.frontends.api.schemas import Action, ActionResult


def add_routes(api: FastAPI) -> None:
    api.post(
        "/letters/{tracking_number}/actions",
        response_model=ActionResult,
        responses=ERRORS,
        summary="A department's action: sign, reply, return, extend",
    )(act)


def act(
    who: Who, services: Given, body: Action, tracking_number: Annotated[str, Path(max_length=40)]
) -> ActionResult:
    require(who, "act")
    if who.department is None:
        raise HTTPException(403, "Only a department's token acts on letters")
    actor = Actor(DEPARTMENT, f"api:{who.name}", who.department)
    w = services.workflow
    try:
        with services.sessions.begin() as s:
            letter = load(s, who, tracking_number)
            if body.action == "sign":
                w.sign(s, letter, actor)
            elif body.action in ("reply", "interim_reply"):
                w.reply(
                    s,
                    letter,
                    _needed(body.text, "text"),
                    actor,
                    final=body.action == "reply",
                    public=body.public,
                    promised_at=body.promised_at and aware(body.promised_at),
                )
            elif body.action == "return":
                w.return_letter(s, letter, _needed(body.reason, "reason"), actor)
            else:
                w.request_extension(s, letter, _needed(body.reason, "reason"), actor)
            status = letter.status
    except WorkflowError as exc:
        raise HTTPException(409, str(exc)) from exc
    return ActionResult(tracking_number=tracking.normalize(tracking_number), status=status)


def _needed(value: str | None, name: str) -> str:
    if not value or not value.strip():
        raise HTTPException(422, f"{name} is required for this action")
    return value
