"""The call desk (坐席工作台) over real HTTP, on SQLite and PostgreSQL: the operator signs their
seat in and out, and the call the queue puts through to it pops on the page — ringing, then
answered with its letter and the caller's earlier letters — with the queue driven through
its own API as a SIP worker drives it, and the call's letter stored through intake as the
worker stores it. The event stream is read from a real server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, func, select

from gateway.contract.config import SeatsConfig
from gateway.contract.contact import Attachment, Citizen
from gateway.core import acd, seats
from gateway.core.callqueue import CallQueue
from ivr.call_letters import call_letter
from store.db import make_sessionmaker
from store.models import Attachment as AttachmentRow
from store.models import CallQueueAction, ConsoleUser, Event, Letter, Seat
from tests.conftest import SHANGHAI, build_intake
from tests.console.conftest import PASSWORD, Browser, Desk, open_desk, password_hash
from tests.gateway.test_workflow import MONDAY
from tests.support.tcp_proxy import TcpProxy

SEAT = "8001"
CALL = "a84b4c76e66710@198.51.100.20;from-tag=1928301774;to-tag=314159"
CALLER = "+8613812345678"
SHOWN = "138****5678"  # the caller as an operator sees them before a reveal
T0 = MONDAY.timestamp()


def add_seat(desk: Desk, state: str = "signed_out") -> None:
    with make_sessionmaker(desk.engine).begin() as session:
        seats.add(session, SEAT, "zhang", SeatsConfig(), now=MONDAY, actor="console:root")
        if state != "signed_out":
            seats.set_state(session, SEAT, state, now=MONDAY, actor="console:zhang")


def queue_of(desk: Desk) -> CallQueue:
    return CallQueue(make_sessionmaker(desk.engine), acd.AcdConfig(), desk.clock)


def stub_letter(desk: Desk, call_id: str = CALL, caller: str | None = CALLER) -> str:
    """What the SIP worker stores the moment the seat answers."""
    raw = json.dumps({"call_id": call_id, "called": "12345"})
    contact = call_letter("sip", call_id, MONDAY, caller, None, voicemail=False, raw=raw)
    number = desk.parts.intake.accept_sync(contact).tracking_number
    assert number is not None
    return number


def earlier_letters(desk: Desk) -> tuple[str, str]:
    """One earlier letter of the caller's (their number written as a mobile without +86)
    and one of someone else's."""
    mine = desk.letter(1, citizen=Citizen(name="王五", phone="138 1234 5678"))
    theirs = desk.letter(2)
    return mine, theirs


def answered(desk: Desk, queue: CallQueue) -> list[acd.Action]:
    """A caller joins from worker w1, is offered to the seat, and the seat picks up."""
    joined = queue.handle(acd.CallerJoined(CALL, "normal", T0), "w1", registered={SEAT})
    assert joined == [acd.Offer(CALL, SEAT, 15)]
    return queue.handle(acd.OfferAnswered(CALL, SEAT, T0 + 4), "w1")


def events_of(desk: Desk, kind: str) -> list[Event]:
    with make_sessionmaker(desk.engine)() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


# -- the page -------------------------------------------------------------------------------


async def test_an_operator_without_a_seat_is_told_to_ask_for_one(desk: Desk) -> None:
    zhang = await desk.signed_in("zhang")
    page = await zhang.get("/console/desk")
    assert page.status_code == 200
    assert '<p id="no-seat">' in page.text and 'href="/console/desk"' in page.text
    refused = await zhang.post("/console/desk/state", state="available")
    assert refused.status_code == 409 and "您还没有坐席" in refused.text


@pytest.mark.parametrize("username", ["du", "ling", "li", "root"])
async def test_only_an_operator_has_a_desk(desk: Desk, username: str) -> None:
    add_seat(desk)
    other = await desk.signed_in(username)
    assert (await other.get("/console/desk")).status_code == 403
    assert (await other.post("/console/desk/state", state="available")).status_code == 403
    assert (await other.get("/console/desk/events")).status_code == 403
    assert 'href="/console/desk"' not in (await other.get("/console/")).text


async def test_the_operator_signs_the_seat_in_takes_a_break_and_signs_out(desk: Desk) -> None:
    add_seat(desk)
    zhang = await desk.signed_in("zhang")
    page = await zhang.get("/console/desk")
    assert '<span id="seat-name">8001</span>' in page.text
    assert 'class="state-signed_out">已签出</strong>' in page.text
    assert '<span id="seat-phone">未知</span>' in page.text  # no Kamailio in this test
    assert '<p class="muted" id="call-state">当前无来电。</p>' in page.text

    for state, shown in (("available", "已签入"), ("on_break", "小休")):
        desk.clock.now += timedelta(minutes=1)
        done = await zhang.post("/console/desk/state", state=state)
        assert done.status_code == 303 and done.headers["location"] == "/console/desk"
        page = await zhang.get("/console/desk")
        assert f'class="state-{state}">{shown}</strong>' in page.text
    again = await zhang.post("/console/desk/state", state="on_break")  # the same: no change
    assert again.status_code == 303
    assert (await zhang.post("/console/desk/state", state="talking")).status_code == 400
    assert (await zhang.post("/console/desk/state", state="available", csrf="x")).status_code == 403

    changes = events_of(desk, "console.seat_state_changed")
    assert [(e.actor, e.detail["state"], e.at) for e in changes] == [
        ("console:zhang", "available", MONDAY + timedelta(minutes=1)),
        ("console:zhang", "on_break", MONDAY + timedelta(minutes=2)),
    ]
    with make_sessionmaker(desk.engine)() as session:
        seat = session.scalars(select(Seat)).one()
        assert (seat.state, seat.state_since) == ("on_break", MONDAY + timedelta(minutes=2))


async def test_a_ringing_call_then_the_answered_call_pops_with_the_callers_history(
    desk: Desk,
) -> None:
    add_seat(desk, "available")
    mine, theirs = earlier_letters(desk)
    queue = queue_of(desk)
    zhang = await desk.signed_in("zhang")

    assert queue.handle(acd.CallerJoined(CALL, "normal", T0), "w1", registered={SEAT}) == [
        acd.Offer(CALL, SEAT, 15)
    ]
    ringing = (await zhang.get("/console/desk")).text
    assert '<section class="card call ringing" id="call">' in ringing
    assert '<h2 id="call-state">来电振铃</h2>' in ringing
    assert 'id="caller"' not in ringing and 'id="history"' not in ringing

    number = stub_letter(desk)
    assert queue.handle(acd.OfferAnswered(CALL, SEAT, T0 + 4), "w1") == [
        acd.Connected(CALL, SEAT, 4.0)
    ]
    talking = (await zhang.get("/console/desk")).text
    assert '<h2 id="call-state">通话中</h2>' in talking
    assert 'class="state-available">已签入</strong>（通话中）' in talking
    joined, picked_up = (
        MONDAY.astimezone(SHANGHAI),
        (MONDAY + timedelta(seconds=4)).astimezone(SHANGHAI),
    )
    assert (
        f'<p id="call-times">排队开始 {joined:%H:%M:%S} · 接通 {picked_up:%H:%M:%S} · 等待 4 秒</p>'
        in talking
    )
    assert f'<dd class="call-id">{CALL}</dd>' in talking
    assert f'<dd id="caller">{SHOWN}</dd>' in talking
    assert "13812345678" not in talking and "王五" not in talking
    assert f'<a id="call-letter" href="/console/letters/{number}">{number}</a>' in talking
    assert '<dd id="call-subject">人工坐席来电</dd>' in talking
    assert f'href="/console/letters/{number}/record"' in talking
    assert f'href="/console/letters/{number}#act-assign">交办单位</a>' in talking
    assert "直办答复" not in talking  # 直办 once it is in triage, not while received
    assert "来电人以往信件（1）" in talking
    assert f'href="/console/letters/{mine}">{mine}</a>' in talking and theirs not in talking
    assert f'href="/console/letters/{number}#citizen"' in talking  # where to reveal it

    # The caller hangs up: the desk keeps the call for its wrap-up until it is dispatched.
    queue.handle(acd.CallEnded(CALL, SEAT, T0 + 90), "w1")
    ended = (await zhang.get("/console/desk")).text
    assert '<section class="card call ended" id="call">' in ended
    assert '<h2 id="call-state">通话已结束，请完成记录</h2>' in ended
    hung_up = (MONDAY + timedelta(seconds=90)).astimezone(SHANGHAI)
    assert f" · 结束 {hung_up:%H:%M:%S}</p>" in ended
    assert f'href="/console/letters/{number}/record"' in ended and "来电人以往信件（1）" in ended
    assert "<audio" not in ended
    # The worker attaches the talk's recording once the call is over.
    talk = Attachment("call-recording.wav", "audio/wav", b"RIFF" + bytes(2044))
    assert desk.parts.intake.attach("sip", CALL, talk)
    with make_sessionmaker(desk.engine)() as session:
        file_id = session.scalars(
            select(AttachmentRow.id).where(AttachmentRow.filename == "call-recording.wav")
        ).one()
    kept = (await zhang.get("/console/desk")).text
    assert f'<audio controls preload="none" src="/console/letters/{number}/files/{file_id}"' in kept
    heard = await zhang.get(f"/console/letters/{number}/files/{file_id}")
    assert heard.content == talk.data and heard.headers["content-type"] == "audio/wav"
    # Heard by the operator: the citizen's personal data, so on the letter's history.
    with make_sessionmaker(desk.engine)() as session:
        played = session.execute(
            select(Event.actor, Event.detail).where(Event.kind == "recording_played")
        ).all()
        assert [tuple(row) for row in played] == [("console:zhang", {"file": file_id})]
    with make_sessionmaker(desk.engine).begin() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        desk.workflow.assign(
            session, letter, ["city-admin"], "assign", "time_limited", desk.operator
        )
    done = (await zhang.get("/console/desk")).text
    assert '<p class="muted" id="call-state">当前无来电。</p>' in done and number not in done


async def test_a_call_rings_only_on_the_desk_of_the_seat_it_is_offered_to(desk: Desk) -> None:
    add_seat(desk, "available")
    with make_sessionmaker(desk.engine).begin() as session:
        session.add(
            ConsoleUser(
                username="zhao",
                display_name="用户zhao",
                password_hash=password_hash(),
                role="operator",
                active=True,
                failed_logins=0,
                created_at=MONDAY,
            )
        )
        session.flush()
        seats.add(session, "8002", "zhao", SeatsConfig(), now=MONDAY, actor="console:root")
        seats.set_state(session, "8002", "available", now=MONDAY, actor="console:zhao")
    # Only 8002's phone is registered: the call rings there.
    offered = queue_of(desk).handle(acd.CallerJoined(CALL, "normal", T0), "w1", registered={"8002"})
    assert offered == [acd.Offer(CALL, "8002", 15)]
    zhao = (await (await desk.signed_in("zhao")).get("/console/desk")).text
    assert '<span id="seat-name">8002</span>' in zhao and "来电振铃" in zhao
    zhang = (await (await desk.signed_in("zhang")).get("/console/desk")).text
    assert '<span id="seat-name">8001</span>' in zhang
    assert "来电振铃" not in zhang and "当前无来电" in zhang


# -- the call's letter ------------------------------------------------------------------------


async def test_the_operator_records_the_calls_letter_on_it_during_the_call(desk: Desk) -> None:
    add_seat(desk, "available")
    queue = queue_of(desk)
    number = stub_letter(desk)
    answered(desk, queue)
    zhang = await desk.signed_in("zhang")
    form = await zhang.get(f"/console/letters/{number}/record")
    assert form.status_code == 200
    # The call's placeholder words are not offered to be deleted: the fields start empty.
    assert 'name="subject" required maxlength="100" value=""' in form.text
    assert f'通话标识 <span class="call-id">{CALL}</span>' in form.text

    missing = await zhang.post(f"/console/letters/{number}/record", subject="路灯", text="")
    assert missing.status_code == 400 and "请填写标题和来电内容" in missing.text
    bad = await zhang.post(
        f"/console/letters/{number}/record", subject="路灯", text="坏了", category="x"
    )
    assert bad.status_code == 400
    saved = await zhang.post(
        f"/console/letters/{number}/record",
        subject="人民路路灯不亮",
        text="来电反映翠屏区人民路5号门口路灯坏了三天。",
        category="complaint",
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/console/letters/{number}?done=recorded"

    with make_sessionmaker(desk.engine)() as session:
        letter = session.scalars(select(Letter).where(Letter.external_id == CALL)).one()
        assert (letter.tracking_number, letter.channel, letter.source) == (number, "phone", "sip")
        assert (letter.subject, letter.text, letter.category) == (
            "人民路路灯不亮",
            "来电反映翠屏区人民路5号门口路灯坏了三天。",
            "complaint",
        )
        assert letter.citizen is not None and letter.citizen.phone == CALLER
    [event] = events_of(desk, "recorded")
    assert (event.letter_id, event.actor, event.detail) == (
        letter.id,
        "console:zhang",
        {"category": "complaint"},
    )
    page = (await zhang.get("/console/desk")).text
    assert '<dd id="call-subject">人民路路灯不亮</dd>' in page
    again = (await zhang.get(f"/console/letters/{number}/record")).text
    assert 'value="人民路路灯不亮"' in again and "门口路灯坏了三天。</textarea>" in again
    assert '<option value="complaint" selected>' in again


async def test_only_a_phone_calls_undispatched_letter_takes_a_record(desk: Desk) -> None:
    add_seat(desk, "available")
    sms = desk.letter(3)  # routed: assigned to city-admin
    number = stub_letter(desk)
    zhang = await desk.signed_in("zhang")
    for other in (sms,):
        page = await zhang.get(f"/console/letters/{other}/record")
        assert "此信件已不能修改记录" in page.text and 'id="record"' not in page.text
        refused = await zhang.post(f"/console/letters/{other}/record", subject="a", text="b")
        assert refused.status_code == 409
    clerk = await desk.signed_in("li")
    assert (await clerk.get(f"/console/letters/{number}/record")).status_code == 403
    with make_sessionmaker(desk.engine).begin() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        desk.workflow.assign(
            session, letter, ["city-admin"], "assign", "time_limited", desk.operator
        )
    refused = await zhang.post(f"/console/letters/{number}/record", subject="a", text="b")
    assert refused.status_code == 409
    assert events_of(desk, "recorded") == []


# -- the event stream -------------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    kind: str
    id: str
    data: str


@contextlib.contextmanager
def serving(desk: Desk) -> Iterator[str]:
    """The console on a loopback port, so the stream is read as a browser reads it."""
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    server = uvicorn.Server(uvicorn.Config(desk.app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listening]})
    thread.start()
    try:
        yield f"http://127.0.0.1:{listening.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listening.close()
    assert not thread.is_alive()


@pytest.fixture
def served(desk: Desk) -> Iterator[str]:
    with serving(desk) as base:
        yield base


class Stream:
    def __init__(self, lines: AsyncIterator[str]) -> None:
        self.lines = lines

    async def next(self) -> Sent:
        """The next event (a retry field alone is none), within a few polls."""
        fields: dict[str, list[str]] = {}
        async with asyncio.timeout(10):
            async for line in self.lines:
                if line:
                    name, _, value = line.partition(": ")
                    fields.setdefault(name, []).append(value)
                elif "event" in fields:
                    return Sent(fields["event"][0], fields["id"][0], "\n".join(fields["data"]))
        raise AssertionError(f"the stream ended; last fields {fields}")

    async def until(self, shown: str) -> Sent:
        """The first event whose panel shows ``shown``: the letter is stored a moment after
        the answer, so a poll between the two sees a call without its letter yet."""
        while shown not in (sent := await self.next()).data:
            pass
        return sent


@contextlib.asynccontextmanager
async def signed_in_at(base: str, username: str) -> AsyncIterator[Browser]:
    async with httpx.AsyncClient(base_url=base, timeout=20) as client:
        browser = Browser(client)
        assert (await browser.sign_in(username, PASSWORD)).status_code == 303
        yield browser


async def test_the_stream_pops_the_call_as_it_rings_is_answered_and_ends(
    desk: Desk, served: str
) -> None:
    add_seat(desk, "available")
    mine, _ = earlier_letters(desk)
    queue = queue_of(desk)
    async with signed_in_at(served, "zhang") as zhang:
        async with zhang.client.stream("GET", "/console/desk/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["content-security-policy"].startswith("default-src 'self'")
            stream = Stream(response.aiter_lines())
            idle = await stream.next()
            assert idle.kind == "panel" and "当前无来电" in idle.data and "已签入" in idle.data

            queue.handle(acd.CallerJoined(CALL, "normal", T0), "w1", registered={SEAT})
            ringing = await stream.next()
            assert '<h2 id="call-state">来电振铃</h2>' in ringing.data and ringing.id != idle.id

            queue.handle(acd.OfferAnswered(CALL, SEAT, T0 + 4), "w1")
            number = stub_letter(desk)
            talking = await stream.until(f'<dd id="caller">{SHOWN}</dd>')
            assert '<h2 id="call-state">通话中</h2>' in talking.data
            assert "13812345678" not in talking.data
            assert f">{number}</a>" in talking.data and f">{mine}</a>" in talking.data

            queue.handle(acd.CallEnded(CALL, SEAT, T0 + 60), "w1")
            ended = await stream.next()
            assert "通话已结束，请完成记录" in ended.data and f">{number}</a>" in ended.data

        # A browser reconnecting with the last id it saw is sent nothing until a change.
        headers = {"Last-Event-ID": ended.id}
        async with zhang.client.stream("GET", "/console/desk/events", headers=headers) as response:
            stream = Stream(response.aiter_lines())
            await zhang.post("/console/desk/state", state="on_break")
            first = await stream.next()
            assert 'class="state-on_break">小休</strong>' in first.data


async def test_a_seat_not_answering_is_told_on_its_desk_and_the_notice_is_on_record(
    desk: Desk, served: str
) -> None:
    add_seat(desk, "available")
    queue = queue_of(desk)
    async with (
        signed_in_at(served, "zhang") as zhang,
        zhang.client.stream("GET", "/console/desk/events") as response,
    ):
        stream = Stream(response.aiter_lines())
        assert "当前无来电" in (await stream.next()).data
        queue.handle(acd.CallerJoined(CALL, "normal", T0), "w1", registered={SEAT})
        assert "来电振铃" in (await stream.next()).data
        # The ring timeout passes: the caller waits again, the seat is paused for 300 s.
        queue.handle(acd.Tick(T0 + 16), "w1")
        paused = await stream.next()
        until = (MONDAY + timedelta(seconds=16 + 300)).astimezone(SHANGHAI)
        assert (
            f'<p class="problem" id="not-answering" role="alert">您有来电未接听，'
            f"系统暂停向您派发来电至 {until:%H:%M:%S}。" in paused.data
        )
        assert "当前无来电" in paused.data

    [notice] = events_of(desk, "console.seat_not_answering")
    assert (notice.actor, notice.detail["seat"]) == ("acd", SEAT)
    assert notice.detail["until"] == (MONDAY + timedelta(seconds=316)).isoformat()
    with make_sessionmaker(desk.engine)() as session:
        left = session.scalar(
            select(func.count()).select_from(CallQueueAction).where(CallQueueAction.owner.is_(None))
        )
        assert left == 0
    async with signed_in_at(served, "root") as root:
        audit = (await root.get("/console/admin/audit")).text
        assert audit.count("<td>坐席未接听来电（暂停派单）</td>") == 1


async def test_the_stream_ends_when_the_session_does(desk: Desk, served: str) -> None:
    add_seat(desk)
    async with signed_in_at(served, "zhang") as zhang:
        async with zhang.client.stream("GET", "/console/desk/events") as response:
            stream = Stream(response.aiter_lines())
            assert (await stream.next()).kind == "panel"
            await zhang.post("/console/logout")
            assert (await stream.next()).kind == "ended"
        assert (await zhang.client.get("/console/desk/events")).status_code == 401


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_with_the_database_down_the_stream_ends_and_comes_back_with_it(
    database_url: str, engine: Engine, cut_engine: Engine, proxy: TcpProxy, tmp_path: Path
) -> None:
    cut = open_desk(cut_engine, build_intake(cut_engine, tmp_path))
    add_seat(cut, "available")
    with serving(cut) as base:
        async with signed_in_at(base, "zhang") as zhang:
            async with zhang.client.stream("GET", "/console/desk/events") as response:
                stream = Stream(response.aiter_lines())
                assert "已签入" in (await stream.next()).data
                proxy.down()
                with pytest.raises(AssertionError, match="the stream ended"):
                    await stream.next()
            assert (await zhang.client.get("/console/desk/events")).status_code == 503
            proxy.up()
            async with zhang.client.stream("GET", "/console/desk/events") as response:
                assert "已签入" in (await Stream(response.aiter_lines()).next()).data
