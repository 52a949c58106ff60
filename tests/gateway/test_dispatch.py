"""The route job for letters whose words come later: a voicemail is judged on its
transcript, never on its label ("电话留言") and an empty text."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from gateway.contract.contact import Channel, Citizen
from gateway.contract.kinds import ROUTE, TRANSCRIBE
from store.models import Letter
from tests.conftest import Parts, make_contact
from tests.support.routing import CALLER, Routed, Switchboard

STREETLIGHT = "我要投诉翠屏区人民路的路灯坏了三天，晚上很黑，请尽快修理"
NOISE = "南溪区的工地每天晚上施工到两点，噪音太大，孩子没法睡觉"


@pytest.fixture
def board(parts: Parts, engine: Engine) -> Switchboard:
    return Switchboard(parts, engine)


def test_voicemails_wait_unrouted_and_marked_until_their_transcripts_come(
    board: Switchboard,
) -> None:
    first, second = board.voicemail(b"\x01" * 64), board.voicemail(b"\x02" * 64)

    assert board.route() == 2

    waiting = Routed("received", None, None, None, (), True, CALLER, ("received",))
    assert [board.routed(first), board.routed(second)] == [waiting, waiting]
    assert board.jobs(second) == [(TRANSCRIBE, "queued"), (ROUTE, "done")]


def test_two_voicemails_from_one_number_saying_different_things_are_two_matters(
    board: Switchboard,
) -> None:
    first, second = board.voicemail(b"\x01" * 64), board.voicemail(b"\x02" * 64)
    board.route()

    board.transcribe(first, STREETLIGHT)
    board.transcribe(second, NOISE)
    assert board.route() == 2

    assert board.routed(first) == Routed(
        "assigned",
        "complaint",
        "翠屏区",
        None,
        ("city-admin",),
        False,
        CALLER,
        ("received", "transcribed", "classified", "assigned"),
    )
    assert board.routed(second) == Routed(
        "assigned",
        None,
        "南溪区",
        None,
        ("environment",),
        False,
        CALLER,
        ("received", "transcribed", "assigned"),
    )


def test_two_voicemails_saying_the_same_are_linked_as_one_matter(board: Switchboard) -> None:
    first, second = board.voicemail(b"\x01" * 64), board.voicemail(b"\x02" * 64)
    board.route()

    board.transcribe(first, STREETLIGHT)
    board.transcribe(second, STREETLIGHT)
    board.route()

    assert board.routed(first).departments == ("city-admin",)
    assert board.routed(second) == Routed(
        "duplicate",
        "complaint",
        "翠屏区",
        board.number(first),
        (),
        False,
        CALLER,
        ("received", "transcribed", "classified", "duplicate"),
    )


def test_an_sms_is_not_compared_with_a_voicemail_still_unheard_but_is_once_it_is_heard(
    board: Switchboard,
) -> None:
    voicemail = board.voicemail(b"\x01" * 64)
    board.route()
    sms = board.store(
        make_contact(
            1,
            citizen=Citizen(phone=CALLER),
            subject="",
            text=STREETLIGHT,
            attachments=(),
            received_at=board.clock.now,
        )
    )
    board.route()
    assert board.routed(sms).departments == ("city-admin",)

    board.transcribe(voicemail, STREETLIGHT + "。")
    board.route()

    routed = board.routed(voicemail)
    assert (routed.status, routed.duplicate_of) == ("duplicate", board.number(sms))


def test_the_callers_menu_choice_stays_the_category_and_the_transcript_routes_it(
    board: Switchboard,
) -> None:
    letter = board.voicemail(b"\x01" * 64, category="inquiry")
    board.route()

    board.transcribe(letter, STREETLIGHT)  # says 投诉, the caller pressed 咨询
    board.route()

    routed = board.routed(letter)
    assert (routed.status, routed.category, routed.departments) == (
        "assigned",
        "inquiry",
        ("city-admin",),
    )
    assert "classified" not in routed.events


def test_a_transcript_written_before_the_route_job_ran_routes_the_letter_once(
    board: Switchboard,
) -> None:
    letter = board.voicemail(b"\x01" * 64)

    board.transcribe(letter, NOISE)
    assert board.route() == 2  # intake's and the transcription's

    routed = board.routed(letter)
    assert (routed.status, routed.departments) == ("assigned", ("environment",))
    assert routed.events.count("assigned") == 1
    assert board.jobs(letter) == [(TRANSCRIBE, "done"), (ROUTE, "done"), (ROUTE, "done")]


def test_voicemails_heard_as_silence_are_routed_and_never_duplicates(board: Switchboard) -> None:
    first, second = board.voicemail(b"\x01" * 64), board.voicemail(b"\x02" * 64)
    board.route()

    board.transcribe(first, "")
    board.transcribe(second, "")
    board.route()

    for letter in (first, second):
        routed = board.routed(letter)
        assert (routed.status, routed.duplicate_of, routed.text_pending) == ("triage", None, False)


def test_without_transcription_voicemails_are_routed_at_once_and_never_duplicates(
    board: Switchboard,
) -> None:
    first, second = board.voicemail(b"\x01" * 64), board.voicemail(b"\x02" * 64)

    assert board.route(awaited=("ocr",)) == 2

    unheard = Routed(
        "triage", None, None, None, (), False, CALLER, ("received", "text_unavailable", "triage")
    )
    assert [board.routed(first), board.routed(second)] == [unheard, unheard]


def test_typed_letters_without_words_are_never_duplicates_of_each_other(
    board: Switchboard,
) -> None:
    """Two photos with no text from one phone: nothing to compare, two letters for a person."""
    letters = [
        board.store(
            make_contact(n, channel=Channel.WEB, subject="", text="", citizen=Citizen(phone=CALLER))
        )
        for n in (1, 2)
    ]
    board.route()

    assert [board.routed(n).status for n in letters] == ["triage", "triage"]


def test_the_word_list_is_loaded_before_the_first_letter_is_routed(board: Switchboard) -> None:
    """Not under the first letter's row lock, where it held a receipt's write for seconds."""
    handler = board.route_handler()
    assert handler.workflow.rules.segmenter._tokenizer is None
    handler.ready()
    assert handler.workflow.rules.segmenter._tokenizer is not None


def test_what_was_read_outside_the_write_lock_is_used_only_while_the_words_are_the_same(
    board: Switchboard,
) -> None:
    """Routing cuts words and looks for the repeated matter in a read session first; if
    the letter's words changed before the write (a transcript came), it reads them again
    rather than link the letter on words it no longer has."""
    first = board.store(make_contact(1, text=STREETLIGHT))
    board.route()
    second = board.store(make_contact(2, text=STREETLIGHT))
    with board.sessions() as session:
        reading = board.workflow.read(session, session.get(Letter, second))
    assert reading.original_id == first  # as it read: a repeat of the first
    with board.sessions.begin() as session:
        letter = session.get(Letter, second)
        letter.text = NOISE  # its words changed before the write
        assert board.workflow.process(session, letter, reading) == "assigned"
        assert letter.duplicate_of_id is None and letter.district == "南溪区"
