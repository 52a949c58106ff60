"""The Twilio stand-in against the real twilio package: RequestValidator, Client, TwiML."""

from __future__ import annotations

import io
import itertools
import threading
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from simulators.twilio import (
    AsyncLocalHttpClient,
    CallLoopError,
    DialOutcome,
    HangUp,
    LoopbackServer,
    Press,
    ScriptError,
    Silence,
    Speak,
    TwilioApi,
    TwilioCaller,
    TwimlError,
    parse_messages,
)
from simulators.twilio.api import FinalStatus, segments

# The gateway's configured public URL; the app really listens on a loopback port behind it.
PUBLIC = "https://hotline.example.cn"
CITIZEN = "+8613800138000"
HOTLINE = "+8651012345"
AGENT = "+8613900000000"
NOON = datetime(2024, 3, 1, 1, 30, 15, tzinfo=UTC)
SMS_PARAMETERS = {
    "MessageSid", "SmsSid", "SmsMessageSid", "AccountSid", "From", "To", "Body", "NumMedia",
    "NumSegments", "FromCity", "FromState", "FromZip", "FromCountry", "ToCity", "ToState",
    "ToZip", "ToCountry", "SmsStatus", "ApiVersion",
}  # fmt: skip
VOICE_PARAMETERS = {
    "CallSid", "AccountSid", "From", "To", "Caller", "Called", "CallStatus", "Direction",
    "ApiVersion", "FromCity", "FromState", "FromZip", "FromCountry", "ToCity", "ToState",
    "ToZip", "ToCountry", "CallerCountry", "CalledCountry",
}  # fmt: skip


def counting_sids() -> Callable[[str], str]:
    numbers = itertools.count(1)
    return lambda prefix: f"{prefix}{next(numbers):032x}"


def wav(seconds: float, rate: int = 8000) -> bytes:
    """Telephone audio: 8 kHz, 16-bit mono silence."""
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(rate)
        audio.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


# -- a tiny TwiML app standing for the gateway ---------------------------------------------------

Page = Callable[[dict[str, str]], str | Response]


@dataclass(frozen=True)
class Seen:
    method: str
    url: str  # the public URL, as the app reconstructs it behind the proxy
    params: dict[str, str]
    headers: dict[str, str]
    valid: bool


class TwimlApp:
    """Validates every request's X-Twilio-Signature as the gateway must, then answers from
    ``pages`` (path → TwiML); a path without a page (a callback) gets an empty 204."""

    def __init__(self, auth_token: str, pages: dict[str, Page]) -> None:
        self.validator = RequestValidator(auth_token)
        self.pages = pages
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    def by_path(self, path: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.url.split("?")[0] == PUBLIC + path]

    async def handle(self, request: Request) -> Response:
        url = PUBLIC + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        form = await request.form() if request.method == "POST" else {}
        params = {name: str(value) for name, value in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        valid = self.validator.validate(url, params, signature)
        with self._lock:
            self.seen.append(Seen(request.method, url, params, dict(request.headers), valid))
        if not valid:
            return Response("bad signature", status_code=403)
        if request.method == "GET":
            params = dict(request.query_params)
        page = self.pages.get(request.url.path)
        if page is None:
            return Response(status_code=204)
        answer = page(params)
        if isinstance(answer, Response):
            return answer
        return Response(f"<?xml version='1.0' encoding='UTF-8'?>{answer}", media_type="text/xml")


def welcome(params: dict[str, str]) -> str:
    return (
        "<Response>"
        '<Gather numDigits="1" action="/twilio/menu" timeout="5">'
        '<Say language="zh-CN">欢迎致电12345。留言请按1，人工服务请按2。</Say>'
        "</Gather>"
        "<Say>没有收到您的选择，再见。</Say><Hangup/>"
        "</Response>"
    )


def menu(params: dict[str, str]) -> str:
    if params["Digits"] == "1":
        return (
            "<Response><Say>请在提示音后留言，按井号键结束。</Say>"
            '<Record action="recorded" maxLength="60" finishOnKey="#"'
            ' recordingStatusCallback="/twilio/recording-status"/></Response>'
        )
    if params["Digits"] == "2":
        return (
            '<Response><Dial action="/twilio/dialed" timeout="20" callerId="+8651012345">'
            f"<Number>{AGENT}</Number></Dial></Response>"
        )
    return "<Response><Redirect>/twilio/voice</Redirect></Response>"


def recorded(params: dict[str, str]) -> str:
    return "<Response><Say>感谢您的留言。</Say><Hangup/></Response>"


def dialed(params: dict[str, str]) -> str:
    if params["DialCallStatus"] == "completed":
        return "<Response><Hangup/></Response>"
    return "<Response><Say>坐席忙，请稍后再拨。</Say></Response>"


def sms(params: dict[str, str]) -> str | Response:
    if not params.get("Body"):
        return Response("Body is required", status_code=400)
    return "<Response><Message>您的来信已收到</Message></Response>"


HOTLINE_PAGES: dict[str, Page] = {
    "/twilio/voice": welcome,
    "/twilio/menu": menu,
    "/twilio/recorded": recorded,
    "/twilio/dialed": dialed,
    "/twilio/sms": sms,
}


@pytest.fixture
def api() -> Iterator[TwilioApi]:
    with TwilioApi(sid=counting_sids(), clock=lambda: NOON) as running:
        yield running


@contextmanager
def serve(api: TwilioApi, pages: dict[str, Page]) -> Iterator[tuple[TwimlApp, TwilioCaller]]:
    hotline = TwimlApp(api.auth_token, pages)
    with LoopbackServer(hotline.app, name="twiml app") as server:
        api.routes[PUBLIC] = server.url  # the stand-in's own callbacks go through the proxy too
        yield hotline, TwilioCaller(api, PUBLIC, connect_url=server.url, max_requests=10)


@pytest.fixture
def hotline(api: TwilioApi) -> Iterator[tuple[TwimlApp, TwilioCaller]]:
    with serve(api, HOTLINE_PAGES) as served:
        yield served


# -- SMS webhooks --------------------------------------------------------------------------------


async def test_an_incoming_sms_is_signed_over_the_public_url_with_twilio_parameters(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    app, caller = hotline

    response = await caller.send_sms(CITIZEN, HOTLINE, "人民路路灯坏了三天。")

    assert response.status_code == 200
    assert parse_messages(response.text) == ["您的来信已收到"]
    [seen] = app.seen
    assert seen.valid and seen.url == f"{PUBLIC}/twilio/sms" and seen.method == "POST"
    assert set(seen.params) >= SMS_PARAMETERS
    assert seen.params["Body"] == "人民路路灯坏了三天。"
    assert seen.params["MessageSid"] == seen.params["SmsSid"] == seen.params["SmsMessageSid"]
    assert seen.params["MessageSid"].startswith("SM") and len(seen.params["MessageSid"]) == 34
    assert seen.params["AccountSid"] == api.account_sid
    assert (seen.params["FromCountry"], seen.params["SmsStatus"]) == ("CN", "received")
    assert seen.headers["user-agent"] == "TwilioProxy/1.1"
    assert seen.headers["content-type"].startswith("application/x-www-form-urlencoded")
    assert seen.headers["i-twilio-idempotency-token"]


async def test_a_retry_repeats_the_signature_and_the_idempotency_token(
    hotline: tuple[TwimlApp, TwilioCaller],
) -> None:
    app, caller = hotline

    first = await caller.send_sms(CITIZEN, HOTLINE, "路灯", message_sid="SM" + "a" * 32)
    again = await caller.resend(first)

    assert (first.status_code, again.status_code) == (200, 200)
    one, two = app.seen
    assert one.params == two.params and two.valid
    for header in ("x-twilio-signature", "i-twilio-idempotency-token"):
        assert one.headers[header] == two.headers[header]


@pytest.mark.parametrize(
    ("signature", "drop", "status", "valid"),
    [
        pytest.param("forged=", None, 403, False, id="forged-signature"),
        pytest.param(None, "Body", 400, True, id="missing-body-signed-as-sent"),
    ],
)
async def test_a_forged_or_incomplete_sms_is_detectable(
    hotline: tuple[TwimlApp, TwilioCaller],
    signature: str | None,
    drop: str | None,
    status: int,
    valid: bool,
) -> None:
    app, caller = hotline
    params = caller.sms_params(CITIZEN, HOTLINE, "路灯")
    params.pop(drop or "", None)

    response = await caller.post("/twilio/sms", params, signature=signature)

    assert response.status_code == status
    assert app.seen[0].valid is valid


async def test_a_signature_over_the_connect_address_fails_behind_a_proxy(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    app, caller = hotline
    direct = TwilioCaller(api, caller.routes[PUBLIC])  # signs what it connects to, not PUBLIC

    response = await direct.send_sms(CITIZEN, HOTLINE, "路灯")

    assert response.status_code == 403 and not app.seen[0].valid


@pytest.mark.parametrize(
    ("body", "count"),
    [
        pytest.param("a" * 160, 1, id="gsm-160"),
        pytest.param("a" * 161, 2, id="gsm-161"),
        pytest.param("€" * 80, 1, id="gsm-extension-takes-two-septets"),
        pytest.param("€" * 81, 2, id="gsm-extension-162-septets"),
        pytest.param("路" * 70, 1, id="ucs2-70"),
        pytest.param("路" * 71, 2, id="ucs2-71"),
        pytest.param("😀" * 35, 1, id="emoji-is-two-units"),
        pytest.param("😀" * 36, 2, id="emoji-72-units"),
    ],
)
def test_sms_segments_count_as_twilio_counts_them(body: str, count: int) -> None:
    assert segments(body) == count


# -- voice: the menu, voicemail, dialling --------------------------------------------------------


async def test_a_caller_leaves_a_message_through_the_menu(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    app, caller = hotline

    result = await caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(wav(2.0), end="#")])

    assert [e.kind for e in result.exchanges] == [
        "voice", "action", "action", "recording-status", "status",
    ]  # fmt: skip
    assert all(seen.valid for seen in app.seen) and len(app.seen) == 5
    assert result.said == [
        "欢迎致电12345。留言请按1，人工服务请按2。",
        "请在提示音后留言，按井号键结束。",
        "感谢您的留言。",
    ]
    assert result.prompts[0].language == "zh-CN" and result.prompts[2].verb == "Beep"
    assert result.digits == ["1"]
    assert (result.status, result.ended_by, result.unused_steps) == ("completed", "twiml", [])
    [voice] = app.by_path("/twilio/voice")
    assert set(voice.params) >= VOICE_PARAMETERS
    assert (voice.params["CallStatus"], voice.params["Direction"]) == ("ringing", "inbound")
    [choice] = app.by_path("/twilio/menu")
    assert (choice.params["Digits"], choice.params["CallStatus"]) == ("1", "in-progress")
    [action] = app.by_path("/twilio/recorded")  # "recorded" resolved against /twilio/menu
    [sid] = result.recording_sids
    assert action.params["RecordingSid"] == sid
    assert action.params["RecordingDuration"] == "2" and action.params["Digits"] == "#"
    recordings = f"{api.base_url}/2010-04-01/Accounts/{api.account_sid}/Recordings"
    assert action.params["RecordingUrl"] == f"{recordings}/{sid}"
    [status] = app.by_path("/twilio/recording-status")
    assert (status.params["RecordingStatus"], status.params["RecordingSid"]) == ("completed", sid)
    assert status.params["CallSid"] == result.call_sid
    [end] = app.by_path("/twilio/status")
    assert (end.params["CallStatus"], end.params["CallDuration"]) == ("completed", "2")


async def test_the_recording_is_fetched_with_basic_auth_only(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    _, caller = hotline
    audio = wav(3.0)
    result = await caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(audio)])
    url = result.exchanges[2].params["RecordingUrl"]
    credentials = (api.account_sid, api.auth_token)

    async with httpx.AsyncClient() as client:
        fetched = await client.get(url, auth=credentials)
        as_wav = await client.get(f"{url}.wav", auth=credentials)
        anonymous = await client.get(url)
        wrong = await client.get(url, auth=(api.account_sid, "not-the-token"))
        mp3 = await client.get(f"{url}.mp3", auth=credentials)

    assert fetched.status_code == as_wav.status_code == 200
    assert fetched.content == as_wav.content == audio
    assert fetched.headers["content-type"] == "audio/x-wav"
    assert anonymous.status_code == wrong.status_code == 401
    assert anonymous.json()["code"] == 20003
    assert mp3.status_code == 404
    resource = api.client().recordings(result.recording_sids[0]).fetch()
    assert (resource.call_sid, resource.duration, resource.status) == (
        result.call_sid, "3", "completed",
    )  # fmt: skip


async def test_hanging_up_while_recording_still_requests_the_action(
    hotline: tuple[TwimlApp, TwilioCaller],
) -> None:
    app, caller = hotline

    result = await caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(wav(4.0), end="hangup")])

    [action] = app.by_path("/twilio/recorded")
    assert (action.params["Digits"], action.params["CallStatus"]) == ("hangup", "completed")
    assert "感谢您的留言。" not in result.said  # Twilio ignores that TwiML: nobody is there
    assert (result.status, result.ended_by, result.duration) == ("completed", "caller", 4)
    assert [e.kind for e in result.exchanges][-2:] == ["recording-status", "status"]


async def test_hanging_up_during_the_menu_ends_the_call(
    hotline: tuple[TwimlApp, TwilioCaller],
) -> None:
    app, caller = hotline

    result = await caller.call(CITIZEN, HOTLINE, [HangUp()])

    assert [e.kind for e in result.exchanges] == ["voice", "status"]
    assert not app.by_path("/twilio/menu")
    assert (result.status, result.ended_by, result.digits) == ("completed", "caller", [])
    assert app.by_path("/twilio/status")[0].params["CallStatus"] == "completed"


async def test_silence_at_the_menu_falls_through_to_the_verb_after_the_gather(
    hotline: tuple[TwimlApp, TwilioCaller],
) -> None:
    _, caller = hotline

    result = await caller.call(CITIZEN, HOTLINE, [Silence()])

    assert result.said[-1] == "没有收到您的选择，再见。"
    assert [e.kind for e in result.exchanges] == ["voice", "status"]
    assert (result.ended_by, result.duration) == ("twiml", 5)  # the Gather's timeout


@pytest.mark.parametrize(
    ("outcome", "duration", "said_busy"),
    [
        pytest.param(DialOutcome("completed", 30), "30", False, id="answered"),
        pytest.param(DialOutcome("busy"), "0", True, id="busy"),
        pytest.param(DialOutcome("no-answer"), "0", True, id="no-answer"),
        pytest.param(DialOutcome("failed"), "0", True, id="failed"),
    ],
)
async def test_a_dial_reports_its_outcome_to_the_action(
    hotline: tuple[TwimlApp, TwilioCaller], outcome: DialOutcome, duration: str, said_busy: bool
) -> None:
    app, caller = hotline

    result = await caller.call(CITIZEN, HOTLINE, [Press("2"), outcome])

    [action] = app.by_path("/twilio/dialed")
    assert action.valid and action.params["DialCallStatus"] == outcome.status
    assert action.params["DialCallDuration"] == duration
    assert action.params["DialCallSid"] == result.dials[0].call_sid
    assert (result.dials[0].targets, result.dials[0].caller_id) == ((AGENT,), HOTLINE)
    assert ("坐席忙，请稍后再拨。" in result.said) is said_busy


# -- voice: TwiML as Twilio reads it ------------------------------------------------------------


def document(twiml: str) -> Page:
    return lambda params: twiml


@pytest.mark.parametrize(
    ("reason", "status"),
    [pytest.param("busy", "busy", id="busy"), pytest.param("rejected", "no-answer", id="rejected")],
)
async def test_a_first_reject_refuses_the_call(api: TwilioApi, reason: str, status: str) -> None:
    pages = {"/twilio/voice": document(f'<Response><Reject reason="{reason}"/></Response>')}
    with serve(api, pages) as (app, caller):
        result = await caller.call(CITIZEN, HOTLINE, [])

        assert (result.status, result.duration) == (status, 0)
        assert app.by_path("/twilio/status")[0].params["CallStatus"] == status


async def test_relative_actions_and_get_requests_are_signed_as_twilio_signs_them(
    api: TwilioApi,
) -> None:
    pages = {
        "/twilio/voice": document(
            '<Response><Gather action="next?step=2" method="GET" finishOnKey="*">'
            "<Play>https://cdn.example.cn/menu.wav</Play></Gather></Response>"
        ),
        "/twilio/next": document("<Response><Say>好的</Say></Response>"),
    }
    with serve(api, pages) as (app, caller):
        result = await caller.call(CITIZEN, HOTLINE, [Press("123*")])

        [step] = app.by_path("/twilio/next")
        assert step.method == "GET" and step.valid
        assert step.url.startswith(f"{PUBLIC}/twilio/next?step=2&")
        assert "Digits=123" in step.url and "FinishedOnKey=%2A" in step.url
        assert result.prompts[0].text == "https://cdn.example.cn/menu.wav"
        assert result.said == ["好的"]


async def test_action_on_empty_result_posts_the_action_without_digits(api: TwilioApi) -> None:
    pages = {
        "/twilio/voice": document(
            '<Response><Gather actionOnEmptyResult="true" action="/twilio/none"/>'
            "<Say>unreachable</Say></Response>"
        ),
        "/twilio/none": document("<Response><Hangup/></Response>"),
    }
    with serve(api, pages) as (app, caller):
        result = await caller.call(CITIZEN, HOTLINE, [Silence()])

        [action] = app.by_path("/twilio/none")
        assert "Digits" not in action.params and result.said == []


@pytest.mark.parametrize(
    ("speak", "record", "digits", "duration"),
    [
        pytest.param(Speak(wav(2.0), "timeout"), "", None, "2", id="silence-ends-it"),
        pytest.param(Speak(wav(5.0), "#"), 'maxLength="3"', None, "3", id="max-length-cuts-it"),
        pytest.param(Speak(wav(1.0), "*"), 'finishOnKey="*#"', "*", "1", id="another-key"),
    ],
)
async def test_a_recording_ends_as_the_record_verb_says(
    api: TwilioApi, speak: Speak, record: str, digits: str | None, duration: str
) -> None:
    twiml = f"<Response><Record {record}/></Response>"
    pages: dict[str, Page] = {
        "/twilio/voice": lambda params: "<Response/>" if "RecordingUrl" in params else twiml
    }
    with serve(api, pages) as (app, caller):
        result = await caller.call(CITIZEN, HOTLINE, [speak])

        action = app.by_path("/twilio/voice")[1]  # no action attribute: the document's URL
        assert action.params.get("Digits") == digits
        assert action.params["RecordingDuration"] == duration
        async with httpx.AsyncClient(auth=(api.account_sid, api.auth_token)) as client:
            recording = await client.get(action.params["RecordingUrl"])
        with wave.open(io.BytesIO(recording.content)) as audio:
            assert round(audio.getnframes() / audio.getframerate()) == int(duration)
        assert result.ended_by == "end"


async def test_an_empty_recording_goes_on_with_the_next_verb(api: TwilioApi) -> None:
    pages = {"/twilio/voice": document("<Response><Record/><Say>没有录到</Say></Response>")}
    with serve(api, pages) as (_, caller):
        result = await caller.call(CITIZEN, HOTLINE, [Speak(wav(0))])

        assert result.said == ["没有录到"] and result.recording_sids == []


async def test_a_redirect_loop_stops_at_the_request_limit(api: TwilioApi) -> None:
    pages = {"/twilio/voice": document("<Response><Redirect>/twilio/voice</Redirect></Response>")}
    with serve(api, pages) as (app, caller):
        with pytest.raises(CallLoopError):
            await caller.call(CITIZEN, HOTLINE, [])

        assert len(app.seen) == caller.max_requests


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        pytest.param(Response("hello", media_type="text/plain"), "Content-Type", id="plain-text"),
        pytest.param(Response("<Response>", media_type="text/xml"), "not XML", id="broken-xml"),
        pytest.param(Response("<html/>", media_type="text/xml"), "<Response>", id="not-response"),
        pytest.param(
            Response("<Response><Speak/></Response>", media_type="text/xml"),
            "not a TwiML voice verb",
            id="unknown-verb",
        ),
        pytest.param(
            Response('<Response><Gather input="speech"/></Response>', media_type="text/xml"),
            "only DTMF",
            id="speech-gather",
        ),
        pytest.param(
            Response('<Response><Pause length="soon"/></Response>', media_type="text/xml"),
            "not an integer",
            id="bad-attribute",
        ),
    ],
)
async def test_a_response_that_is_not_twiml_is_rejected_clearly(
    api: TwilioApi, answer: Response, message: str
) -> None:
    pages: dict[str, Page] = {"/twilio/voice": lambda params: answer}
    with serve(api, pages) as (_, caller), pytest.raises(TwimlError, match=message):
        await caller.call(CITIZEN, HOTLINE, [])


async def test_a_failing_webhook_ends_the_call_with_error_11200(api: TwilioApi) -> None:
    pages: dict[str, Page] = {"/twilio/voice": lambda params: Response(status_code=503)}
    with serve(api, pages) as (app, caller):
        result = await caller.call(CITIZEN, HOTLINE, [])

        assert result.error is not None and result.error.startswith("11200")
        assert (result.ended_by, len(app.by_path("/twilio/status"))) == ("error", 1)


async def test_a_script_that_does_not_fit_the_flow_fails_clearly(
    hotline: tuple[TwimlApp, TwilioCaller],
) -> None:
    _, caller = hotline

    with pytest.raises(ScriptError, match="<Gather> waits for Press, Silence or HangUp"):
        await caller.call(CITIZEN, HOTLINE, [DialOutcome("busy")])
    with pytest.raises(ScriptError, match="no step left"):
        await caller.call(CITIZEN, HOTLINE, [])


# -- the REST API through twilio.rest.Client -------------------------------------------------------


def test_client_messages_create_reaches_the_stand_in_and_status_callbacks_arrive_signed(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    app, _ = hotline
    client = api.client()

    message = client.messages.create(
        to=CITIZEN, from_=HOTLINE, body="您的来信已受理", status_callback=f"{PUBLIC}/sms-status"
    )

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert (message.status, message.direction, message.num_segments) == (
        "queued", "outbound-api", "1",
    )  # fmt: skip
    assert message.date_created == NOON and message.account_sid == api.account_sid
    [sent] = api.messages
    assert (sent.to, sent.from_, sent.body) == (CITIZEN, HOTLINE, "您的来信已受理")
    api.wait_for_callbacks(2)
    callbacks = app.by_path("/sms-status")
    assert [c.params["MessageStatus"] for c in callbacks] == ["sent", "delivered"]
    assert all(c.valid and c.params["MessageSid"] == message.sid for c in callbacks)
    assert client.messages(message.sid).fetch().status == "delivered"


def test_a_callback_to_an_unrouted_host_never_leaves_the_machine(api: TwilioApi) -> None:
    callback = "https://hotline.example.cn/twilio/status"

    api.client().messages.create(to=CITIZEN, from_=HOTLINE, body="x", status_callback=callback)

    sent, delivered = api.wait_for_callbacks(2)
    assert sent.status_code is None and sent.error is not None
    assert "not on loopback" in sent.error and delivered.params["MessageStatus"] == "delivered"


@pytest.mark.parametrize(
    ("final", "code", "statuses"),
    [
        pytest.param("undelivered", 30003, ["sent", "undelivered"], id="undelivered"),
        pytest.param("failed", 30008, ["failed"], id="failed"),
    ],
)
def test_an_undelivered_or_failed_message_reports_its_error_code(
    hotline: tuple[TwimlApp, TwilioCaller],
    api: TwilioApi,
    final: FinalStatus,
    code: int,
    statuses: list[str],
) -> None:
    app, _ = hotline
    api.set_outcome(CITIZEN, final, code)

    api.client().messages.create(
        to=CITIZEN, from_=HOTLINE, body="回复", status_callback=f"{PUBLIC}/sms-status"
    )

    api.wait_for_callbacks(len(statuses))
    callbacks = app.by_path("/sms-status")
    assert [c.params["MessageStatus"] for c in callbacks] == statuses
    assert callbacks[-1].params["ErrorCode"] == str(code)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        pytest.param({"From": HOTLINE, "Body": "x"}, 21604, id="no-to"),
        pytest.param({"To": CITIZEN, "Body": "x"}, 21603, id="no-from"),
        pytest.param({"To": CITIZEN, "From": HOTLINE}, 21602, id="no-body"),
        pytest.param({"To": CITIZEN, "From": HOTLINE, "Body": "长" * 1601}, 21617, id="too-long"),
    ],
)
def test_an_incomplete_message_is_refused_with_twilio_codes(
    api: TwilioApi, fields: dict[str, str], code: int
) -> None:
    url = f"{api.base_url}/2010-04-01/Accounts/{api.account_sid}/Messages.json"

    refused = httpx.post(url, data=fields, auth=(api.account_sid, api.auth_token))

    assert refused.status_code == 400
    assert refused.json() == {
        "code": code,
        "message": refused.json()["message"],
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": 400,
    }
    assert api.messages == []


def test_wrong_credentials_get_twilio_401(api: TwilioApi) -> None:
    client = Client(api.account_sid, "wrong", http_client=api.client().http_client)

    with pytest.raises(TwilioRestException) as refused:
        client.messages.create(to=CITIZEN, from_=HOTLINE, body="x")

    assert (refused.value.status, refused.value.code) == (401, 20003)


def test_pointing_the_api_domain_at_the_stand_in_works_too(api: TwilioApi) -> None:
    client = Client(api.account_sid, api.auth_token)
    client.api.base_url = api.base_url

    assert client.messages.create(to=CITIZEN, from_=HOTLINE, body="x").status == "queued"


async def test_the_async_client_reaches_the_stand_in(api: TwilioApi) -> None:
    http_client = AsyncLocalHttpClient(api.base_url)
    client = Client(api.account_sid, api.auth_token, http_client=http_client)
    try:
        message = await client.messages.create_async(to=CITIZEN, from_=HOTLINE, body="异步")
    finally:
        await http_client.close()

    assert message.body == "异步" and api.messages[0].sid == message.sid


# -- fault injection ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 429, 503])
def test_the_next_requests_fail_with_the_status_given(api: TwilioApi, status: int) -> None:
    client = api.client()
    api.fail_next(status, times=2)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as refused:
            client.messages.create(to=CITIZEN, from_=HOTLINE, body="x")
        assert refused.value.status == status and refused.value.code == 20000 + status

    assert client.messages.create(to=CITIZEN, from_=HOTLINE, body="x").status == "queued"
    assert [r.status_code for r in api.requests] == [status, status, 201]


async def test_faults_can_target_one_endpoint(
    hotline: tuple[TwimlApp, TwilioCaller], api: TwilioApi
) -> None:
    _, caller = hotline
    result = await caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(wav(1.0))])
    url = result.exchanges[2].params["RecordingUrl"]
    api.fail_next(429, endpoint="recordings")
    api.set_down("messages", 503)
    client = api.client()

    with pytest.raises(TwilioRestException):
        client.messages.create(to=CITIZEN, from_=HOTLINE, body="x")
    async with httpx.AsyncClient(auth=(api.account_sid, api.auth_token)) as http:
        assert (await http.get(url)).status_code == 429
        assert (await http.get(url)).status_code == 200
    api.set_down("messages", None)
    assert client.messages.create(to=CITIZEN, from_=HOTLINE, body="x").status == "queued"
