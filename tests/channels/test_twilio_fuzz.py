"""A fuzz of Twilio's signed webhook parameters through the real app (issue 15): whatever a
signed request carries, it is a letter holding exactly what was sent, or a clear 4xx; never
a 500 nor an exception, and the next good request is still a letter. Each request is
signed for the parameters it carries, so the fuzz reaches the parsing behind the signature.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from starlette.applications import Starlette

from gateway.contract.config import Config, TwilioConfig
from ivr.flow import CallState
from ivr.menu import AgentConfig, IvrConfig, WorkingHours
from simulators.twilio import TwilioApi, TwilioCaller
from store.db import make_sessionmaker
from store.models import Letter, MissedCall
from tests.channels.test_twilio import webhooks
from tests.conftest import Parts

PUBLIC = "https://hotline.example.cn/12345"
ACCOUNT, TOKEN = "AC" + "5e" * 16, "f00d" * 8
CITIZEN, HOTLINE = "+8613800138000", "+862887654321"
SHAPES = {  # Twilio's documented SID shapes, written again here as the oracle
    "AccountSid": ("AC",),
    "MessageSid": ("SM", "MM"),
    "SmsSid": ("SM", "MM"),
    "SmsMessageSid": ("SM", "MM"),
    "MessagingServiceSid": ("MG",),
    "CallSid": ("CA",),
    "DialCallSid": ("CA",),
    "ParentCallSid": ("CA",),
    "RecordingSid": ("RE",),
}
HEX32 = re.compile(r"[0-9a-fA-F]{32}")
RECORDING = CallState(step="recording", category="complaint").encode()
MENU = CallState(step="menu").encode()


@dataclass
class Rig:
    """The Twilio webhooks as a Starlette app, reached through ASGI (no socket), and what
    each stored request was."""

    caller: TwilioCaller
    engine: Engine
    runner: asyncio.Runner
    serial: int = 0
    stored: dict[str, dict[str, str]] = field(default_factory=dict)

    def sid(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:032x}"

    def post(self, path: str, params: dict[str, str]) -> httpx.Response:
        return self.runner.run(self.caller.post(path, params))

    def letter(self, external_id: str) -> Letter | None:
        with make_sessionmaker(self.engine)() as s:
            found = s.scalars(select(Letter).where(Letter.external_id == external_id)).all()
            assert len(found) <= 1
            if found:
                found[0].citizen  # noqa: B018  # loaded while the session is open
            return found[0] if found else None

    def missed(self, call: str) -> bool:
        with make_sessionmaker(self.engine)() as s:
            found = s.scalars(select(MissedCall).where(MissedCall.call_id == call)).first()
            return found is not None

    def count(self) -> int:
        with make_sessionmaker(self.engine)() as s:
            return int(s.scalar(select(func.count(Letter.id))) or 0)


@pytest.fixture
def rig(engine: Engine, parts: Parts) -> Iterator[Rig]:
    api = TwilioApi(account_sid=ACCOUNT, auth_token=TOKEN)  # for signing: never started
    settings = TwilioConfig(enabled=True, account_sid=ACCOUNT, auth_token=TOKEN, public_url=PUBLIC)
    hours = WorkingHours(start=time(0), end=time(0))  # agents around the clock
    ivr = IvrConfig(agent=AgentConfig(uri="sip:queue@callcentre.local", working_hours=hours))
    config = Config(channels={"twilio": settings}, ivr=ivr)  # type: ignore[arg-type]
    hooks = webhooks(config, parts, engine, lambda: datetime.now(UTC))
    app = Starlette(routes=hooks.routes())
    # raise_app_exceptions (httpx's default): an uncaught exception fails the example.
    transport = httpx.ASGITransport(app=app)
    caller = TwilioCaller(api, PUBLIC, connect_url="http://gateway.test", transport=transport)
    with asyncio.Runner() as runner:
        yield Rig(caller, engine, runner)


def shaped(name: str, value: str | None) -> bool:
    return value is not None and value[:2] in SHAPES[name] and bool(HEX32.fullmatch(value[2:]))


def expected_status(params: dict[str, str], needed: tuple[str, ...]) -> int:
    """What the request should get: 400 for a SID not of Twilio's shape, then 403 for
    another account's, then 400 for a parameter Twilio always sends missing, else 200."""
    for name in SHAPES:
        if (name in params or name == "AccountSid") and not shaped(name, params.get(name)):
            return 400
    if params["AccountSid"].lower() != ACCOUNT.lower():
        return 403
    return 400 if any(not params.get(name) for name in needed) else 200


def assert_clear_refusal(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.text.strip(), "a refusal says why"


# -- the fuzzed parts of a request ---------------------------------------------------------
# A request starts as Twilio sends it; one to three of its parameters are then fuzzed (None
# drops one), so most requests get past the signature and the SIDs to the parsing behind.

# Any character but a lone surrogate, and often one that means something to a form's
# encoding, to the signature or to a database.
CHARS = st.one_of(
    st.characters(codec="utf-8"), st.sampled_from(list(" +%&=;\"'<>\\\r\n\t\x00\u3000坏。"))
)
TEXT = st.text(CHARS, max_size=200)
GONE = st.none()
FILLER = "0" * 32  # in a good SID, replaced by a serial so that every letter is new


@st.composite
def sid_of(draw: st.DrawFn, good: str) -> str | None:
    """A SID lengthened, cut, re-prefixed, any text, or missing (None)."""
    change = draw(st.sampled_from(["append", "cut", "prefix", "any", "drop"]))
    if change == "append":
        return good + draw(st.text(min_size=1, max_size=12))
    if change == "cut":
        return good[: draw(st.integers(0, len(good) - 1))]
    if change == "prefix":
        return draw(st.sampled_from(["SM", "MM", "CA", "RE", "AC", "sm", "S", ""])) + good[2:]
    return draw(TEXT) if change == "any" else None


ACCOUNTS = st.one_of(
    sid_of(ACCOUNT), st.sampled_from([ACCOUNT.upper(), "AC" + "0123456789abcdef" * 2])
)
NUMBERS = st.one_of(  # what a count or a duration might be sent as
    st.sampled_from(["0", "1", "3", "10", "11", "180", "99999999999999999999", "-1", " 1"]),
    st.sampled_from(["", "1e9", "nan", "inf", "3.5", "1_0", "0x10", "+1", "0" * 40]),
    st.sampled_from(["²", "٣", "①", "１", "Ⅻ", "〇", "𝟗"]),  # digits, to str.isdigit()
    st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=3),  # ٣, ², ①
    TEXT,
)
EXTRA = st.dictionaries(st.text(min_size=1, max_size=20), TEXT, min_size=1, max_size=3)
COMMON = {
    "AccountSid": ACCOUNTS,
    "From": st.one_of(TEXT, GONE),
    "To": st.one_of(TEXT, GONE),
    "extra": EXTRA,
}
SMS = COMMON | {
    "Body": GONE,  # the body itself is always fuzzed
    "MessageSid": sid_of("SM" + FILLER),
    "SmsSid": sid_of("SM" + FILLER),
    "SmsMessageSid": sid_of("MM" + FILLER),
    "NumMedia": st.one_of(NUMBERS, GONE),
    "MediaUrl0": st.one_of(TEXT, GONE),
    "MediaContentType0": st.one_of(TEXT, GONE),
    "MediaUrl9": TEXT,
}
CALL = COMMON | {
    "CallSid": sid_of("CA" + FILLER),
    "RecordingSid": sid_of("RE" + FILLER),
    "RecordingUrl": st.one_of(TEXT, GONE),
    "RecordingDuration": st.one_of(NUMBERS, GONE),
    "Digits": st.one_of(st.sampled_from(["#", "*", "hangup", "12", "0"]), TEXT, GONE),
    "DialCallStatus": st.one_of(TEXT, GONE),
    "CallStatus": st.one_of(TEXT, GONE),
    "state": TEXT,  # the call state in the callback URL, as if Twilio sent another one
}


@st.composite
def fuzzed(
    draw: st.DrawFn, fields: dict[str, st.SearchStrategy[Any]], *names: str
) -> dict[str, Any]:
    """One or two of ``names`` (all of ``fields`` when none are named) with fuzzed values
    (sampled_from draws evenly; st.sets would favour the first names)."""
    chosen = sorted(names or fields)
    first, second = draw(st.sampled_from(chosen)), draw(st.sampled_from([None, *chosen]))
    return {name: draw(fields[name]) for name in sorted({first, second} - {None})}


def changed(rig: Rig, params: dict[str, str], changes: dict[str, Any]) -> dict[str, str]:
    serial = rig.sid("")
    for name, value in changes.items():
        if name == "extra":
            params |= value
        elif name != "state":
            if isinstance(value, str) and name.endswith("Sid"):
                value = value.replace(FILLER, serial)
            put(params, name, value)
    return params


def put(params: dict[str, str], name: str, value: str | None) -> None:
    if value is None:
        params.pop(name, None)
    else:
        params[name] = value


def sms_params(rig: Rig, body: str, changes: dict[str, Any]) -> dict[str, str]:
    params = rig.caller.sms_params(CITIZEN, HOTLINE, body, rig.sid("SM"))
    if "NumMedia" not in changes and any(name.startswith("Media") for name in changes):
        params["NumMedia"] = "1"
    return changed(rig, params, changes)


def assert_sms_outcome(rig: Rig, params: dict[str, str], response: httpx.Response) -> None:
    status = expected_status(params, ("MessageSid", "From"))
    if status != 200:
        assert_clear_refusal(response, status)
        return
    assert response.status_code == 200, response.text
    assert "<Response" in response.text
    sid = params["MessageSid"]
    first = rig.stored.setdefault(sid, params)  # a retry is the first request's letter
    letter = rig.letter(sid)
    assert letter is not None
    assert (letter.channel, letter.source) == ("sms", "twilio")
    assert letter.text == first.get("Body", "").replace("\x00", "\ufffd")
    assert letter.citizen is not None and letter.citizen.phone == first["From"]
    assert json.loads(letter.raw or "{}") == {k: v for k, v in first.items() if k != "AccountSid"}


def assert_still_serving(rig: Rig) -> None:
    sid = rig.sid("SM")
    before = rig.count()
    good = rig.post("/twilio/sms", rig.caller.sms_params(CITIZEN, HOTLINE, "井盖丢了", sid))
    assert good.status_code == 200, good.text
    letter = rig.letter(sid)
    assert letter is not None and letter.text == "井盖丢了" and rig.count() == before + 1


FUZZ = settings(
    max_examples=100,
    deadline=5000,  # ms for one request and its checks; a few ms is usual
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_any_signed_sms_request_is_a_letter_of_exactly_what_was_sent_or_a_clear_4xx(
    rig: Rig,
) -> None:
    @FUZZ
    @given(TEXT, fuzzed(SMS))
    def one(body: str, changes: dict[str, Any]) -> None:
        params = sms_params(rig, body, changes)
        note(f"params={params!r}")
        before = rig.count()
        response = rig.post("/twilio/sms", params)
        assert_sms_outcome(rig, params, response)
        if response.status_code != 200:
            assert rig.count() == before
        assert_still_serving(rig)

    one()


# -- calls: the IVR's steps --------------------------------------------------------------

CALLER = ("AccountSid", "CallSid", "From", "To", "extra")
STEPS = [  # (path, the state we issued for it, the parameters it reads)
    pytest.param("/twilio/voice", None, CALLER, id="answer"),
    pytest.param("/twilio/voice/digit", MENU, ("Digits", "state", *CALLER), id="digit"),
    pytest.param(
        "/twilio/voice/recorded",
        RECORDING,
        ("RecordingUrl", "RecordingDuration", "RecordingSid", "Digits", "state", "CallSid"),
        id="recorded",
    ),
    pytest.param(
        "/twilio/voice/dialed",
        CallState(step="transfer").encode(),
        ("DialCallStatus", "state", "CallSid"),
        id="dialed",
    ),
    pytest.param("/twilio/status", None, ("CallStatus", *CALLER), id="status"),
]
A_CALL = {  # what Twilio adds to the call's parameters at the steps that use them
    "Digits": "1",
    "RecordingUrl": PUBLIC + "/rec",
    "RecordingSid": "RE" + FILLER,
    "RecordingDuration": "5",
    "DialCallStatus": "completed",
    "CallStatus": "completed",
}


def call_request(
    rig: Rig, path: str, state: str | None, changes: dict[str, Any]
) -> tuple[str, dict[str, str]]:
    params = rig.caller.call_params(CITIZEN, HOTLINE, rig.sid("CA")) | A_CALL
    params = changed(rig, params, changes)
    params["RecordingSid"] = params.get("RecordingSid", "").replace(FILLER, rig.sid(""))
    if state is not None:
        # Encoded as Twilio calls (and signs) the URL.
        path += "?s=" + quote(changes.get("state", state), safe="")
    return path, params


@pytest.mark.parametrize(("step", "state", "names"), STEPS)
def test_any_signed_call_request_is_twiml_a_letter_of_the_caller_or_a_clear_4xx(
    rig: Rig, step: str, state: str | None, names: tuple[str, ...]
) -> None:
    @settings(FUZZ, max_examples=30)
    @given(fuzzed(CALL, *names))
    def one(changes: dict[str, Any]) -> None:
        path, params = call_request(rig, step, state, changes)
        note(f"path={path!r} params={params!r}")
        response = rig.post(path, params)
        assert response.status_code in (200, 204, 400, 403), (response.status_code, response.text)
        status = expected_status(params, ())
        if status != 200:
            assert_clear_refusal(response, status)
        if response.status_code >= 400:
            assert response.text.strip()
            if shaped("CallSid", params.get("CallSid")):  # else no key PostgreSQL could hold
                assert rig.letter(params["CallSid"]) is None
        elif shaped("CallSid", params.get("CallSid")):
            letter = rig.letter(params["CallSid"])
            if step.endswith("/recorded"):  # a voicemail, or too short: a call to return
                assert letter is not None or rig.missed(params["CallSid"])
            if letter is not None:  # a voicemail or an agent's stub: the caller, exactly
                assert letter.channel == "phone"
                assert letter.citizen is not None and letter.citizen.phone == params["From"]
                raw = json.loads(letter.raw or "{}")
                assert raw == {k: v for k, v in params.items() if k != "AccountSid"}
        assert_still_serving(rig)

    one()


# -- the inputs of issue 15 for Twilio, and what the fuzz found ---------------------------

SMS_CASES = [
    # (changes to a good SMS, the status, the words the answer or the stored text has)
    pytest.param({"Body": "路灯\x00坏了"}, 200, "路灯\ufffd坏了", id="nul-in-the-body"),
    pytest.param({"NumMedia": "²"}, 200, "见附件", id="found-numMedia-superscript-two"),
    pytest.param({"NumMedia": "١"}, 200, "见附件", id="numMedia-arabic-indic-one"),
    pytest.param(
        {"MessageSid": "SM" + FILLER + "NumMedia0", "NumMedia": None},
        400,
        "MessageSid",
        id="replay-numMedia0-appended-to-the-sid",
    ),
    pytest.param({"AccountSid": "AC" + "0" * 32}, 403, "AccountSid", id="another-account"),
    pytest.param({"Body": "坏" * 22000}, 400, "64KB", id="body-past-the-field-limit"),
]


@pytest.mark.parametrize(("changes", "status", "said"), SMS_CASES)
def test_an_sms_of_issue_15_gets_its_answer(
    rig: Rig, changes: dict[str, Any], status: int, said: str
) -> None:
    params = changed(rig, rig.caller.sms_params(CITIZEN, HOTLINE, "见附件", rig.sid("SM")), changes)
    response = rig.post("/twilio/sms", params)
    assert response.status_code == status, response.text
    letter = rig.letter(params.get("MessageSid", "-"))
    if status == 200:
        assert letter is not None and letter.text == said
        assert letter.citizen is not None and letter.citizen.phone == CITIZEN
    else:
        assert said in response.text and letter is None
    assert_still_serving(rig)


CALL_CASES = [
    pytest.param("²", 400, "RecordingDuration", id="found-duration-superscript-two"),
    pytest.param("nan", 400, "RecordingDuration", id="duration-nan"),
    pytest.param("-5", 400, "RecordingDuration", id="duration-negative"),
    pytest.param("abc", 400, "RecordingDuration", id="duration-words"),
    pytest.param("5", 200, "", id="duration-whole-seconds"),
    pytest.param("5.5", 200, "", id="duration-with-a-fraction"),
]


@pytest.mark.parametrize(("duration", "status", "said"), CALL_CASES)
def test_a_recording_callback_of_issue_15_gets_its_answer(
    rig: Rig, duration: str, status: int, said: str
) -> None:
    path, params = call_request(rig, "/twilio/voice/recorded", RECORDING, {})
    params["RecordingDuration"] = duration
    response = rig.post(path, params)
    assert response.status_code == status, response.text
    assert said in response.text
    letter = rig.letter(params["CallSid"])
    assert (letter is not None) == (status == 200)
    if letter is not None:
        assert (letter.channel, letter.category) == ("phone", "complaint")
        assert letter.citizen is not None and letter.citizen.phone == CITIZEN


@pytest.mark.parametrize(
    "outbox",
    ["²", "99999999999999999999999", "-1", "1e3", "１"],
    ids=["superscript-two", "past-any-row-id", "negative", "exponent", "fullwidth-one"],
)
def test_a_delivery_report_naming_no_row_we_could_have_is_ignored(rig: Rig, outbox: str) -> None:
    params = {
        "AccountSid": ACCOUNT,
        "MessageSid": rig.sid("SM"),
        "MessageStatus": "delivered",
        "To": CITIZEN,
    }
    response = rig.post("/twilio/status?outbox=" + quote(outbox), params)
    assert response.status_code == 204, response.text
    assert_still_serving(rig)
