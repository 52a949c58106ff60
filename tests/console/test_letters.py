"""The letter pages for a voicemail or fax whose words are still being read: the inbox and
the letter say 待转写 / 待识别, and a fax's page shows its OCR text beside its pages."""

from __future__ import annotations

import re

import pytest

from gateway.frontends.console.letters import history
from tests.conftest import require_tool
from tests.console.conftest import Browser, Desk
from tests.support.faxes import FONT
from tests.support.routing import Switchboard

STREETLIGHT = "我要投诉翠屏区人民路的路灯坏了三天，请尽快修理"


def row_of(html: str, number: str) -> str:
    found = re.search(rf"<tr>(?:(?!</tr>).)*{number}(?:(?!</tr>).)*</tr>", html, re.DOTALL)
    assert found, f"{number} is not in the inbox"
    return found.group(0)


def pages_section(html: str) -> str:
    found = re.search(r'<section class="card pages read">(.*?)</section>', html, re.DOTALL)
    assert found, "no section with the pages and their text"
    return found.group(1)


async def shown_waiting(
    desk: Desk, board: Switchboard, letter: int, label: str
) -> tuple[Browser, str, str]:
    """The route job has run: the letter waits, marked so in the inbox and on its page."""
    board.route()
    number = board.number(letter)
    zhang = await desk.signed_in("zhang")
    inbox = await zhang.get("/console/inbox")
    assert f'<span class="awaiting">{label}</span>' in row_of(inbox.text, number)
    page = await zhang.get(f"/console/letters/{number}")
    assert f'<span id="awaiting-text" class="awaiting">{label}</span>' in page.text
    return zhang, number, page.text


async def test_a_voicemail_waiting_for_its_transcript_says_so_until_it_is_routed(
    desk: Desk,
) -> None:
    board = Switchboard(desk.parts, desk.engine, desk.clock)
    letter = board.voicemail(b"\x01" * 64)
    zhang, number, page = await shown_waiting(desk, board, letter, "待转写")
    assert '<p class="muted" id="transcript">等待语音转写……</p>' in page

    board.transcribe(letter, STREETLIGHT)
    board.route()

    routed = (await zhang.get(f"/console/letters/{number}")).text
    assert 'id="awaiting-text"' not in routed and "待转写" not in routed
    assert '<span id="status">已交办</span>' in routed
    assert f'<div class="text" id="transcript">{STREETLIGHT}</div>' in routed
    assert number not in (await zhang.get("/console/inbox")).text  # assigned: not new


async def test_a_fax_page_shows_the_ocr_text_beside_the_pages_once_read(desk: Desk) -> None:
    require_tool("tesseract")
    require_tool(str(FONT))
    board = Switchboard(desk.parts, desk.engine, desk.clock)
    letter = board.fax(["投诉：南溪区人民路路灯不亮", "请尽快修理"])
    zhang, number, page = await shown_waiting(desk, board, letter, "待识别")
    waiting = pages_section(page)
    assert waiting.count("<img ") == 2 and "等待文字识别" in waiting

    assert board.read_pages() == 1
    board.route()

    routed = (await zhang.get(f"/console/letters/{number}")).text
    assert "待识别" not in routed
    read = pages_section(routed)
    assert read.count("<img ") == 2
    text = re.search(r'<div class="text" id="ocr-text">(.*?)</div>', read, re.DOTALL)
    assert text and "人民路路灯不亮" in text.group(1) and "请尽快修理" in text.group(1)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_fax_ocr_could_not_read_says_so_beside_its_pages(desk: Desk) -> None:
    require_tool("tesseract")
    require_tool(str(FONT))
    board = Switchboard(desk.parts, desk.engine, desk.clock)
    number = board.number(board.fax(["请尽快修理"]))
    board.route()
    board.read_pages(languages="xyz")  # no such Tesseract model: the job gives up

    page = await (await desk.signed_in("zhang")).get(f"/console/letters/{number}")

    assert "未能识别出文字，请查看传真页面。" in pages_section(page.text)
    assert "待识别" not in page.text


def test_a_visits_history_says_how_satisfied_and_where_the_answer_came_from() -> None:
    answered = {"satisfied": True, "satisfaction": "mostly_satisfied", "by": "sms", "note": "1"}
    assert history(answered, str) == [("说明", "1"), ("满意度", "基本满意"), ("答复渠道", "短信")]
    # An operator's visit recorded before satisfaction had degrees: yes or no.
    assert history({"satisfied": False}, str) == [("满意", "否")]
