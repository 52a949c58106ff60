"""Calls into a real SIP worker from the pjsua2 phone simulator: through the menu into
voicemail, DTMF both ways, hang-ups, the agent, who may call (how many at once: test_sipp.py)."""

from __future__ import annotations

import io
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from simulators.phone import Dtmf, HangUp, Phone, Play, Wait
from tests.channels.sip.conftest import StartWorker, Worker
from tests.conftest import require_tool
from tests.support.audio import Kept, g711, kept, wav_audio
from tests.support.sipp import SippUas, scenario

CALLER = "13912345678"


def speech(path: Path, text: str = "人民路的路灯坏了三天，晚上很黑，请尽快修理。") -> Path:
    """Mandarin from espeak-ng, as a caller's 8 kHz mono message."""
    raw = path.with_suffix(".raw.wav")
    subprocess.run([require_tool("espeak-ng"), "-v", "cmn", "-w", str(raw), text], check=True)
    subprocess.run(
        [require_tool("sox"), str(raw), "-r", "8000", "-c", "1", "-b", "16", str(path)],
        check=True,
    )
    return path


def samples(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(float)


@pytest.fixture
def phone() -> Phone:
    with Phone(headers={"P-Asserted-Identity": f"<sip:{CALLER}@trunk.example>"}) as p:
        yield p  # type: ignore[misc]


@pytest.mark.realtime
def test_press_1_and_speak_becomes_a_complaint_with_the_callers_audio(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "message.wav")
    heard = tmp_path / "heard.wav"
    report = phone.call(
        worker.uri, [Wait(0.3), Dtmf("1"), Wait(2.0), Play(message), Dtmf("#")], record_to=heard
    )
    assert report.status_code == 200 and report.hung_up_by == "far", report
    [letter] = _wait_for_letters(worker, 1)
    assert (letter.channel, letter.category) == ("phone", "complaint")
    assert letter.external_id.startswith(report.call_id + ";from=")
    assert letter.citizen is not None and letter.citizen.phone == CALLER
    # Every voiced frame the phone sent, as G.711 carried it, is in the voicemail (the
    # phone offers PCMU first; PCMA would do as well).
    played, recorded = wav_audio(message.read_bytes()), wav_audio(stored_wav(worker, letter))
    got = max((kept(g711(played, law), recorded) for law in ("ulaw", "alaw")), key=found)
    assert got.sent > 100 and got.whole, got
    assert [j.letter_id for j in worker.jobs("transcribe")] == [letter.id]
    assert np.abs(samples(heard.read_bytes())).max() > 1000  # the prompts reached the caller


def test_dtmf_by_sip_info_works_as_well_as_rfc_4733(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "m.wav", "我想咨询一下办理居住证需要什么材料。")
    script = [Wait(0.3), Dtmf("4", method="info"), Wait(1.2), Play(message), Dtmf("#", "info")]
    report = phone.call(worker.uri, script)
    assert report.info_responses and set(report.info_responses) == {200}
    assert [letter.category for letter in _wait_for_letters(worker, 1)] == ["inquiry"]


def test_hanging_up_in_the_menu_is_a_missed_call_to_ring_back(
    start_worker: StartWorker, phone: Phone
) -> None:
    worker = start_worker()
    report = phone.call(worker.uri, [Wait(0.5), HangUp()])
    assert report.connected and report.hung_up_by == "caller"
    [missed] = _wait_for(lambda: worker.missed(), 1)
    assert missed.reason == "hung_up_in_menu" and missed.citizen.phone == CALLER  # type: ignore[union-attr]
    assert worker.letters() == []


@pytest.mark.realtime
def test_hanging_up_while_speaking_keeps_the_message(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "m.wav")
    # 0.1 s after its WAV's nominal end: the phone's own player and bridge are a frame or
    # two behind, and what it never sent is not ours to keep (SIPp's BYE 20 ms after its
    # last packet is test_sipp.py's case).
    script = [Wait(0.3), Dtmf("6"), Wait(1.2), Play(message), Wait(0.1), HangUp()]
    report = phone.call(worker.uri, script)
    assert report.hung_up_by == "caller"
    [letter] = _wait_for_letters(worker, 1)
    assert letter.category == "opinion"
    # The BYE follows the message's last packet: all of it is in the voicemail.
    played, recorded = wav_audio(message.read_bytes()), wav_audio(stored_wav(worker, letter))
    got = max((kept(g711(played, law), recorded) for law in ("ulaw", "alaw")), key=found)
    assert got.sent > 100 and got.whole_to_the_bye, got


def test_an_invalid_key_then_silence_leads_to_a_voicemail_as_other(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    worker = start_worker()
    message = speech(tmp_path / "m.wav", "你好")
    # 8 is not on the menu; then no key at all: the menu once more, then the voicemail.
    script = [Wait(0.3), Dtmf("8"), Wait(6), Play(message), Wait(4)]
    phone.call(worker.uri, script, timeout=40)
    assert [letter.category for letter in _wait_for_letters(worker, 1)] == ["other"]


def test_the_agent_answers_and_the_call_is_recorded_as_a_stub(
    start_worker: StartWorker, phone: Phone
) -> None:
    with SippUas(scenario("call_agent_uas"), keys={"agent_talk": "1500"}) as agent:
        worker = start_worker(agent=f"sip:agent@{agent.address}")
        report = phone.call(worker.uri, [Wait(0.3), Dtmf("9")], timeout=30)
    assert report.connected
    [letter] = _wait_for_letters(worker, 1)
    assert letter.category is None and "待坐席补充记录" in letter.text


def test_a_busy_agent_sends_the_caller_to_voicemail(
    start_worker: StartWorker, phone: Phone, tmp_path: Path
) -> None:
    message = speech(tmp_path / "m.wav", "你好，我要找人工。")
    with SippUas(scenario("call_agent_uas"), keys={"agent_reply": "486"}) as agent:
        worker = start_worker(agent=f"sip:agent@{agent.address}")
        script = [Wait(0.3), Dtmf("9"), Wait(2.5), Play(message), Dtmf("#")]
        phone.call(worker.uri, script, timeout=30)
    assert [letter.category for letter in _wait_for_letters(worker, 1)] == ["other"]


def test_a_caller_not_on_the_trunk_list_gets_403_and_nothing_else(
    start_worker: StartWorker, phone: Phone
) -> None:
    worker = start_worker(allowed_sources=["10.0.0.0/8"])
    first = phone.call(worker.uri, [], timeout=10)
    other = phone.call(f"sip:110@127.0.0.1:{worker.port}", [], timeout=10)
    assert (first.status_code, other.status_code) == (403, 403)
    assert first.reason == other.reason  # no way to tell extensions apart
    assert worker.letters() == [] and worker.missed() == []


def found(kept: Kept) -> int:
    return kept.found


def stored_wav(worker: Worker, letter: Any) -> bytes:
    """The bytes of the letter's one attachment as the attachment store keeps them."""
    [attachment] = letter.attachments
    [path] = (worker.root / "var" / "attachments").rglob(attachment.sha256)
    return path.read_bytes()


def _wait_for_letters(worker: Worker, count: int) -> list:  # type: ignore[type-arg]
    return _wait_for(worker.letters, count, worker=worker)


def _wait_for(read, count: int, timeout: float = 15, worker: Worker | None = None) -> list:  # type: ignore[no-untyped-def,type-arg]
    until = time.monotonic() + timeout
    while True:
        rows = read()
        if len(rows) >= count or time.monotonic() > until:
            said = "".join(worker.child.lines[-40:]) if worker is not None else ""
            assert len(rows) == count, f"{rows}\nthe worker said:\n{said}"
            return rows
        time.sleep(0.2)
