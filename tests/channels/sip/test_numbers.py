"""After a voicemail the caller hears their letter's tracking number (受理编号) and code
(查询码), read from what intake stored, or that the number will follow when the letter
cannot be stored in time. Checked on the audio the pjsua2 phone received."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.engine.spool import decode_contact
from simulators.phone import Dtmf, HangUp, Phone, Play, Step, Wait
from tests.channels.sip.conftest import StartWorker
from tests.channels.sip.heard import after_beep, heard, told
from tests.channels.sip.test_calls import CALLER, _wait_for, _wait_for_letters, speech
from tests.support.processes import free_port

pytestmark = pytest.mark.realtime  # audio read frame by frame: alone on the machine


@pytest.fixture
def phone() -> Iterator[Phone]:
    with Phone(headers={"P-Asserted-Identity": f"<sip:{CALLER}@trunk.example>"}) as p:
        yield p


def leave_message(message: Path, key: str = "1") -> list[Step]:
    return [Wait(0.3), Dtmf(key), Wait(1.2), Play(message), Dtmf("#")]


def test_each_caller_hears_the_number_and_code_of_their_own_letter(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "m.wav", "我家楼下的路灯坏了。")
    calls = []
    for n, key in enumerate("27"):
        record_to = tmp_path / f"heard-{n}.wav"
        report = phone.call(worker.uri, leave_message(message, key), record_to=record_to)
        assert (report.status_code, report.hung_up_by) == (200, "far"), report
        calls.append((report.call_id, record_to))
    letters = _wait_for_letters(worker, 2)

    assert [letter.category for letter in letters] == ["help", "other"]
    assert len({letter.tracking_number for letter in letters}) == 2
    for letter, (call_id, record_to) in zip(letters, calls, strict=True):
        assert letter.external_id.startswith(call_id + ";from=")
        expected = told(letter.tracking_number, letter.verification_code)
        assert after_beep(heard(record_to.read_bytes())) == expected
    log = "".join(worker.child.lines)
    assert log.count("sip.number_ready") == 2
    # The number is not secret, the code is: it reaches the caller's ear and no log.
    codes = [re.compile(rf"(?<!\d){letter.verification_code}(?!\d)") for letter in letters]
    assert [code.pattern for code in codes if code.search(log)] == []


def test_a_caller_hanging_up_while_speaking_hears_nothing_and_the_letter_is_stored(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "m.wav")
    heard_wav = tmp_path / "heard.wav"
    script: list[Step] = [Wait(0.3), Dtmf("1"), Wait(1.2), Play(message), Wait(0.1), HangUp()]
    report = phone.call(worker.uri, script, record_to=heard_wav)

    assert report.hung_up_by == "caller"
    [letter] = _wait_for_letters(worker, 1)
    assert (letter.category, len(letter.attachments)) == ("complaint", 1)
    assert letter.attachments[0].size > 8000 * 2 * 2  # seconds of the message, not a stub
    assert after_beep(heard(heard_wav.read_bytes())) == []
    assert "sip.number" not in "".join(worker.child.lines)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections and never says a word: a database on a dead link."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.mark.parametrize("outage", ["refused", "silent"])
def test_with_the_database_down_the_caller_hears_that_the_number_will_follow(
    start_worker: StartWorker,
    phone: Phone,
    tmp_path: Path,
    outage: str,
    request: pytest.FixtureRequest,
) -> None:
    # Refused: intake spools at once and has no number to give. Silent: the store outlasts
    # number_timeout_seconds (1 s here) and the letter is spooled after the caller is gone.
    port = request.getfixturevalue("silent_server") if outage == "silent" else free_port()
    database = f"postgresql+psycopg://hotline@127.0.0.1:{port}/hotline"
    worker = start_worker(database=database, number_timeout=1)
    message = speech(tmp_path / "m.wav", "我家楼下的路灯坏了。")
    heard_wav = tmp_path / "heard.wav"
    started = time.monotonic()
    report = phone.call(worker.uri, leave_message(message, "3"), record_to=heard_wav)

    assert (report.status_code, report.hung_up_by) == (200, "far"), report
    assert after_beep(heard(heard_wav.read_bytes())) == ["number_later", "goodbye"]
    spool = tmp_path / "var" / "spool"
    [spooled] = _wait_for(lambda: list(spool.glob("*.json")), 1, worker=worker)
    contact = decode_contact(spooled.read_bytes())
    assert contact.external_id.startswith(report.call_id + ";from=")
    assert (contact.category, contact.citizen.phone) == ("suggestion", CALLER)
    [attachment] = contact.attachments
    assert attachment.filename == "voicemail.wav" and len(attachment.data) > 8000 * 2
    said = "".join(worker.child.lines)
    assert ("sip.number_late" in said) == (outage == "silent")
    assert "sip.number_ready" not in said
    assert time.monotonic() - started < 30
