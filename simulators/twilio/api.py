"""A stand-in for Twilio's REST API on loopback: Messages, Recordings, signed status callbacks."""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import math
import secrets
import socket
import threading
import uuid
import wave
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode, urlsplit

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from simulators.modem.pdu import gsm7_septets

API_VERSION = "2010-04-01"
USER_AGENT = "TwilioProxy/1.1"  # what Twilio's webhook requests carry
Endpoint = Literal["messages", "recordings"]
FinalStatus = Literal["delivered", "undelivered", "failed"]
# Twilio's error codes for the statuses this stand-in answers (twilio.com/docs/api/errors).
ERRORS = {
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}
MAX_BODY = 1600  # characters; Twilio refuses longer bodies with 21617


def random_sid(prefix: str) -> str:
    """A Twilio SID: two letters naming the resource and 32 hex digits."""
    return prefix + secrets.token_hex(16)


def utc_now() -> datetime:
    return datetime.now(UTC)


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def rebase(url: str, routes: Mapping[str, str]) -> str:
    """Where a request for the public ``url`` really connects: ``routes`` maps public URL
    prefixes to the addresses behind them (a reverse proxy's view); others connect as they are."""
    for public, actual in routes.items():
        if url == public or url.startswith(public.rstrip("/") + "/"):
            return actual.rstrip("/") + url[len(public.rstrip("/")) :]
    return url


def webhook(
    client: httpx.AsyncClient,
    url: str,
    params: Mapping[str, str],
    *,
    auth_token: str,
    routes: Mapping[str, str],
    method: str = "POST",
    signature: str | None = None,
) -> httpx.Request:
    """A request as Twilio sends it to ``url``: form-encoded (GET: in the query string), signed
    over the public URL with HMAC-SHA1 of the auth token (``signature`` forges it)."""
    if method == "GET":
        url = f"{url}{'&' if '?' in url else '?'}{urlencode(params)}"
        params = {}
    headers = {
        "X-Twilio-Signature": signature
        if signature is not None
        else RequestValidator(auth_token).compute_signature(url, params),
        "I-Twilio-Idempotency-Token": str(uuid.uuid4()),
        "User-Agent": USER_AGENT,
        "X-Home-Region": "us1",
    }
    return client.build_request(method, rebase(url, routes), data=dict(params), headers=headers)


@dataclass(frozen=True)
class Recording:
    sid: str
    call_sid: str
    wav: bytes
    duration: int  # seconds, as RecordingDuration
    url: str  # RecordingUrl: the media without an extension is WAV
    created: datetime


@dataclass
class SentMessage:
    sid: str
    to: str
    from_: str | None
    body: str
    messaging_service_sid: str | None
    status_callback: str | None
    created: datetime
    segments: int
    status: str = "queued"
    error_code: int | None = None


@dataclass(frozen=True)
class Callback:
    """A status callback the stand-in posted: what it sent and what came back."""

    url: str
    params: dict[str, str]
    status_code: int | None  # None: no HTTP answer (see ``error``)
    error: str | None = None


@dataclass(frozen=True)
class ApiRequest:
    method: str
    path: str
    status_code: int


@dataclass
class _Fault:
    status: int
    remaining: int
    endpoint: Endpoint | None


@dataclass
class _State:
    messages: list[SentMessage] = field(default_factory=list)
    recordings: dict[str, Recording] = field(default_factory=dict)
    callbacks: list[Callback] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)
    faults: list[_Fault] = field(default_factory=list)
    down: dict[Endpoint, int] = field(default_factory=dict)
    outcomes: dict[str, tuple[FinalStatus, int | None]] = field(default_factory=dict)


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1, on a port the OS picks, in its own thread,
    so blocking clients (twilio's ``Client`` uses requests) work from any thread."""

    def __init__(self, app: ASGIApp, *, name: str = "loopback") -> None:
        self._app = app
        self._name = name
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError(f"{self._name} is already running")
        # Bound and listening before uvicorn runs: clients may connect at once, no wait needed.
        # IPPROTO_TCP spelled out: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP (create_server leaves 0), and without it every response waits out a delayed ACK.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [listener]}, name=self._name, daemon=True
        )
        self._thread.start()
        host, port = listener.getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> LoopbackServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class TwilioApi:
    """Twilio's REST API for one account, under ``base_url`` with HTTP basic auth:
    ``POST .../Messages.json``, ``GET .../Messages/{sid}.json``, ``GET .../Recordings/{sid}``
    (WAV; also ``.wav``, and ``.json`` for the resource).

    Messages with a StatusCallback get signed callbacks, "sent" then "delivered" (or the
    outcome set with :meth:`set_outcome`). ``routes`` maps public URL prefixes to where the
    callbacks really connect. Public methods may be called from any thread.
    """

    def __init__(
        self,
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        routes: Mapping[str, str] | None = None,
        recordings_require_auth: bool = True,
        sid: Callable[[str], str] = random_sid,
        clock: Callable[[], datetime] = utc_now,
        callback_timeout: float = 5.0,
    ) -> None:
        self.account_sid = account_sid or sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        if not (self.account_sid.startswith("AC") and len(self.account_sid) == 34):
            raise ValueError(f"an account SID is AC and 32 hex digits, not {self.account_sid!r}")
        self.routes = dict(routes or {})
        self.recordings_require_auth = recordings_require_auth
        self.sid = sid
        self.clock = clock
        self._callback_timeout = callback_timeout
        self._state = _State()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._server = LoopbackServer(self._app(), name="twilio api")

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: what stands for https://api.twilio.com."""
        if not self._server.url:
            raise RuntimeError("the Twilio stand-in is not started")
        return self._server.url

    def start(self) -> str:
        return self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> TwilioApi:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def client(self) -> Any:
        """A ``twilio.rest.Client`` for this account whose requests come here."""
        return Client(self.account_sid, self.auth_token, http_client=LocalHttpClient(self.base_url))

    # -- what tests look at and set ----------------------------------------------------------

    @property
    def messages(self) -> list[SentMessage]:
        with self._lock:
            return list(self._state.messages)

    @property
    def callbacks(self) -> list[Callback]:
        with self._lock:
            return list(self._state.callbacks)

    @property
    def requests(self) -> list[ApiRequest]:
        with self._lock:
            return list(self._state.requests)

    def add_recording(self, wav: bytes, call_sid: str) -> Recording:
        """Keep ``wav`` as a recording of ``call_sid``, served at its RecordingUrl."""
        sid = self.sid("RE")
        recording = Recording(
            sid=sid,
            call_sid=call_sid,
            wav=wav,
            duration=wav_duration(wav),
            url=f"{self.base_url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}",
            created=self.clock(),
        )
        with self._lock:
            self._state.recordings[sid] = recording
        return recording

    def set_outcome(self, to: str, status: FinalStatus, error_code: int | None = None) -> None:
        """How messages to ``to`` end: "failed" (never sent, e.g. 30008) or "undelivered"
        (sent, then refused by the network, e.g. 30003 unreachable), or "delivered"."""
        if status != "delivered" and error_code is None:
            raise ValueError(f"a {status} message carries an ErrorCode")
        with self._lock:
            self._state.outcomes[to] = (status, error_code)

    def fail_next(self, status: int, times: int = 1, *, endpoint: Endpoint | None = None) -> None:
        """Answer the next ``times`` requests (to ``endpoint`` only, if given) with ``status``
        and Twilio's JSON error body, before authentication, as an overloaded edge does."""
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._state.faults.append(_Fault(status, times, endpoint))

    def set_down(self, endpoint: Endpoint, status: int | None) -> None:
        """Answer every request to ``endpoint`` with ``status`` until called with None."""
        with self._lock:
            if status is None:
                self._state.down.pop(endpoint, None)
            else:
                self._state.down[endpoint] = status

    def wait_for_callbacks(self, count: int, timeout: float = 5.0) -> list[Callback]:
        """Block until ``count`` status callbacks were posted (in async tests run it with
        ``asyncio.to_thread`` so the event loop keeps serving them)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._state.callbacks) >= count, timeout):
                raise TimeoutError(f"{len(self._state.callbacks)} of {count} callbacks posted")
            return list(self._state.callbacks)

    # -- the HTTP side -----------------------------------------------------------------------

    def _app(self) -> Starlette:
        account = f"/{API_VERSION}/Accounts/{{account}}"
        return Starlette(
            routes=[
                Route(
                    f"{account}/Messages.json",
                    self._guarded("messages", self._create_message),
                    methods=["POST"],
                ),
                Route(
                    f"{account}/Messages/{{sid}}.json",
                    self._guarded("messages", self._fetch_message),
                    methods=["GET"],
                ),
                Route(
                    f"{account}/Recordings/{{name}}",
                    self._guarded("recordings", self._fetch_recording),
                    methods=["GET"],
                ),
            ]
        )

    def _guarded(
        self, endpoint: Endpoint, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def guarded(request: Request) -> Response:
            response = self._refusal(endpoint, request) or await handler(request)
            with self._lock:
                self._state.requests.append(
                    ApiRequest(request.method, request.url.path, response.status_code)
                )
            return response

        return guarded

    def _refusal(self, endpoint: Endpoint, request: Request) -> Response | None:
        with self._lock:
            for fault in self._state.faults:
                if fault.endpoint in (None, endpoint):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._state.faults.remove(fault)
                    return _error(fault.status)
            if endpoint in self._state.down:
                return _error(self._state.down[endpoint])
        if endpoint == "recordings" and not self.recordings_require_auth:
            return None
        if not self._authorized(request):
            return _error(401, headers={"WWW-Authenticate": 'Basic realm="Twilio API"'})
        return None

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (
            scheme.lower() == "basic"
            and secrets.compare_digest(user, self.account_sid)
            and secrets.compare_digest(password, self.auth_token)
            and request.path_params["account"] == self.account_sid
        )

    async def _create_message(self, request: Request) -> Response:
        form = await request.form()
        fields = {name: value for name, value in form.items() if isinstance(value, str)}
        to, body = fields.get("To"), fields.get("Body")
        from_, service = fields.get("From"), fields.get("MessagingServiceSid")
        if not to:
            return _error(400, 21604, "A 'To' phone number is required.")
        if not from_ and not service:
            return _error(400, 21603, "A 'From' phone number is required.")
        if not body:
            return _error(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY:
            return _error(400, 21617, "The concatenated message body exceeds the 1600 limit.")
        message = SentMessage(
            sid=self.sid("SM"),
            to=to,
            from_=from_,
            body=body,
            messaging_service_sid=service,
            status_callback=fields.get("StatusCallback"),
            created=self.clock(),
            segments=segments(body),
            # With a Messaging Service the sender is picked later: the message is "accepted".
            status="queued" if from_ else "accepted",
        )
        with self._lock:
            self._state.messages.append(message)
        report = BackgroundTask(self._report, message) if message.status_callback else None
        return JSONResponse(self._message_json(message), status_code=201, background=report)

    async def _fetch_message(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        with self._lock:
            found = [m for m in self._state.messages if m.sid == sid]
        if not found:
            return _error(404)
        return JSONResponse(self._message_json(found[0]))

    async def _fetch_recording(self, request: Request) -> Response:
        sid, _, extension = request.path_params["name"].partition(".")
        with self._lock:
            recording = self._state.recordings.get(sid)
        if recording is None or extension not in ("", "wav", "json"):
            return _error(404)  # .mp3 too: the stand-in keeps only the WAV it was given
        if extension == "json":
            return JSONResponse(self._recording_json(recording))
        return Response(recording.wav, media_type="audio/x-wav")

    async def _report(self, message: SentMessage) -> None:
        """Post the status callbacks of a message, as the carrier's answers come in."""
        assert message.status_callback is not None
        with self._lock:
            final, error_code = self._state.outcomes.get(message.to, ("delivered", None))
        statuses = ["failed"] if final == "failed" else ["sent", final]
        async with httpx.AsyncClient(timeout=self._callback_timeout) as client:
            for status in statuses:
                with self._lock:
                    message.status = status
                    message.error_code = error_code if status in ("failed", "undelivered") else None
                params = _status_params(message, self.account_sid)
                await self._post_callback(client, message.status_callback, params)

    async def _post_callback(
        self, client: httpx.AsyncClient, url: str, params: dict[str, str]
    ) -> None:
        request = webhook(client, url, params, auth_token=self.auth_token, routes=self.routes)
        if not _loopback(request.url.host):  # a test must never reach the internet
            reason = f"{request.url} is not on loopback: map it in TwilioApi.routes"
            done = Callback(url, params, None, reason)
        else:
            try:
                response = await client.send(request)
                done = Callback(url, params, response.status_code)
            except httpx.HTTPError as error:  # Twilio logs 11200 and does not retry
                done = Callback(url, params, None, f"{type(error).__name__}: {error}")
        with self._changed:
            self._state.callbacks.append(done)
            self._changed.notify_all()

    def _message_json(self, message: SentMessage) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{message.sid}"
        with self._lock:
            status, error_code = message.status, message.error_code
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": message.body,
            "date_created": rfc2822(message.created),
            "date_sent": None if status in ("queued", "accepted") else rfc2822(message.created),
            "date_updated": rfc2822(message.created),
            "direction": "outbound-api",
            "error_code": error_code,
            "error_message": None,
            "from": message.from_,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": str(message.segments),
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": status,
            "subresource_uris": {"media": f"{uri}/Media.json", "feedback": f"{uri}/Feedback.json"},
            "to": message.to,
            "uri": f"{uri}.json",
        }

    def _recording_json(self, recording: Recording) -> dict[str, Any]:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording.sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "call_sid": recording.call_sid,
            "conference_sid": None,
            "channels": 1,
            "date_created": rfc2822(recording.created),
            "date_updated": rfc2822(recording.created),
            "start_time": rfc2822(recording.created),
            "duration": str(recording.duration),
            "encryption_details": None,
            "error_code": None,
            "media_url": recording.url,
            "price": None,
            "price_unit": "USD",
            "sid": recording.sid,
            "source": "RecordVerb",
            "status": "completed",
            "subresource_uris": {},
            "uri": f"{uri}.json",
        }


def segments(body: str) -> int:
    """How many SMS a body takes: GSM 7-bit 160 septets alone, 153 a part; else UCS-2
    70 units alone, 67 a part (TS 23.040 concatenation headers take the rest)."""
    septets = gsm7_septets(body)
    if septets is not None:
        return 1 if len(septets) <= 160 else math.ceil(len(septets) / 153)
    units = len(body.encode("utf-16-be")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def wav_duration(wav: bytes) -> int:
    """Whole seconds of a WAV file, as RecordingDuration: 0 only when it holds no audio."""
    try:
        with wave.open(io.BytesIO(wav)) as audio:
            frames, rate = audio.getnframes(), audio.getframerate()
    except (wave.Error, EOFError) as error:
        raise ValueError(f"not a WAV file: {error}") from error
    return 0 if frames == 0 else max(1, round(frames / rate))


def _status_params(message: SentMessage, account_sid: str) -> dict[str, str]:
    params = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "From": message.from_ or "",
        "To": message.to,
        "MessageSid": message.sid,
        "SmsSid": message.sid,
        "MessageStatus": message.status,
        "SmsStatus": message.status,
    }
    if message.messaging_service_sid:
        params["MessagingServiceSid"] = message.messaging_service_sid
    if message.error_code is not None:
        params["ErrorCode"] = str(message.error_code)
    return params


def _error(
    status: int,
    code: int | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """Twilio's error body: ``{"code", "message", "more_info", "status"}``."""
    known_code, known_message = ERRORS.get(status, (status, "Error"))
    code = code or known_code
    body = {
        "code": code,
        "message": message or known_message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local(url: str, base_url: str) -> str:
    parts = urlsplit(url)
    return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


class LocalHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """twilio's own HTTP client, sending what ``Client`` addresses to https://api.twilio.com
    (or any Twilio domain) to ``base_url`` instead."""

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(**options)
        self.base_url = base_url

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return super().request(method, _local(url, self.base_url), *args, **kwargs)


class AsyncLocalHttpClient(AsyncTwilioHttpClient):  # type: ignore[misc]
    """The same for ``Client(..., http_client=...)`` used with ``create_async`` (aiohttp)."""

    def __init__(self, base_url: str, **options: Any) -> None:
        super().__init__(**options)
        self.base_url = base_url

    async def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        **options: Any,
    ) -> Any:
        # twilio hands ``auth`` to aiohttp.BasicAuth, deprecated since aiohttp 3.14: a
        # DeprecationWarning, an error under filterwarnings=error. Send the header instead.
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers = {**(headers or {}), "Authorization": f"Basic {token}"}
        url = _local(url, self.base_url)
        return await super().request(method, url, params, data, headers, None, **options)
