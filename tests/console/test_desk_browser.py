"""The call desk in a real browser against a running gateway: the operator signs the seat in,
a call is put through to it by the queue (driven through its API as a SIP worker drives it,
and its letter stored through intake as the worker stores it), the screen pops with the
caller's earlier letter and the call's own letter without reload, the operator records the
call on that letter in another tab, the caller hangs up, and once the operator dispatches
the letter the desk is free again."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import Page
from sqlalchemy import select

from gateway.contract.config import AcdSection, SeatsConfig
from gateway.contract.contact import Attachment
from gateway.core import acd, seats
from gateway.core.callqueue import CallQueue
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from gateway.frontends.console import accounts
from ivr.call_letters import call_letter
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.models import Event, Letter, Seat
from tests.conftest import PII, SHANGHAI
from tests.console.conftest import PASSWORD
from tests.console.test_browser import CONFIG, desk_page, write_letter
from tests.gateway.test_workflow import MONDAY
from tests.support.axe import severe_violations
from tests.support.browser import chromium, screenshot
from tests.support.processes import free_port, gateway

SEAT = "8001"
CALL = "c0ffee42@203.0.113.9;from-tag=77;to-tag=88"  # the worker's dialog key
WAIT_MS = 10_000  # a few of the stream's half-second polls, and the page's swap
TALK = b"RIFF" + bytes(8188)  # the recording's bytes, as the worker hands them over


def utcnow() -> datetime:
    return datetime.now(UTC)


def text_of(page: Page, selector: str) -> str:
    page.wait_for_selector(selector, timeout=WAIT_MS)
    return page.inner_text(selector)


def test_a_call_pops_on_the_desk_and_the_operator_records_it_on_the_calls_letter(
    tmp_path: Path,
) -> None:
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=port), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    with gateway(config), chromium() as browser:
        engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}", pii=PII)
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            accounts.add_user(s, "zhang", "张话务", "operator", PASSWORD, MONDAY)
            seats.add(s, SEAT, "zhang", SeatsConfig(), now=MONDAY, actor="console:root")
        citizen = browser.new_context(locale="zh-CN").new_page()
        earlier, _ = write_letter(citizen, base, "请问办理居住证需要什么材料？")

        operator = desk_page(browser, base, "zhang")
        operator.click("a[href='/console/desk']")
        assert text_of(operator, "#seat-state") == "已签出"
        assert text_of(operator, "#seat-phone") == "未知"  # no Kamailio on this gateway
        operator.click("#seat-available")
        operator.wait_for_selector("#seat-state.state-available")
        with sessions() as s:
            assert s.scalars(select(Seat.state)).one() == "available"
        assert text_of(operator, "#call-state") == "当前无来电。"
        operator.evaluate("window.sameDocument = true")  # gone if the page reloads

        queue = CallQueue.configured(sessions, AcdSection(), utcnow)
        # The SIP worker's door to the store, with the gateway's own files (var/attachments).
        metrics = Metrics()
        worker = Intake(
            sessions,
            AttachmentStore(tmp_path / "var" / "attachments"),
            Spool(tmp_path / "worker-spool", metrics),
            metrics,
            SHANGHAI,
        )
        offered = queue.handle(
            acd.CallerJoined(CALL, "normal", queue.now()), "w1", registered={SEAT}
        )
        assert offered == [acd.Offer(CALL, SEAT, 15)]
        operator.wait_for_selector("#call.ringing", timeout=WAIT_MS)
        assert operator.inner_text("#call-state") == "来电振铃"
        assert operator.inner_text("#desk-link").startswith("来电振铃（")  # read out
        screenshot(operator, "console-desk-ringing")

        # The seat picks up: the worker is told, and stores the call's letter at once.
        [connected] = queue.handle(acd.OfferAnswered(CALL, SEAT, queue.now()), "w1")
        assert isinstance(connected, acd.Connected)
        raw = json.dumps({"call_id": CALL, "called": "12345"})
        contact = call_letter(
            "sip", CALL, utcnow(), "+8613812345678", None, voicemail=False, raw=raw
        )
        number = worker.accept_sync(contact)
        assert number.tracking_number is not None
        call_number = number.tracking_number

        assert text_of(operator, "#caller") == "138****5678"
        assert operator.inner_text("#call-state") == "通话中"
        assert operator.inner_text("#call-letter") == call_number
        history = operator.inner_text("#history")
        assert "来电人以往信件（1）" in history and earlier in history
        assert "居住证办理" in history
        assert "13812345678" not in operator.content()
        assert operator.evaluate("window.sameDocument") is True
        screenshot(operator, "console-desk-talking")
        assert severe_violations(operator) == []

        # The operator writes the call down in another tab while the desk stays open.
        href = operator.get_attribute("#record-link", "href")
        assert href == f"/console/letters/{call_number}/record"
        form = operator.context.new_page()
        form.goto(base + href)
        form.fill("#record-subject", "小区噪音扰民")
        form.select_option("#record-category", "complaint")
        form.fill("#record-text", "来电反映翠屏区人民路小区夜间施工噪音，影响休息，请求处理。")
        assert severe_violations(form) == []
        screenshot(form, "console-desk-record")
        form.click("#record button[type=submit]")
        form.wait_for_selector(".notice")
        assert form.inner_text("#tracking-number") == call_number
        with sessions() as s:
            letter = s.scalars(select(Letter).where(Letter.external_id == CALL)).one()
            assert (letter.tracking_number, letter.channel, letter.source) == (
                call_number,
                "phone",
                "sip",
            )
            assert (letter.subject, letter.category) == ("小区噪音扰民", "complaint")
            assert letter.text == "来电反映翠屏区人民路小区夜间施工噪音，影响休息，请求处理。"
            assert letter.citizen is not None and letter.citizen.phone == "+8613812345678"
            [recorded] = s.scalars(select(Event).where(Event.kind == "recorded")).all()
            assert (recorded.letter_id, recorded.actor) == (letter.id, "console:zhang")
        # The desk follows the letter without reload.
        operator.wait_for_selector("#call-subject:text('小区噪音扰民')", timeout=WAIT_MS)

        # The caller hangs up: the desk keeps the call for its wrap-up.
        queue.handle(acd.CallEnded(CALL, SEAT, queue.now()), "w1")
        operator.wait_for_selector("#call.ended", timeout=WAIT_MS)
        assert operator.inner_text("#call-state") == "通话已结束，请完成记录"
        assert operator.inner_text("#call-letter") == call_number
        # The worker attaches the talk's recording to the call's letter: it is on the desk.
        assert worker.attach("sip", CALL, Attachment("call-recording.wav", "audio/wav", TALK))
        operator.wait_for_selector("#call audio", timeout=WAIT_MS)
        src = operator.get_attribute("#call audio", "src")
        assert src is not None and src.startswith(f"/console/letters/{call_number}/files/")
        heard = operator.request.get(base + src)
        assert (heard.status, heard.body()) == (200, TALK)
        screenshot(operator, "console-desk-wrap-up")
        assert severe_violations(operator) == []

        # 交办 from the letter's page, as any letter is dispatched: the desk is free again.
        form.select_option("#act-assign select[name=department]", "city-admin")
        form.click("#act-assign button[type=submit]")
        form.wait_for_selector(".notice")
        assert form.inner_text("#status") == "已交办"
        operator.wait_for_selector("#call:not(.ended)", timeout=WAIT_MS)
        assert operator.inner_text("#call-state") == "当前无来电。"
        assert operator.evaluate("window.sameDocument") is True
        engine.dispose()
