"""A fax is judged on the words OCR reads off its pages, never on the fax server's cover
mail (the same subject and body for every fax from one number)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.conftest import Parts, require_tool
from tests.support.faxes import FONT
from tests.support.routing import Routed, Switchboard

CALLER = "08312345678"
STREETLIGHT = ["投诉：南溪区人民路路灯不亮", "请尽快修理"]
NOISE = ["工地夜间施工噪音很大", "请尽快处理"]


@pytest.fixture
def board(parts: Parts, engine: Engine) -> Switchboard:
    require_tool("tesseract")
    require_tool(str(FONT))
    return Switchboard(parts, engine)


def test_faxes_wait_for_ocr_then_different_pages_are_two_matters_and_the_same_one(
    board: Switchboard,
) -> None:
    first, other, again = board.fax(STREETLIGHT), board.fax(NOISE), board.fax(STREETLIGHT)
    board.route()
    waiting = Routed("received", None, None, None, (), True, CALLER, ("received",))
    assert [board.routed(n) for n in (first, other, again)] == [waiting] * 3

    assert board.read_pages() == 3
    board.route()

    assert board.routed(first) == Routed(
        "assigned",
        "complaint",
        "南溪区",
        None,
        ("city-admin",),
        False,
        CALLER,
        ("received", "ocr_done", "classified", "assigned"),
    )
    assert board.routed(other) == Routed(
        "assigned",
        None,
        None,
        None,
        ("environment",),
        False,
        CALLER,
        ("received", "ocr_done", "assigned"),
    )
    linked = board.routed(again)
    assert (linked.status, linked.duplicate_of, linked.phone) == (
        "duplicate",
        board.number(first),
        CALLER,
    )


def test_faxes_ocr_cannot_read_are_routed_on_what_is_known_never_as_duplicates(
    board: Switchboard,
) -> None:
    letters = [board.fax(STREETLIGHT), board.fax(STREETLIGHT)]
    board.route()

    assert board.read_pages(languages="xyz") == 2  # Tesseract has no such model: fails
    board.route()

    unread = Routed(
        "triage", None, None, None, (), False, CALLER, ("received", "ocr_failed", "triage")
    )
    assert [board.routed(n) for n in letters] == [unread, unread]
