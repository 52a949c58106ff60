"""The seats' queue's other ways in and out, over `hotline serve` as test_queue_calls.py
starts it: recorded talks, the queue entry Twilio dials, priority lines, the position a
waiting caller hears. A module of its own so that xdist runs it beside the first."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from gateway.contract.config import load_config
from simulators.phone import Dtmf, HangUp, Phone, Wait
from store.attachments import AttachmentStore
from store.db import make_sessionmaker
from store.models import Event
from tests.channels.sip.heard import heard
from tests.channels.sip.test_queue_calls import (
    NOW,
    QUEUE_KEYS,
    add_seats,
    history,
    letters_of,
    queue_gateway,
    register,
    sip_target,
)
from tests.channels.sip.test_serve import wait_until
from tests.support.audio import voiced_frames, wav_audio
from tests.support.processes import free_port
from tests.support.sipp import SCENARIOS, SippUas, run_sipp, scenario


def voiced_share(audio: np.ndarray, start: float, end: float) -> float:
    frames = np.array(voiced_frames(audio))
    first, last = int(start / 0.02), int(end / 0.02)
    return float(((frames >= first) & (frames < last)).sum()) / (last - first)


@pytest.mark.realtime  # the recording's speech is placed to the second (Makefile)
def test_a_recorded_call_keeps_both_sides_on_the_letter(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """With record_calls the caller hears the notice, and the talk is recorded, both sides:
    the operator speaks first (7.1 s), the caller 8.5 to 10.5 s after the answer for 7.1 s,
    while the operator listens (12 s, then hangs up); the recording has each in its own
    stretch, silence between."""
    with queue_gateway(tmp_path, engine_of, record=True) as (serve, config, engine):
        passwords = add_seats(engine, "zhang")
        phone = free_port()
        register(sip_target(config), "1001", passwords["1001"], phone)
        speaks = SCENARIOS / "queue_seat_speaks.xml"
        with SippUas(speaks, phone, calls=1, extra_args=["-d", "12000"]) as desk:
            caller = run_sipp(
                scenario("call_queue_speaks"),
                sip_target(config),
                keys={**QUEUE_KEYS, "queue_wait": "11000"},
                timeout=60,
            )
            desk.stop()
        assert caller.ok, caller
        wait_until(lambda: any(len(letter.attachments) for letter in letters_of(engine)))
        assert any("sip.talk_kept" in line for line in serve.lines)
    [letter] = letters_of(engine)
    [recording] = letter.attachments
    assert (recording.filename, recording.media_type) == ("call-recording.wav", "audio/wav")
    files = AttachmentStore(load_config(config).storage.attachments_dir)
    audio = wav_audio(files.read(recording.sha256))
    seconds = len(audio) / 8000
    assert 17.5 <= seconds <= 21.5, seconds  # answer to the operator's BYE: 19.1 s
    assert voiced_share(audio, 1.5, 6.5) > 0.6  # the operator
    assert voiced_share(audio, 7.3, 8.3) < 0.1  # both silent
    assert voiced_share(audio, 12.5, 15.5) > 0.6  # the caller, the operator silent
    with make_sessionmaker(engine)() as session:
        kinds = session.scalars(select(Event.kind).where(Event.letter_id == letter.id)).all()
        assert "attached" in kinds


def test_a_call_to_the_queue_entry_waits_for_a_seat_without_the_menu(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """What Twilio dials for its callers who ask for a person (channels.twilio.queue_uri):
    sip:queue@..., taken straight to the seats. The caller presses 0, which in the menu
    would only repeat it: here it is no key, and the seat answers."""
    with queue_gateway(tmp_path, engine_of) as (_serve, config, engine):
        passwords = add_seats(engine, "zhang")
        phone = free_port()
        register(sip_target(config), "1001", passwords["1001"], phone)
        with SippUas(
            SCENARIOS / "seat_uas.xml", phone, calls=1, extra_args=["-d", "12000"]
        ) as desk:
            caller = run_sipp(
                scenario("call_queue_speaks", tmp_path, digit="0"),
                sip_target(config),
                service="queue",
                keys={**QUEUE_KEYS, "queue_wait": "1000"},
                timeout=40,
            )
            desk.stop()
        assert caller.ok, caller
        wait_until(lambda: any(row.outcome == "answered" for row in history(engine)))
    [row] = history(engine)
    # Straight in: no welcome or menu before the queue (the test prompts take 0.4 s each).
    assert row.waited_seconds is not None and row.waited_seconds < 3
    [letter] = letters_of(engine)
    assert letter.citizen is not None and letter.citizen.phone == "13800138000"
    assert letter.external_id == row.call_id


@pytest.mark.realtime  # what the phone heard is read frame by frame: alone on the machine
def test_a_waiting_caller_hears_how_many_are_ahead_of_them(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """No phone registered: a SIPp caller waits first, then the pjsua2 phone presses 9 and
    hears 您前面还有一位 on joining and every announce_every_seconds (2 s here)."""
    with queue_gateway(tmp_path, engine_of, announce_every=2) as (_serve, config, engine):
        add_seats(engine, "zhang")  # signed in; its phone never registers
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                run_sipp,
                scenario("call_hangup_in_recording", tmp_path, digit="9"),
                sip_target(config),
                keys={**QUEUE_KEYS, "record_wait": "12000", "speak_ms": "500"},
                timeout=40,
            )
            wait_until(lambda: len(history(engine)) == 1)
            heard_wav = tmp_path / "heard.wav"
            with Phone() as phone:
                steps = [Wait(0.3), Dtmf("9"), Wait(7), HangUp()]
                report = phone.call(f"sip:12345@{sip_target(config)}", steps, record_to=heard_wav)
            assert report.status_code == 200, report
            assert first.result().ok
    names = [run.name for run in heard(heard_wav.read_bytes())]
    positions = [name for name in names if name.startswith("ahead_")]
    assert positions and set(positions) == {"ahead_1"}, names
    assert len(positions) >= 3, names  # on joining, then every 2 s of a 6 s wait
    assert names.index("transferring") < names.index("ahead_1")
    wait_until(lambda: [row.outcome for row in history(engine)] == ["abandoned"] * 2)


def test_a_caller_on_the_elderly_line_is_answered_before_one_who_waited_longer(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    """ivr.agent.lines: 12349 is a line for the elderly, served first. A caller presses 9
    and waits; then one dials 12349 (straight into the queue, no menu). The seat's phone
    registers after both joined and answers the elderly caller first."""
    lines = "{'12349': elderly}"
    with queue_gateway(tmp_path, engine_of, lines=lines) as (_serve, config, engine):
        passwords = add_seats(engine, "zhang")
        with ThreadPoolExecutor(2) as pool:
            normal = pool.submit(
                run_sipp, scenario("call_agent"), sip_target(config), keys=QUEUE_KEYS, timeout=60
            )
            wait_until(lambda: len(history(engine)) == 1)
            elderly = pool.submit(
                run_sipp,
                scenario("call_agent"),
                sip_target(config),
                service="12349",
                keys=QUEUE_KEYS,
                timeout=60,
            )
            wait_until(lambda: len(history(engine)) == 2)
            phone = free_port()
            register(sip_target(config), "1001", passwords["1001"], phone)
            desk = SippUas(SCENARIOS / "seat_uas.xml", phone, calls=2, extra_args=["-d", "500"])
            with desk:
                assert elderly.result().ok and normal.result().ok
                desk.stop()
    rows = history(engine)
    assert [row.priority for row in rows] == ["normal", "elderly"]
    answered = sorted(rows, key=lambda row: row.answered_at or NOW)
    assert [row.priority for row in answered] == ["elderly", "normal"]
