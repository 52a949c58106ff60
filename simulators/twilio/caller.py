"""Twilio's side of the webhooks: signed SMS and voice requests, and a caller who follows TwiML."""

from __future__ import annotations

import io
import wave
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar
from urllib.parse import urljoin

import httpx

from simulators.twilio.api import API_VERSION, TwilioApi, rfc2822, segments, wav_duration, webhook
from simulators.twilio.twiml import (
    KEYS,
    Dial,
    Gather,
    Hangup,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
    TwimlError,
    Verb,
    parse_voice,
)

DialStatus = Literal["completed", "busy", "no-answer", "failed"]
# For the *Country parameters: E.164 prefixes, longest first. Twilio leaves City/State/Zip
# empty for most numbers outside North America.
COUNTRIES = (("+852", "HK"), ("+853", "MO"), ("+886", "TW"), ("+86", "CN"), ("+44", "GB"))


# -- the script: what the caller does when the TwiML waits for them ---------------------------


@dataclass(frozen=True)
class Press:
    """Keys pressed at a <Gather>, e.g. "1" or "1234#"."""

    keys: str


@dataclass(frozen=True)
class Silence(Press):
    """No key at a <Gather>: its timeout passes."""

    keys: str = ""


@dataclass(frozen=True)
class Speak:
    """A message left at a <Record>: WAV audio, ended by a finishOnKey key, "hangup" or
    "timeout" (silence)."""

    wav: bytes = field(repr=False)
    end: str = "#"


@dataclass(frozen=True)
class DialOutcome:
    """How the party a <Dial> rings answers; ``duration``: seconds talked when "completed"."""

    status: DialStatus = "completed"
    duration: int = 0


@dataclass(frozen=True)
class HangUp:
    """The caller hangs up at the next <Gather>, <Record> or <Dial>."""


Step = Press | Speak | DialOutcome | HangUp  # Silence is a Press of no keys
T = TypeVar("T", Press, Speak, DialOutcome)


class ScriptError(Exception):
    """The call waits for something the script does not give: the flow went elsewhere."""


class CallLoopError(RuntimeError):
    """The TwiML kept the call going past ``max_requests`` webhook requests."""


# -- what a call leaves behind ------------------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    kind: str  # "voice", "action", "redirect", "recording-status" or "status"
    method: str
    url: str  # the public URL, as signed
    params: dict[str, str]
    status_code: int | None  # None: no HTTP answer, ``body`` says why
    body: str


@dataclass(frozen=True)
class Prompt:
    verb: str  # "Say", "Play" or "Beep"
    text: str  # what is said, or the URL played
    language: str | None = None


@dataclass(frozen=True)
class DialAttempt:
    targets: tuple[str, ...]
    status: DialStatus
    call_sid: str  # DialCallSid
    caller_id: str | None  # the callerId the TwiML asked for


@dataclass
class CallResult:
    call_sid: str
    exchanges: list[Exchange] = field(default_factory=list)
    prompts: list[Prompt] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)  # each Digits submitted
    recording_sids: list[str] = field(default_factory=list)
    dials: list[DialAttempt] = field(default_factory=list)
    status: str = "ringing"  # the final CallStatus: completed, busy or no-answer
    ended_by: str = ""  # "caller", "twiml" (<Hangup>, <Reject>), "end" of document, "error"
    duration: int = 0  # CallDuration, seconds of simulated time
    error: str | None = None  # Twilio's error, e.g. 11200 when a webhook failed
    unused_steps: list[Step] = field(default_factory=list)

    @property
    def said(self) -> list[str]:
        return [prompt.text for prompt in self.prompts if prompt.verb == "Say"]


class TwilioCaller:
    """Sends Twilio's webhook requests to the gateway, signed with ``api``'s account over
    ``public_url`` (the URL the gateway is configured with), connecting to ``connect_url``
    (the address behind a reverse proxy; by default the same). ``transport`` may be an
    ``httpx.ASGITransport`` to reach an app without a socket."""

    def __init__(
        self,
        api: TwilioApi,
        public_url: str,
        *,
        connect_url: str | None = None,
        sms_path: str = "/twilio/sms",
        voice_path: str = "/twilio/voice",
        timeout: float = 15.0,  # Twilio gives a webhook 15 s
        max_requests: int = 50,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.api = api
        self.public_url = public_url.rstrip("/")
        self.routes = {self.public_url: (connect_url or public_url).rstrip("/")}
        self.sms_path = sms_path
        self.voice_path = voice_path
        self.timeout = timeout
        self.max_requests = max_requests
        self._transport = transport

    def url(self, path: str) -> str:
        """The public URL of ``path`` (an absolute URL is kept)."""
        return path if "://" in path else self.public_url + path

    def sms_params(
        self, from_: str, to: str, body: str, message_sid: str | None = None
    ) -> dict[str, str]:
        """The parameters of Twilio's incoming-SMS webhook."""
        sid = message_sid or self.api.sid("SM")
        return {
            "ToCountry": _country(to),
            "ToState": "",
            "SmsMessageSid": sid,
            "NumMedia": "0",
            "ToCity": "",
            "FromZip": "",
            "SmsSid": sid,
            "FromState": "",
            "SmsStatus": "received",
            "FromCity": "",
            "Body": body,
            "FromCountry": _country(from_),
            "To": to,
            "ToZip": "",
            "NumSegments": str(segments(body)),
            "MessageSid": sid,
            "AccountSid": self.api.account_sid,
            "From": from_,
            "ApiVersion": API_VERSION,
        }

    def call_params(self, from_: str, to: str, call_sid: str | None = None) -> dict[str, str]:
        """The parameters every voice webhook of a call carries (CallStatus is added per
        request)."""
        params = {
            "AccountSid": self.api.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call_sid or self.api.sid("CA"),
            "Direction": "inbound",
            "From": from_,
            "To": to,
            "Caller": from_,
            "Called": to,
        }
        for prefix, number in (("From", from_), ("To", to), ("Caller", from_), ("Called", to)):
            params |= {f"{prefix}City": "", f"{prefix}State": "", f"{prefix}Zip": ""}
            params[f"{prefix}Country"] = _country(number)
        return params

    async def send_sms(
        self,
        from_: str,
        to: str,
        body: str,
        message_sid: str | None = None,
        *,
        extra: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """POST an incoming SMS to ``sms_path``; ``extra`` adds or overrides parameters."""
        params = self.sms_params(from_, to, body, message_sid) | dict(extra or {})
        return await self.post(self.sms_path, params)

    async def post(
        self,
        path: str,
        params: Mapping[str, str],
        *,
        method: str = "POST",
        signature: str | None = None,
    ) -> httpx.Response:
        """Any webhook request: ``params`` exactly as given, the true signature unless
        ``signature`` forges one."""
        async with self._client() as client:
            request = webhook(
                client,
                self.url(path),
                params,
                auth_token=self.api.auth_token,
                routes=self.routes,
                method=method,
                signature=signature,
            )
            return await client.send(request)

    async def resend(self, response: httpx.Response) -> httpx.Response:
        """Send ``response``'s request again, byte for byte, as Twilio retries: the same
        signature and I-Twilio-Idempotency-Token."""
        async with self._client() as client:
            return await client.send(response.request)

    async def call(
        self,
        from_: str,
        to: str,
        script: Iterable[Step],
        *,
        call_sid: str | None = None,
        status_callback: str | None = "/twilio/status",
    ) -> CallResult:
        """Call ``to`` from ``from_``: POST ``voice_path``, follow the TwiML, take the
        caller's part from ``script``, then POST the status callback (None: not configured).

        Raises TwimlError for a document Twilio would not run, ScriptError when the call
        waits for a step the script does not give, CallLoopError past ``max_requests``.
        """
        call = _Call(self, self.call_params(from_, to, call_sid), list(script), status_callback)
        return await call.run()

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=self.timeout, transport=self._transport)


def _country(number: str) -> str:
    if number.startswith("+1"):
        return "US"
    return next((country for prefix, country in COUNTRIES if number.startswith(prefix)), "")


# -- one call -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fetch:
    """The next webhook request of the call."""

    kind: str
    url: str
    method: str = "POST"
    params: Mapping[str, str] = field(default_factory=dict)
    final: bool = False  # the caller is gone: Twilio still requests it, ignoring the TwiML
    then: Callable[[], Awaitable[None]] | None = None


@dataclass(frozen=True)
class _End:
    status: str
    by: str


class _Call:
    def __init__(
        self,
        caller: TwilioCaller,
        params: dict[str, str],
        script: list[Step],
        status_callback: str | None,
    ) -> None:
        self.caller = caller
        self.api = caller.api
        self.params = params
        self.script = script
        self.status_callback = status_callback
        self.result = CallResult(params["CallSid"])
        self.answered = False  # until the first verb other than <Reject> or <Redirect>
        self.elapsed = 0

    async def run(self) -> CallResult:
        async with self.caller._client() as self.client:
            fetch = _Fetch("voice", self.caller.url(self.caller.voice_path))
            for _ in range(self.caller.max_requests):
                step = await self.fetch(fetch)
                if isinstance(step, _End):
                    break
                fetch = step
            else:
                raise CallLoopError(f"still going after {self.caller.max_requests} requests")
            self.result.status, self.result.ended_by = step.status, step.by
            self.result.duration = self.elapsed if step.status == "completed" else 0
            if self.status_callback is not None:
                await self.send("status", self.caller.url(self.status_callback), self.status())
        self.result.unused_steps = self.script
        return self.result

    async def fetch(self, fetch: _Fetch) -> _Fetch | _End:
        status = "completed" if fetch.final else "in-progress" if self.answered else "ringing"
        params = {**self.params, "CallStatus": status, **fetch.params}
        response = await self.send(fetch.kind, fetch.url, params, fetch.method)
        if fetch.then is not None:
            await fetch.then()
        if fetch.final:
            return _End("completed", "caller")
        if response is None or not response.is_success:
            answer = "no answer" if response is None else f"HTTP {response.status_code}"
            self.result.error = f"11200 HTTP retrieval failure: {fetch.url}: {answer}"
            return _End("completed", "error")  # Twilio apologises and hangs up
        return self.play(fetch.url, _document(fetch.url, response))

    def play(self, url: str, verbs: list[Verb]) -> _Fetch | _End:
        for verb in verbs:
            if isinstance(verb, Reject):
                # Only a first <Reject> refuses the call; later it hangs up an answered one.
                if self.answered:
                    return _End("completed", "twiml")
                return _End("busy" if verb.reason == "busy" else "no-answer", "twiml")
            self.answered = self.answered or not isinstance(verb, Redirect)
            outcome = self.perform(url, verb)
            if outcome is not None:
                return outcome
        return _End("completed", "end")

    def perform(self, url: str, verb: Verb) -> _Fetch | _End | None:
        """Play one verb: None goes on with the next verb of the document."""
        match verb:
            case Say() | Play() | Pause():
                self.hear(verb)
                return None
            case Gather():
                return self.gather(url, verb)
            case Record():
                return self.record(url, verb)
            case Dial():
                return self.dial(url, verb)
            case Redirect():
                return _Fetch("redirect", urljoin(url, verb.url), verb.method)
            case Hangup():
                return _End("completed", "twiml")
        raise AssertionError(f"unhandled verb {verb!r}")

    def hear(self, verb: Say | Play | Pause) -> None:
        if isinstance(verb, Pause):
            self.elapsed += verb.length
        elif isinstance(verb, Say):
            self.result.prompts.append(Prompt("Say", verb.text, verb.language))
        else:
            self.result.prompts.append(Prompt("Play", verb.url))

    def gather(self, url: str, gather: Gather) -> _Fetch | _End | None:
        for prompt in gather.prompts:
            self.hear(prompt)
        step = self.next_step(gather, Press)
        if isinstance(step, HangUp):
            return _End("completed", "caller")
        digits, key, timed_out = _collect(gather, step.keys)
        self.elapsed += gather.timeout if timed_out else 0
        if not digits and not gather.action_on_empty_result:
            return None  # Twilio falls through to the verb after the <Gather>
        params = {"Digits": digits} if digits else {}  # actionOnEmptyResult: none at all
        if key:
            params["FinishedOnKey"] = key
        if digits:
            self.result.digits.append(digits)
        return _Fetch("action", _resolve(url, gather.action), gather.method, params)

    def record(self, url: str, record: Record) -> _Fetch | _End | None:
        if record.play_beep:
            self.result.prompts.append(Prompt("Beep", ""))
        step = self.next_step(record, Speak)
        if isinstance(step, HangUp):
            return _End("completed", "caller")
        keys = record.finish_on_key
        if step.end not in ("hangup", "timeout") and (len(step.end) != 1 or step.end not in keys):
            raise ScriptError(f"Speak(end={step.end!r}): hangup, timeout or one of {keys!r}")
        wav, clipped = _clip(step.wav, record.max_length)
        duration = wav_duration(wav)
        if duration == 0:  # Twilio does not request the action for an empty recording
            return _End("completed", "caller") if step.end == "hangup" else None
        self.elapsed += duration + (record.timeout if step.end == "timeout" else 0)
        recording = self.api.add_recording(wav, self.result.call_sid)
        self.result.recording_sids.append(recording.sid)
        params = {
            "RecordingUrl": recording.url,
            "RecordingSid": recording.sid,
            "RecordingDuration": str(recording.duration),
        }
        if not clipped and step.end != "timeout":
            params["Digits"] = step.end  # the key, or "hangup"
        callback = record.recording_status_callback

        async def recording_status() -> None:
            assert callback is not None
            status = {
                "AccountSid": self.api.account_sid,
                "CallSid": self.result.call_sid,
                "RecordingSid": recording.sid,
                "RecordingUrl": recording.url,
                "RecordingStatus": "completed",
                "RecordingDuration": str(recording.duration),
                "RecordingChannels": "1",
                "RecordingStartTime": rfc2822(recording.created),
                "RecordingSource": "RecordVerb",
                "ErrorCode": "0",
            }
            method = record.recording_status_callback_method
            await self.send("recording-status", urljoin(url, callback), status, method)

        return _Fetch(
            "action",
            _resolve(url, record.action),
            record.method,
            params,
            final=step.end == "hangup" and not clipped,
            then=recording_status if callback else None,
        )

    def dial(self, url: str, dial: Dial) -> _Fetch | _End | None:
        step = self.next_step(dial, DialOutcome)
        if isinstance(step, HangUp):
            return _End("completed", "caller")
        attempt = DialAttempt(dial.targets, step.status, self.api.sid("CA"), dial.caller_id)
        self.result.dials.append(attempt)
        answered = step.status == "completed"
        # Talk time when answered; an unanswered call rings for the whole timeout.
        if answered:
            self.elapsed += step.duration
        elif step.status == "no-answer":
            self.elapsed += dial.timeout
        if dial.action is None:
            return None  # without an action Twilio goes on with the document
        params = {
            "DialCallStatus": step.status,
            "DialCallSid": attempt.call_sid,
            "DialCallDuration": str(step.duration if answered else 0),
            "DialBridged": "true" if answered else "false",
        }
        return _Fetch("action", _resolve(url, dial.action), dial.method, params)

    def next_step(self, verb: Verb, kind: type[T]) -> T | HangUp:
        name = type(verb).__name__
        if not self.script:
            raise ScriptError(f"<{name}> waits for the caller, but the script has no step left")
        step = self.script.pop(0)
        if not isinstance(step, kind | HangUp):
            wanted = f"{kind.__name__}{', Silence' if kind is Press else ''} or HangUp"
            raise ScriptError(f"<{name}> waits for {wanted}, but the script gives {step!r}")
        return step

    def status(self) -> dict[str, str]:
        return {
            **self.params,
            "CallStatus": self.result.status,
            "CallDuration": str(self.result.duration),
            "Timestamp": rfc2822(self.api.clock()),
            "CallbackSource": "call-progress-events",
            "SequenceNumber": "0",
        }

    async def send(
        self, kind: str, url: str, params: dict[str, str], method: str = "POST"
    ) -> httpx.Response | None:
        request = webhook(
            self.client,
            url,
            params,
            auth_token=self.api.auth_token,
            routes=self.caller.routes,
            method=method,
        )
        try:
            response = await self.client.send(request)
        except httpx.HTTPError as error:  # Twilio's 11200: recorded, the call goes on
            self.result.exchanges.append(
                Exchange(kind, method, url, params, None, f"{type(error).__name__}: {error}")
            )
            return None
        self.result.exchanges.append(
            Exchange(kind, method, url, params, response.status_code, response.text)
        )
        return response


def _resolve(url: str, action: str | None) -> str:
    """Twilio resolves a relative action against the document's URL; none means that URL."""
    return urljoin(url, action) if action else url


def _document(url: str, response: httpx.Response) -> list[Verb]:
    content_type = response.headers.get("content-type", "")
    if "xml" not in content_type and "text/html" not in content_type:
        raise TwimlError(f"{url} answered Content-Type {content_type!r}: TwiML is text/xml")
    try:
        return parse_voice(response.text)
    except TwimlError as error:
        raise TwimlError(f"{url}: {error}") from error


def _collect(gather: Gather, keys: str) -> tuple[str, str, bool]:
    """The Digits a <Gather> submits for ``keys``, the finishOnKey key that ended them (or
    ""), and whether it waited out its timeout for more."""
    digits = ""
    for index, key in enumerate(keys):
        if key not in KEYS:
            raise ScriptError(f"{key!r} is not a telephone key")
        finished = key in gather.finish_on_key
        if not finished:
            digits += key
        if finished or len(digits) == gather.num_digits:
            if keys[index + 1 :]:
                raise ScriptError(f"{keys!r}: the <Gather> is over before {keys[index + 1 :]!r}")
            return digits, key if finished else "", False
    return digits, "", True


def _clip(wav: bytes, max_length: int) -> tuple[bytes, bool]:
    """``wav`` cut at ``max_length`` seconds, and whether it was."""
    try:
        with wave.open(io.BytesIO(wav)) as audio:
            params, rate = audio.getparams(), audio.getframerate()
            if audio.getnframes() <= max_length * rate:
                return wav, False
            frames = audio.readframes(max_length * rate)
    except (wave.Error, EOFError) as error:
        raise ScriptError(f"Speak.wav is not a WAV file: {error}") from error
    clipped = io.BytesIO()
    with wave.open(clipped, "wb") as out:
        out.setparams(params)
        out.writeframes(frames)
    return clipped.getvalue(), True
