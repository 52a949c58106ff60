"""The Twilio channel against the Twilio stand-in: signed webhooks over real HTTP, TwiML
followed as Twilio follows it, recordings fetched with basic auth, SMS sent through the
real twilio REST client."""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import logging
import threading
import wave
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl
from xml.etree import ElementTree

import pytest
from sqlalchemy import Engine, select
from starlette.applications import Starlette
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator

from channels.twilio.inbound import TwilioWebhooks
from channels.twilio.media import MEDIA_JOB, MediaHandler, on_api_host
from channels.twilio.rest import TwilioSms
from gateway.contract.config import Config, JobsConfig, TwilioConfig
from gateway.core.messages import queue_message
from gateway.engine.outbox import DeliveryReports, delivery_handlers
from gateway.engine.workers import GiveUp, Handler, JobRunner
from ivr.call_letters import call_letter
from ivr.menu import AgentConfig, IvrConfig, WorkingHours
from simulators.twilio import DialOutcome, HangUp, Press, Silence, Speak, TwilioApi, TwilioCaller
from simulators.twilio.api import LoopbackServer
from store.db import make_engine, make_sessionmaker
from store.jobs import JobQueue
from store.models import Event, Job, Letter, MissedCall, OutboxMessage
from tests.conftest import PII, Parts, count_rows
from tests.support.processes import free_port, gateway

PUBLIC = "https://hotline.example.cn/12345"
CITIZEN, HOTLINE = "+8613800138000", "+862887654321"


def wav(seconds: float = 3.0) -> bytes:
    """A tone, as a caller's message would arrive from Twilio (8 kHz mono 16-bit)."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        frames = bytearray()
        for n in range(int(8000 * seconds)):
            frames += int(8000 * ((n // 20) % 2 * 2 - 1)).to_bytes(2, "little", signed=True)
        w.writeframes(bytes(frames))
    return out.getvalue()


@dataclass
class Hotline:
    api: TwilioApi
    caller: TwilioCaller
    engine: Engine
    parts: Parts
    settings: TwilioConfig

    def letters(self) -> list[Letter]:
        with make_sessionmaker(self.engine)() as s:
            return list(s.scalars(select(Letter).order_by(Letter.id)))

    def run_jobs(self, *handlers: Handler) -> None:
        self.run_kinds({h.kind: h for h in handlers})

    def run_kinds(self, handlers: Mapping[str, Handler]) -> None:
        runner = JobRunner(JobQueue(make_sessionmaker(self.engine)), handlers, JobsConfig())
        while runner.run_one(list(runner.handlers)):
            pass


def webhooks(
    config: Config, parts: Parts, engine: Engine, clock: Callable[[], datetime]
) -> TwilioWebhooks:
    """Twilio's webhooks wired as the gateway wires them (gateway.registry)."""
    return TwilioWebhooks(
        config,
        parts.intake.accept,
        parts.intake.missed_calls(config.channels.twilio.source),
        DeliveryReports(make_sessionmaker(engine), clock).record_status,
        clock,
    )


# Agents around the clock, so the tests do not depend on the hour they run at.
AROUND_THE_CLOCK = WorkingHours(start=time(0), end=time(0))
QUEUE_ENTRY = "sip:queue@sip.hotline.example"


@pytest.fixture
def hotline(engine: Engine, parts: Parts) -> Iterator[Hotline]:
    agent = AgentConfig(uri="sip:queue@callcentre.local", working_hours=AROUND_THE_CLOCK)
    yield from running(engine, parts, agent)


@pytest.fixture
def seats_hotline(engine: Engine, parts: Parts) -> Iterator[Hotline]:
    """The hotline's own seats answer, on the SIP side: Twilio hands callers over there."""
    agent = AgentConfig(queue=True, working_hours=AROUND_THE_CLOCK)
    yield from running(engine, parts, agent, queue_uri=QUEUE_ENTRY)


def running(
    engine: Engine, parts: Parts, agent: AgentConfig, queue_uri: str | None = None
) -> Iterator[Hotline]:
    with TwilioApi() as api:
        settings = TwilioConfig(
            enabled=True,
            account_sid=api.account_sid,
            auth_token=api.auth_token,
            public_url=PUBLIC,
            api_url=api.base_url,
            sms_route=True,
            from_number=HOTLINE,
            queue_uri=queue_uri,
        )
        ivr = IvrConfig(agent=agent)
        config = Config(channels={"twilio": settings}, ivr=ivr)  # type: ignore[arg-type]
        clock = lambda: datetime.now(UTC)  # noqa: E731
        hooks = webhooks(config, parts, engine, clock)
        server = LoopbackServer(Starlette(routes=hooks.routes()))
        url = server.start()
        # Twilio signs for the public address; the proxy in front forwards to us.
        api.routes[PUBLIC] = url
        try:
            caller = TwilioCaller(api, PUBLIC, connect_url=url)
            yield Hotline(api, caller, engine, parts, settings)
        finally:
            server.stop()


async def test_an_sms_is_a_letter_and_twilios_retry_is_the_same_letter(hotline: Hotline) -> None:
    first = await hotline.caller.send_sms(CITIZEN, HOTLINE, "人民路的路灯坏了三天。")
    assert first.status_code == 200 and first.headers["content-type"].startswith("text/xml")
    assert "<Response" in first.text
    retry = await hotline.caller.resend(first)
    assert retry.status_code == 200
    [letter] = hotline.letters()
    assert (letter.channel, letter.source, letter.text) == (
        "sms",
        "twilio",
        "人民路的路灯坏了三天。",
    )
    assert letter.external_id.startswith("SM")
    assert "AccountSid" not in json.loads(letter.raw or "{}")


async def test_a_forged_signature_gets_403_and_a_log_line(
    hotline: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    params = hotline.caller.sms_params(CITIZEN, HOTLINE, "伪造")
    with caplog.at_level(logging.WARNING):
        forged = await hotline.caller.post("/twilio/sms", params, signature="bm90IGEgc2lnbmF0dXJl")
    assert forged.status_code == 403
    assert "twilio.bad_signature" in caplog.text
    unsigned = await hotline.caller.post("/twilio/sms", params, signature="")
    assert unsigned.status_code == 403
    assert hotline.letters() == []


async def test_a_signature_for_another_address_is_refused(hotline: Hotline) -> None:
    elsewhere = TwilioCaller(
        hotline.api, "https://attacker.example", connect_url=hotline.api.routes[PUBLIC]
    )
    refused = await elsewhere.send_sms(CITIZEN, HOTLINE, "换了地址")
    assert refused.status_code == 403


async def test_a_request_missing_a_parameter_gets_400(hotline: Hotline) -> None:
    params = hotline.caller.sms_params(CITIZEN, HOTLINE, "没有发信人")
    del params["From"]
    response = await hotline.caller.post("/twilio/sms", params)
    assert response.status_code == 400 and "From" in response.text
    assert hotline.letters() == []


async def test_a_call_through_the_menu_to_a_voicemail_becomes_a_complaint_with_its_audio(
    hotline: Hotline, parts: Parts
) -> None:
    message = wav(4)
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(message, end="#")])
    assert result.error is None, result.error
    said = " ".join(result.said)
    assert "12345市民热线" in said and "投诉请按1" in said and "请在提示音后留言" in said
    assert "您的留言已记录" in said and result.ended_by == "twiml"
    [letter] = hotline.letters()
    assert (letter.channel, letter.category, letter.external_id) == (
        "phone",
        "complaint",
        result.call_sid,
    )
    with make_sessionmaker(hotline.engine)() as s:
        assert s.get(Letter, letter.id).citizen.phone == CITIZEN  # type: ignore[union-attr]
    media = MediaHandler(make_sessionmaker(hotline.engine), parts.files, hotline.settings, _now)
    await asyncio.to_thread(hotline.run_jobs, media)
    with make_sessionmaker(hotline.engine)() as s:
        stored = s.get(Letter, letter.id)
        assert stored is not None
        [attachment] = stored.attachments
        assert parts.files.path_of(attachment.sha256).read_bytes() == message
        kinds = [j.kind for j in s.scalars(select(Job).where(Job.letter_id == letter.id))]
        assert "transcribe" in kinds
        # Routing waits for what the caller said, not for the recording alone.
        assert (stored.text_source, stored.text_pending) == ("transcription", True)


async def test_a_voicemail_twilio_named_no_recording_for_is_routed_without_waiting(
    hotline: Hotline, parts: Parts
) -> None:
    contact = call_letter(
        "twilio", "CA0001", _now(), CITIZEN, "help", voicemail=True, jobs=(MEDIA_JOB,), raw="{}"
    )
    parts.intake.accept_sync(contact)
    sessions = make_sessionmaker(hotline.engine)
    media = MediaHandler(sessions, parts.files, hotline.settings, _now, after_text=("route",))

    await asyncio.to_thread(hotline.run_jobs, media)

    with sessions() as s:
        letter = s.scalars(select(Letter)).one()
        jobs = s.execute(select(Job.kind, Job.status).order_by(Job.id)).all()
        events = s.scalars(select(Event.kind).order_by(Event.id)).all()
    assert letter.text_pending is False
    assert [tuple(j) for j in jobs] == [(MEDIA_JOB, "failed"), ("route", "queued")]
    assert events == ["received", "media_fetch_failed"]


def heard_number(said: list[str], after: str) -> str:
    """The characters said one per <Say> after a sentence (number_is, code_is)."""
    prompts = IvrConfig().prompts
    characters = {getattr(prompts, f"digit_{c.lower()}"): c for c in "0123456789X"}
    start = said.index(after) + 1
    return "".join(
        characters[s] for s in itertools.takewhile(characters.__contains__, said[start:])
    )


async def test_the_caller_hears_their_number_and_code_twice_before_goodbye(
    hotline: Hotline,
) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("2"), Speak(wav(3))])

    [letter] = hotline.letters()
    prompts = IvrConfig().prompts
    told = result.said[result.said.index(prompts.stored) :]
    again = told.index(prompts.number_again)
    for said in (told[:again], told[again:]):
        assert heard_number(said, prompts.number_is) == letter.tracking_number
        assert heard_number(said, prompts.code_is) == letter.verification_code
    assert told[-2:] == [prompts.write_down, prompts.goodbye]


async def test_a_retried_recording_callback_is_still_one_letter(hotline: Hotline) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("2"), Speak(wav(3))])
    recorded = next(e for e in result.exchanges if "/recorded" in e.url)
    again = await hotline.caller.post(recorded.url.removeprefix(PUBLIC), recorded.params)
    assert again.status_code == 200
    assert [letter.category for letter in hotline.letters()] == ["help"]


async def test_silence_twice_more_leads_to_a_voicemail_filed_as_other(hotline: Hotline) -> None:
    script = [Silence(), Silence(), Silence(), Speak(wav(3))]
    result = await hotline.caller.call(CITIZEN, HOTLINE, script)
    assert sum("没有收到您的按键" in s for s in result.said) == 2
    assert [letter.category for letter in hotline.letters()] == ["other"]


async def test_the_agent_answers_and_the_call_is_a_stub_to_complete(hotline: Hotline) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("9"), DialOutcome("completed", 60)])
    assert result.dials and "sip:queue@callcentre.local" in str(result.dials[0])
    [letter] = hotline.letters()
    assert letter.category is None and "待坐席补充记录" in letter.text


async def test_no_agent_answering_leads_to_a_voicemail(hotline: Hotline) -> None:
    script = [Press("9"), DialOutcome("no-answer"), Speak(wav(3))]
    result = await hotline.caller.call(CITIZEN, HOTLINE, script)
    assert any("人工服务暂时无法接通" in s for s in result.said)
    assert [letter.category for letter in hotline.letters()] == ["other"]


async def test_with_seats_a_caller_is_handed_over_to_the_sip_sides_queue(
    seats_hotline: Hotline,
) -> None:
    """9 dials the seats' queue entry on the SIP side, which answers, queues and stores what
    becomes of the call (tests/channels/sip/test_queue_calls.py): nothing is stored here."""
    hotline = seats_hotline
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("9"), DialOutcome("completed", 90)])
    [dial] = result.dials
    assert dial.targets == [QUEUE_ENTRY] or QUEUE_ENTRY in str(dial.targets)
    assert any("正在为您转接人工服务" in s for s in result.said)
    assert result.status == "completed"
    assert hotline.letters() == []
    with make_sessionmaker(hotline.engine)() as s:
        assert s.scalars(select(MissedCall)).all() == []


async def test_with_the_sip_side_unreachable_the_caller_leaves_a_message(
    seats_hotline: Hotline,
) -> None:
    hotline = seats_hotline
    script = [Press("9"), DialOutcome("failed"), Speak(wav(3))]
    result = await hotline.caller.call(CITIZEN, HOTLINE, script)
    assert any("请在提示音后留言" in s for s in result.said)
    [letter] = hotline.letters()
    assert letter.category == "other" and letter.channel == "phone"


async def test_with_seats_but_no_queue_entry_to_dial_9_leads_to_a_message(
    engine: Engine, parts: Parts
) -> None:
    agent = AgentConfig(queue=True, working_hours=AROUND_THE_CLOCK)
    for hotline in running(engine, parts, agent):
        result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("9"), Speak(wav(3))])
        assert result.dials == []
        assert any("人工服务暂时无法接通" in s for s in result.said)
        assert [letter.category for letter in hotline.letters()] == ["other"]


async def test_hanging_up_in_the_menu_puts_the_caller_on_the_callback_list(
    hotline: Hotline,
) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [HangUp()])
    assert result.status == "completed"
    assert hotline.letters() == []
    with make_sessionmaker(hotline.engine)() as s:
        [missed] = s.scalars(select(MissedCall)).all()
        assert (missed.call_id, missed.reason) == (result.call_sid, "hung_up_in_menu")
        assert missed.citizen is not None and missed.citizen.phone == CITIZEN


async def test_a_message_too_short_is_a_missed_call_not_a_letter(hotline: Hotline) -> None:
    await hotline.caller.call(CITIZEN, HOTLINE, [Press("3"), Speak(wav(0.5), end="hangup")])
    assert hotline.letters() == []
    assert count_rows(hotline.engine, MissedCall) == 1


async def test_a_call_state_we_did_not_issue_gets_400(hotline: Hotline) -> None:
    params = hotline.caller.call_params(CITIZEN, HOTLINE)
    response = await hotline.caller.post(
        "/twilio/voice/digit?s=nonsense", {**params, "Digits": "1"}
    )
    assert response.status_code == 400


async def test_a_receipt_goes_out_through_twilio_and_its_delivery_comes_back(
    hotline: Hotline, parts: Parts, tmp_path: Path
) -> None:
    await hotline.caller.send_sms(CITIZEN, HOTLINE, "路灯坏了")
    [letter] = hotline.letters()
    sessions = make_sessionmaker(hotline.engine)
    with sessions.begin() as s:
        queue_message(s, "sms", letter.id, CITIZEN, {"body": "您的诉求已受理"}, _now())
    sender = TwilioSms(hotline.settings)
    delivery = delivery_handlers(sessions, {"sms": sender.deliver}, _now, "hotline.local")
    await asyncio.to_thread(hotline.run_kinds, delivery)
    [sent] = hotline.api.messages
    assert (sent.to, sent.body) == (CITIZEN, "您的诉求已受理")
    await asyncio.to_thread(hotline.api.wait_for_callbacks, 2)
    with sessions() as s:
        [message] = s.scalars(select(OutboxMessage)).all()
        assert message.status == "delivered"
        assert message.payload["sent"]["twilio_sid"] == sent.sid


async def test_twilio_refusing_a_number_gives_up_and_an_outage_is_retried(
    hotline: Hotline,
) -> None:
    sender = TwilioSms(hotline.settings)
    hotline.api.fail_next(503, endpoint="messages")
    with pytest.raises(TwilioRestException) as outage:  # raised: the job runner retries it
        await asyncio.to_thread(sender.deliver, CITIZEN, {"body": "x"}, "<outbox-1@h>")
    assert outage.value.status == 503
    with pytest.raises(GiveUp, match="21604"):  # no number: it would fail every time
        await asyncio.to_thread(sender.deliver, "", {"body": "x"}, "<outbox-1@h>")


def _now() -> datetime:
    return datetime.now(UTC)


async def test_hotline_serve_takes_twilio_sms_with_the_token_from_the_environment(
    tmp_path: Path,
) -> None:
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    config = tmp_path / "config.yaml"
    with TwilioApi() as api:
        config.write_text(
            f"http:\n  port: {port}\n"
            "channels:\n  smtp:\n    enabled: false\n  gsm:\n    enabled: false\n"
            "  sip:\n    enabled: false\n"
            f"  twilio:\n    enabled: true\n    account_sid: {api.account_sid}\n"
            f"    public_url: {public}\n    api_url: {api.base_url}\n"
            "stt:\n  workers: 0\nrouting:\n  enabled: false\n",
            encoding="utf-8",
        )
        with gateway(config, HOTLINE_TWILIO_AUTH_TOKEN=api.auth_token):
            caller = TwilioCaller(api, public)
            sent = await caller.send_sms(CITIZEN, HOTLINE, "井盖丢了")
            assert sent.status_code == 200
            forged = await TwilioCaller(TwilioApi(), public).send_sms(CITIZEN, HOTLINE, "x")
            assert forged.status_code == 403
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}", pii=PII)
    try:
        assert count_rows(engine, Letter) == 1
    finally:
        engine.dispose()


async def test_the_twiml_asks_for_one_digit_then_records_until_the_hash_key(
    hotline: Hotline,
) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("4"), Speak(wav(3))])
    menu = ElementTree.fromstring(result.exchanges[0].body)
    gather = menu.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "true" and gather.get("input") == "dtmf"
    assert gather.get("action", "").startswith(PUBLIC + "/twilio/voice/digit?s=")
    assert [say.get("language") for say in gather.iter("Say")] == ["cmn-CN", "cmn-CN"]
    chosen = ElementTree.fromstring(result.exchanges[1].body)
    record = chosen.find("Record")
    assert record is not None
    assert (record.get("finishOnKey"), record.get("maxLength"), record.get("playBeep")) == (
        "#",
        "180",
        "true",
    )
    assert chosen.find("Redirect") is not None  # nothing recorded at all comes back to us


def _sid(prefix: str) -> str:
    return prefix + "0123456789abcdef" * 2


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, object]]:
    return [getattr(r, "fields", {}) for r in caplog.records if r.getMessage() == event]


async def test_a_replayed_sms_with_its_sid_lengthened_is_refused_though_its_signature_holds(
    hotline: Hotline, caplog: pytest.LogCaptureFixture
) -> None:
    sent = await hotline.caller.send_sms(CITIZEN, HOTLINE, "人民路的路灯坏了三天。")
    params = dict(parse_qsl(sent.request.content.decode(), keep_blank_values=True))
    signature = sent.request.headers["x-twilio-signature"]
    # Twilio signs names and values run together: "…MessageSidSM…NumMedia0NumSegments1…".
    del params["NumMedia"]
    params["MessageSid"] += "NumMedia0"
    assert RequestValidator(hotline.api.auth_token).validate(
        PUBLIC + "/twilio/sms", params, signature
    )

    with caplog.at_level(logging.WARNING):
        replayed = await hotline.caller.post("/twilio/sms", params, signature=signature)

    assert replayed.status_code == 400 and "MessageSid" in replayed.text
    assert len(hotline.letters()) == 1
    [logged] = _logged(caplog, "twilio.bad_request")
    assert logged["path"] == "/twilio/sms" and "MessageSid" in str(logged["reason"])


SMS_SIDS = [
    pytest.param({"MessageSid": _sid("CA")}, "MessageSid", id="a-call-sid-as-message-sid"),
    pytest.param({"MessageSid": _sid("SM")[:-1]}, "MessageSid", id="31-hex-digits"),
    pytest.param({"MessageSid": _sid("SM")[:-1] + "g"}, "MessageSid", id="not-hex"),
    pytest.param({"MessageSid": "SM1"}, "MessageSid", id="short"),
    pytest.param({"SmsSid": _sid("SM") + "x"}, "SmsSid", id="sms-sid-lengthened"),
    pytest.param({"AccountSid": _sid("AC") + "0"}, "AccountSid", id="account-sid-lengthened"),
    pytest.param({"AccountSid": ""}, "AccountSid", id="no-account-sid"),
]


@pytest.mark.parametrize(("changes", "named"), SMS_SIDS)
async def test_an_sms_with_a_sid_not_of_twilios_shape_gets_400_and_no_letter(
    hotline: Hotline, caplog: pytest.LogCaptureFixture, changes: dict[str, str], named: str
) -> None:
    with caplog.at_level(logging.WARNING):
        refused = await hotline.caller.send_sms(CITIZEN, HOTLINE, "伪造", extra=changes)
    assert refused.status_code == 400 and named in refused.text
    assert hotline.letters() == []
    [logged] = _logged(caplog, "twilio.bad_request")
    assert named in str(logged["reason"])


@pytest.mark.parametrize("prefix", ["SM", "MM"], ids=["sms", "mms"])
async def test_message_sids_of_both_documented_kinds_are_letters(
    hotline: Hotline, prefix: str
) -> None:
    sid = prefix + "ABCDEF0123456789" * 2  # Twilio's pattern allows either case
    sent = await hotline.caller.send_sms(CITIZEN, HOTLINE, "井盖丢了", message_sid=sid)
    assert sent.status_code == 200
    assert [letter.external_id for letter in hotline.letters()] == [sid]


CALL_SIDS = [
    pytest.param("CallSid", _sid("SM"), id="a-message-sid-as-call-sid"),
    pytest.param("CallSid", _sid("CA") + "Digits1", id="call-sid-lengthened"),
    pytest.param("RecordingSid", "RE/../../etc/passwd", id="recording-sid-a-path"),
    pytest.param("RecordingSid", _sid("CA"), id="a-call-sid-as-recording-sid"),
]


@pytest.mark.parametrize(("name", "value"), CALL_SIDS)
async def test_a_recording_callback_with_a_sid_not_of_twilios_shape_gets_400_and_no_letter(
    hotline: Hotline, caplog: pytest.LogCaptureFixture, name: str, value: str
) -> None:
    result = await hotline.caller.call(CITIZEN, HOTLINE, [Press("1"), Speak(wav(3))])
    recorded = next(e for e in result.exchanges if "/recorded" in e.url)
    params = {**recorded.params, "CallSid": _sid("CA"), name: value}
    with caplog.at_level(logging.WARNING):
        refused = await hotline.caller.post(recorded.url.removeprefix(PUBLIC), params)
    assert refused.status_code == 400 and name in refused.text
    assert [letter.external_id for letter in hotline.letters()] == [result.call_sid]
    [logged] = _logged(caplog, "twilio.bad_request")
    assert name in str(logged["reason"])


OTHER_ACCOUNT = [
    pytest.param("/twilio/sms", "sms", id="sms"),
    pytest.param("/twilio/voice", "call", id="call"),
    pytest.param("/twilio/status", "call", id="status-callback"),
]


@pytest.mark.parametrize(("path", "kind"), OTHER_ACCOUNT)
async def test_a_signed_request_for_another_account_gets_403_and_no_letter(
    hotline: Hotline, caplog: pytest.LogCaptureFixture, path: str, kind: str
) -> None:
    params = (
        hotline.caller.sms_params(CITIZEN, HOTLINE, "别的账户的短信")
        if kind == "sms"
        else hotline.caller.call_params(CITIZEN, HOTLINE) | {"CallStatus": "completed"}
    )
    params["AccountSid"] = _sid("AC")  # of Twilio's shape, and signed with our token
    with caplog.at_level(logging.WARNING):
        refused = await hotline.caller.post(path, params)
    assert refused.status_code == 403 and "AccountSid" in refused.text
    assert hotline.letters() == [] and count_rows(hotline.engine, MissedCall) == 0
    [logged] = _logged(caplog, "twilio.other_account")
    assert (logged["path"], logged["account"]) == (path, _sid("AC"))


async def test_our_account_sid_is_ours_in_either_case(hotline: Hotline) -> None:
    ours = hotline.settings.account_sid
    shouted = await hotline.caller.send_sms(
        CITIZEN, HOTLINE, "大写的账户", extra={"AccountSid": "AC" + ours[2:].upper()}
    )
    assert shouted.status_code == 200
    assert [letter.text for letter in hotline.letters()] == ["大写的账户"]


@dataclass
class HeaderRecorder:
    """A plain HTTP server on loopback, standing for a host that is not Twilio's: it
    records every request's path and headers, and answers with a WAV, or with a redirect
    when ``redirect_to`` is set."""

    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    redirect_to: str | None = None

    def __enter__(self) -> HeaderRecorder:
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                recorder.seen.append((self.path, dict(self.headers.items())))
                if recorder.redirect_to:
                    self.send_response(307)
                    self.send_header("Location", recorder.redirect_to + self.path)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = wav(1)
                self.send_response(200)
                self.send_header("Content-Type", "audio/x-wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def authorized(self) -> list[str]:
        return [path for path, headers in self.seen if "authorization" in map(str.lower, headers)]


def _media_outcome(hotline: Hotline) -> tuple[list[str], list[tuple[str, str]], list[str]]:
    """The one letter's attachment names, its jobs' (kind, status), and why media failed."""
    with make_sessionmaker(hotline.engine)() as s:
        [letter] = s.scalars(select(Letter)).all()
        jobs = s.execute(select(Job.kind, Job.status).order_by(Job.id)).all()
        failed = s.scalars(select(Event).where(Event.kind == "media_fetch_failed")).all()
        return (
            sorted(a.filename for a in letter.attachments),
            [(kind, status) for kind, status in jobs],
            [str(e.detail.get("error")) for e in failed],
        )


TWILIO_API = "https://api.twilio.com"
API_HOST_CHECKS = [
    pytest.param(TWILIO_API + "/2010-04-01/Accounts/AC1/Recordings/RE1", True, id="twilio"),
    pytest.param("https://API.twilio.com:443/x", True, id="its-port-and-any-case"),
    pytest.param("http://api.twilio.com/x", False, id="plain-http"),
    pytest.param("https://api.twilio.com:8443/x", False, id="another-port"),
    pytest.param("https://api.twilio.com:x/x", False, id="a-port-not-a-number"),
    pytest.param("https://api.twilio.com.evil.example/x", False, id="a-longer-name"),
    pytest.param("https://api.twilio.com@evil.example/x", False, id="twilio-as-user-info"),
    pytest.param("https://evil.example/?u=https://api.twilio.com", False, id="in-the-query"),
    pytest.param("file:///etc/passwd", False, id="a-file"),
    pytest.param("/2010-04-01/x", False, id="no-host"),
]


@pytest.mark.parametrize(("url", "ours"), API_HOST_CHECKS)
def test_media_is_fetched_with_our_credentials_only_from_twilios_api(url: str, ours: bool) -> None:
    assert on_api_host(url, TWILIO_API) is ours


# (api_url, the recording's URL): {here} is the Twilio stand-in's host and port, {port}
# the port of a server that is not it.
FOREIGN_MEDIA = [
    pytest.param("http://{here}", "http://127.0.0.1:{port}/rec", id="another-port"),
    pytest.param("http://{here}", "http://localhost:{port}/rec", id="another-host"),
    pytest.param("http://{here}", "http://{here}@127.0.0.1:{port}/rec", id="ours-as-user-info"),
    pytest.param("https://127.0.0.1:{port}", "http://127.0.0.1:{port}/rec", id="not-https"),
]


@pytest.mark.parametrize(("api_url", "url"), FOREIGN_MEDIA)
async def test_a_recording_on_a_host_not_twilios_is_never_fetched_with_our_credentials(
    hotline: Hotline, parts: Parts, api_url: str, url: str
) -> None:
    here = hotline.settings.api_url.removeprefix("http://")
    with HeaderRecorder() as elsewhere:
        port = elsewhere.server.server_address[1]
        settings = hotline.settings.model_copy(
            update={"api_url": api_url.format(here=here, port=port)}
        )
        raw = {"RecordingUrl": url.format(here=here, port=port), "RecordingSid": _sid("RE")}
        contact = call_letter(
            "twilio",
            _sid("CA"),
            _now(),
            CITIZEN,
            "help",
            voicemail=True,
            jobs=(MEDIA_JOB,),
            raw=json.dumps(raw),
        )
        parts.intake.accept_sync(contact)
        media = MediaHandler(make_sessionmaker(hotline.engine), parts.files, settings, _now)
        await asyncio.to_thread(hotline.run_jobs, media)
    assert elsewhere.seen == []  # not even a request without them
    names, jobs, [error] = _media_outcome(hotline)
    assert (names, jobs) == ([], [(MEDIA_JOB, "failed")])
    assert "not fetched from" in error and settings.api_url in error


async def test_an_mms_fetches_its_photo_from_twilio_and_not_the_one_elsewhere(
    hotline: Hotline, parts: Parts
) -> None:
    photo = hotline.api.add_recording(wav(1), _sid("CA"))  # any file Twilio serves
    with HeaderRecorder() as elsewhere:
        media_params = {
            "NumMedia": "2",
            "MediaUrl0": photo.url + ".wav",
            "MediaContentType0": "audio/x-wav",
            "MediaUrl1": elsewhere.url + "/photo.jpg",
            "MediaContentType1": "image/jpeg",
        }
        sent = await hotline.caller.send_sms(CITIZEN, HOTLINE, "见附件", extra=media_params)
        assert sent.status_code == 200
        media = MediaHandler(make_sessionmaker(hotline.engine), parts.files, hotline.settings, _now)
        await asyncio.to_thread(hotline.run_jobs, media)
    assert elsewhere.seen == []
    names, jobs, [error] = _media_outcome(hotline)
    assert names == ["mms-1.wav"] and jobs[0] == (MEDIA_JOB, "failed")
    assert "127.0.0.1" in error


async def test_a_redirect_away_from_twilio_does_not_carry_our_credentials(
    hotline: Hotline, parts: Parts
) -> None:
    # Twilio answers a recording's URL with a redirect to its file store: the
    # credentials stay with Twilio's host (httpx drops them when the origin changes).
    with HeaderRecorder() as store, HeaderRecorder(redirect_to=store.url) as api:
        settings = hotline.settings.model_copy(update={"api_url": api.url})
        raw = {"RecordingUrl": api.url + "/rec", "RecordingSid": _sid("RE")}
        contact = call_letter(
            "twilio",
            _sid("CA"),
            _now(),
            CITIZEN,
            "help",
            voicemail=True,
            jobs=(MEDIA_JOB,),
            raw=json.dumps(raw),
        )
        parts.intake.accept_sync(contact)
        media = MediaHandler(make_sessionmaker(hotline.engine), parts.files, settings, _now)
        await asyncio.to_thread(hotline.run_jobs, media)
    assert api.authorized() == ["/rec.wav"]
    assert [path for path, _ in store.seen] == ["/rec.wav"] and store.authorized() == []
    names, _, errors = _media_outcome(hotline)
    assert (names, errors) == ([f"voicemail-{raw['RecordingSid']}.wav"], [])
