"""A clerk's letters are those assigned to their department now — not one it returned (退件)
nor one moved on to another department — and of a hidden citizen (report, anonymous,
confidential) a clerk gets neither the details nor a file that identifies them."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from gateway.core.workflow import OPERATOR, Actor
from store.db import make_sessionmaker
from store.models import Attachment, Letter
from tests.console.conftest import Desk
from tests.support.canaries import REPORTER
from tests.support.hiding import CASES, FAXED, HIDING, VOICE, VOICED

OPERATOR_ZHANG = Actor(OPERATOR, "zhang")


def files_of(desk: Desk, number: str) -> list[int]:
    with make_sessionmaker(desk.engine)() as session:
        return list(
            session.scalars(
                select(Attachment.id)
                .join(Letter)
                .where(Letter.tracking_number == number)
                .order_by(Attachment.id)
            )
        )


def assign(desk: Desk, number: str, department: str) -> None:
    with make_sessionmaker(desk.engine).begin() as session:
        letter = session.scalars(select(Letter).where(Letter.tracking_number == number)).one()
        desk.workflow.assign(session, letter, [department], "assign", "time_limited", desk.operator)


@pytest.mark.parametrize("why", CASES)
async def test_a_hidden_citizens_voicemail_never_reaches_the_clerk(desk: Desk, why: str) -> None:
    number = desk.letter(1, **VOICED, **HIDING.get(why, {}))
    photo, voicemail = files_of(desk, number)
    hidden = why in HIDING
    li = await desk.signed_in("li")

    page = (await li.get(f"/console/letters/{number}")).text
    assert ("不向承办单位提供" in page) == hidden
    assert (REPORTER.name in page or "159****1357" in page) == (not hidden)
    assert (f"/files/{voicemail}" in page) == (not hidden)
    heard = await li.get(f"/console/letters/{number}/files/{voicemail}")
    assert heard.status_code == (404 if hidden else 200)
    assert (heard.content == VOICE.data) == (not hidden)
    assert (await li.get(f"/console/letters/{number}/files/{photo}")).status_code == 200
    zhang = await desk.signed_in("zhang")  # the hotline centre hears every voicemail
    assert (await zhang.get(f"/console/letters/{number}/files/{voicemail}")).content == VOICE.data


@pytest.mark.parametrize("why", ["confidential", "complaint"])
async def test_a_confidential_faxs_pages_never_reach_the_clerk(desk: Desk, why: str) -> None:
    number = desk.letter(1, **FAXED, **HIDING.get(why, {}))
    [page] = files_of(desk, number)
    li = await desk.signed_in("li")
    answer = await li.get(f"/console/letters/{number}/files/{page}")
    assert answer.status_code == (404 if why == "confidential" else 200)
    shown = (await li.get(f"/console/letters/{number}")).text
    assert (f"/files/{page}" in shown) == (why != "confidential")


async def test_a_returned_letter_leaves_the_clerk_and_a_moved_one_follows_it(desk: Desk) -> None:
    number = desk.letter(1)  # streetlight: city-admin
    kept = desk.letter(2, text="南岸街的路灯坏了。")  # stays with city-admin
    [photo] = files_of(desk, number)
    li, wang = await desk.signed_in("li"), await desk.signed_in("wang")
    assert (await li.get(f"/console/letters/{number}")).status_code == 200

    back = await li.post(f"/console/letters/{number}/act", action="return", reason="不属于本单位")
    assert back.status_code == 303, back.text
    for url in (f"/console/letters/{number}", f"/console/letters/{number}/files/{photo}"):
        assert (await li.get(url)).status_code == 404, url
    again = await li.post(f"/console/letters/{number}/act", action="sign")
    assert again.status_code == 404
    assert number not in (await li.get("/console/queue")).text
    # The clerk's record of what it sent back names the letter, no longer a way into it.
    returned = (await li.get("/console/queue?tab=returned")).text
    assert number in returned and f'href="/console/letters/{number}"' not in returned

    # 退件 then 交办 to environment: the letter moved on; city-admin still does not see it.
    assign(desk, number, "environment")
    assert (await wang.get(f"/console/letters/{number}")).status_code == 200
    assert (await li.get(f"/console/letters/{number}")).status_code == 404
    assert kept in (await li.get("/console/queue")).text
    assert re.search(rf'href="/console/letters/{kept}"', (await li.get("/console/queue")).text)
