"""Twilio's webhooks: incoming SMS, calls through the IVR, and status callbacks.

Every request must carry a valid X-Twilio-Signature over the URL Twilio called, which is
the configured public URL (behind a reverse proxy the Host we see is not Twilio's). A
MessageSid or CallSid is the letter's idempotency key, so Twilio's retries are one letter.
Twilio does not resend a webhook it got an answer to, so an outage spools the contact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from twilio.request_validator import RequestValidator, get_signature_algorithm
from twilio.twiml.messaging_response import MessagingResponse

from channels.twilio.media import MEDIA_JOB, media_of
from channels.twilio.sids import check_sids
from channels.twilio.voice import twiml
from gateway.contract.config import Config
from gateway.contract.contact import (
    Accept,
    Accepted,
    Channel,
    Citizen,
    IncomingContact,
    RecordMissed,
)
from gateway.contract.errors import PayloadError
from gateway.contract.logs import log_event
from ivr import flow
from ivr.call_letters import call_letter
from store.missed_calls import HANDED_OVER

log = logging.getLogger(__name__)
Params = dict[str, str]
TWIML = "text/xml"
DIAL_OUTCOMES: Mapping[str, flow.TransferOutcome] = {
    "completed": "answered",
    "answered": "answered",
    "busy": "busy",
    "no-answer": "no_answer",
}
MESSAGE_OUTCOMES = {
    "delivered": "delivered",
    "read": "delivered",
    "undelivered": "undelivered",
    "failed": "undelivered",
}
CALL_ENDED = ("completed", "busy", "failed", "no-answer", "canceled")


class ReportStatus(Protocol):
    """What a status callback reports of the SMS it names by outbox row; the outbox records
    it on the message and in the letter's history."""

    def __call__(self, outbox_id: int, outcome: str, actor: str, **detail: Any) -> object: ...


_ROW_ID = re.compile(r"[0-9]{1,18}")
_DURATION = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


class TwilioWebhooks:
    def __init__(
        self,
        config: Config,
        accept: Accept,
        missed: RecordMissed,
        report: ReportStatus,
        clock: Callable[[], datetime],
    ) -> None:
        self.settings = config.channels.twilio
        self.ivr = config.ivr
        self.zone = config.zone
        self.accept = accept
        self.missed = missed
        self.report = report
        self.clock = clock
        self.validator = RequestValidator(self.settings.auth_token or "")
        self.public = self.settings.public_url.rstrip("/")

    def routes(self) -> list[BaseRoute]:
        handlers: dict[str, Callable[[Params, Request], Awaitable[Response]]] = {
            "/sms": self.sms,
            "/voice": self.voice,
            "/voice/digit": self.voice,
            "/voice/recorded": self.voice,
            "/voice/dialed": self.voice,
            "/status": self.status,
        }
        return [
            Mount(
                "/twilio",
                routes=[Route(p, self._signed(h), methods=["POST"]) for p, h in handlers.items()],
            )
        ]

    def _signed(
        self, handler: Callable[[Params, Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            async with request.form(max_files=0, max_fields=200, max_part_size=65536) as form:
                params = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            url = self.public + request.url.path
            if request.url.query:
                url += "?" + request.url.query
            algorithm = get_signature_algorithm(
                request.headers.get("x-twilio-webhooks-signature-settings")
            )
            signature = request.headers.get("x-twilio-signature", "")
            if not self.validator.validate(url, params, signature, algorithm):
                peer = request.client.host if request.client else "unknown"
                log_event(
                    log, "twilio.bad_signature", logging.WARNING, path=request.url.path, peer=peer
                )
                return PlainTextResponse("invalid X-Twilio-Signature", status_code=403)
            refusal = self._refusal(params, request)
            if refusal is not None:
                return refusal
            try:
                return await handler(params, request)
            except PayloadError as exc:  # not a request Twilio would send
                return _bad_request(request, exc)

        return endpoint

    def _refusal(self, params: Params, request: Request) -> Response | None:
        """400 for SIDs not of Twilio's shape; 403 for a request about another account
        (signed, so by someone holding our token: a subaccount's number or a number moved
        to another account still pointing here). None for a request to handle."""
        try:
            check_sids(params)
        except PayloadError as exc:
            return _bad_request(request, exc)
        if params["AccountSid"].lower() == self.settings.account_sid.lower():
            return None
        log_event(
            log,
            "twilio.other_account",
            logging.WARNING,
            path=request.url.path,
            account=params["AccountSid"],
        )
        return PlainTextResponse(
            "AccountSid is not the Twilio account this hotline is configured for", status_code=403
        )

    # -- SMS ----------------------------------------------------------------------------

    async def sms(self, params: Params, _: Request) -> Response:
        sid, sender = _needed(params, "MessageSid"), _needed(params, "From")
        contact = IncomingContact(
            channel=Channel.SMS,
            source=self.settings.source,
            external_id=sid,
            received_at=self.clock(),
            citizen=Citizen(phone=sender),
            text=params.get("Body", ""),
            jobs=(MEDIA_JOB,) if media_of(params) else (),
            raw=_raw(params),
        )
        await self.accept(contact)
        return Response(str(MessagingResponse()), media_type=TWIML)

    # -- calls through the IVR -----------------------------------------------------------

    async def voice(self, params: Params, request: Request) -> Response:
        _needed(params, "CallSid")
        _needed(params, "From")
        step = request.url.path.rsplit("/", 1)[-1]
        state, event = self._event(step, params, request.query_params.get("s"), request)
        if event == flow.QueueEnded("handed_over"):
            # The SIP side lists the call if it is missed there: never here as well.
            call, caller = params["CallSid"], params["From"]
            await asyncio.to_thread(self.missed, call, caller, params.get("To"), HANDED_OVER)
        state, actions = flow.step(self.ivr, state, event)
        told: tuple[flow.Action, ...] = ()
        for action in actions:
            if isinstance(action, flow.Outcome):
                accepted = await self._outcome(action, params)
                if isinstance(action, flow.StoreVoicemail) and action.tell_number:
                    # Stored while the call is up: the caller hears its number in this answer.
                    number = accepted.tracking_number if accepted else None
                    code = accepted.verification_code if accepted else None
                    state, told = flow.step(self.ivr, state, flow.Stored(number, code))
        said = (*actions, *told)
        return Response(twiml(said, state, self.ivr, self.settings), media_type=TWIML)

    def _event(
        self, step: str, params: Params, encoded: str | None, request: Request
    ) -> tuple[flow.CallState, flow.Event]:
        if step == "voice":
            local = self.clock().astimezone(self.zone)
            # The seats' call queue is on the SIP side: without its entry to dial, a caller
            # who asks for a person leaves a message.
            reachable = not self.ivr.agent.queue or self.settings.queue_uri is not None
            return flow.start(), flow.Answered(self.ivr.agent.available(local) and reachable)
        try:
            state = flow.CallState.decode(encoded or "")
        except ValueError as exc:
            raise PayloadError(f"the call state {encoded!r} is not one we issued") from exc
        if step == "digit":
            digits = params.get("Digits", "")
            return state, flow.Digit(digits[:1]) if digits else flow.NoInput()
        if step == "dialed":
            status = _needed(params, "DialCallStatus")
            if state.step == "queue":
                # Taken by the SIP side, which stores what became of the call; else a message.
                return state, flow.QueueEnded("handed_over" if status == "completed" else "message")
            return state, flow.TransferEnded(DIAL_OUTCOMES.get(status, "failed"))
        if request.query_params.get("empty"):
            return state, flow.RecordingEnded(0, "silence")
        _needed(params, "RecordingUrl")
        seconds = _seconds(params.get("RecordingDuration") or "0")
        key = params.get("Digits", "")
        reason: flow.RecordingEndReason = (
            "hangup"
            if key == "hangup"
            else "key"
            if key
            else "max"
            if seconds >= self.ivr.voicemail.max_seconds - 1
            else "silence"
        )
        # The letter is stored in this request, while the call is up: its number can be said.
        return state, flow.RecordingEnded(seconds, reason, tell_number=True)

    async def _outcome(self, action: flow.Action, params: Params) -> Accepted | None:
        call, caller = params["CallSid"], params["From"]
        if isinstance(action, flow.MarkMissed):
            await asyncio.to_thread(self.missed, call, caller, params.get("To"), action.reason)
            return None
        voicemail = isinstance(action, flow.StoreVoicemail)
        contact = call_letter(
            self.settings.source,
            call,
            self.clock(),
            caller,
            action.category if isinstance(action, flow.StoreVoicemail) else None,
            voicemail=voicemail,
            jobs=(MEDIA_JOB,) if voicemail else (),  # the recording follows as a job
            raw=_raw(params),
        )
        accepted = await self.accept(contact)
        log_event(
            log,
            "twilio.call_stored",
            call=call,
            kind="voicemail" if voicemail else "agent",
            tracking_number=accepted.tracking_number,
        )
        return accepted

    # -- status callbacks ------------------------------------------------------------------

    async def status(self, params: Params, request: Request) -> Response:
        if "MessageStatus" in params:
            outbox = request.query_params.get("outbox", "")
            # ASCII digits a row id can be ("²" is a digit to isdigit(), not to int(); a
            # longer number overflows the database's integer).
            if _ROW_ID.fullmatch(outbox):
                await asyncio.to_thread(self._report, int(outbox), params["MessageStatus"], params)
        elif params.get("CallStatus") in CALL_ENDED and "CallSid" in params:
            # A call that ended with neither a letter nor a missed call hung up in the menu
            # (Twilio asks nothing of us when the caller hangs up during <Gather>).
            # Listed only if the call left no letter and is not listed already.
            await asyncio.to_thread(
                self.missed,
                params["CallSid"],
                params.get("From") or "",
                params.get("To"),
                "hung_up_in_menu",
            )
        return Response(status_code=204)

    def _report(self, outbox: int, status: str, params: Params) -> None:
        outcome = MESSAGE_OUTCOMES.get(status)
        if outcome is None:  # queued, sending, sent: not yet the end of the story
            return
        error = params.get("ErrorCode")
        self.report(outbox, outcome, "twilio", status=status, **({"error": error} if error else {}))


def _bad_request(request: Request, exc: PayloadError) -> Response:
    log_event(log, "twilio.bad_request", logging.WARNING, path=request.url.path, reason=str(exc))
    return PlainTextResponse(str(exc), status_code=400)


def _seconds(value: str) -> float:
    """RecordingDuration: whole seconds from Twilio. float() alone would take "nan", "1_0"
    and raise for "²" (which str.isdigit() calls a digit)."""
    if not _DURATION.fullmatch(value):
        raise PayloadError(f"RecordingDuration {value[:20]!r} is not a number of seconds")
    return float(value)


def _needed(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise PayloadError(f"missing parameter {name}")
    return value


def _raw(params: Params) -> str:
    """Twilio's parameters as they came (less the account), kept with the letter."""
    return json.dumps(
        {k: v for k, v in sorted(params.items()) if k != "AccountSid"}, ensure_ascii=False
    )
