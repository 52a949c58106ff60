"""Twilio's REST API: SMS receipts and replies when Twilio is the city's SMS route."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from gateway.contract.config import TwilioConfig
from gateway.contract.redaction import mask
from gateway.engine.workers import GiveUp

TWILIO_API = "https://api.twilio.com"


class ApiAddress(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Twilio's HTTP client, sent to another address than api.twilio.com when configured
    (a stand-in for tests and demos: simulators/twilio)."""

    def __init__(self, api_url: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.api_url = api_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API) and self.api_url != TWILIO_API:
            url = self.api_url + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


def client_for(settings: TwilioConfig) -> Client:
    http = ApiAddress(settings.api_url, settings.timeout_seconds)
    return Client(settings.account_sid, settings.auth_token, http_client=http)


class TwilioSms:
    """The outbox's SMS sender through Twilio; delivery reports come back to /twilio/status
    naming the outbox row."""

    def __init__(self, settings: TwilioConfig) -> None:
        self.settings = settings
        self.client = client_for(settings)

    def deliver(self, to: str, payload: Mapping[str, Any], message_id: str) -> dict[str, Any]:
        outbox = re.search(r"outbox-(\d+)@", message_id)
        callback = self.settings.public_url.rstrip("/") + "/twilio/status"
        if outbox:
            callback += f"?outbox={outbox.group(1)}"
        sender: dict[str, Any] = (
            {"messaging_service_sid": self.settings.messaging_service_sid}
            if self.settings.messaging_service_sid
            else {"from_": self.settings.from_number}
        )
        try:
            message = self.client.messages.create(
                to=to, body=str(payload["body"]), status_callback=callback, **sender
            )
        except TwilioRestException as exc:
            # 4xx (a bad number, a blocked recipient) will fail the same way next time;
            # 429 and 5xx are Twilio's own trouble and are retried.
            if 400 <= exc.status < 500 and exc.status != 429:
                # Twilio's message names the number; the error is kept and logged.
                raise GiveUp(f"Twilio refused the message: {exc.code} {mask(exc.msg)}") from exc
            raise
        return {"twilio_sid": message.sid}
