"""SIPp as an independent SIP peer against a real worker: RFC 2833 DTMF and G.711 audio
from the pcaps SIPp ships, along every path of the menu."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.channels.sip.conftest import StartWorker, Worker
from tests.channels.sip.test_calls import _wait_for, _wait_for_letters
from tests.conftest import require_tool
from tests.support.sipp import SippResult, SippUas, run_sipp, scenario

# With the tests' 0.4 s prompts, 1 s menu timeout and one repeat (see conftest.py).
FAST = {
    "menu_wait": "300",
    "retry_wait": "1000",
    "record_wait": "1000",
    "silent_wait": "5000",
    "hangup_wait": "300",
    "speak_ms": "1500",
}


@pytest.fixture(autouse=True)
def _sipp() -> None:
    require_tool("sipp")


def call(worker: Worker, name: str, tmp: Path | None = None, **digits: str) -> SippResult:
    path = scenario(name, tmp, **digits) if digits else scenario(name)
    result = run_sipp(path, f"127.0.0.1:{worker.port}", keys=FAST, timeout=40)
    return result


@pytest.mark.parametrize(
    ("digit", "category"), [("1", "complaint"), ("5", "report"), ("7", "other")]
)
def test_each_menu_key_files_the_voicemail_under_its_category(
    start_worker: StartWorker, tmp_path: Path, digit: str, category: str
) -> None:
    worker = start_worker()
    result = call(worker, "call_menu_voicemail", tmp_path, digit=digit)
    assert result.ok, result
    [letter] = _wait_for_letters(worker, 1)
    assert (letter.category, letter.external_id) == (category, result.call_ids[0])
    assert letter.citizen is not None and letter.citizen.phone == "13800138000"
    assert len(letter.attachments) == 1 and letter.attachments[0].size > 8000 * 2 * 5
    assert [j.letter_id for j in worker.jobs("transcribe")] == [letter.id]


def test_an_invalid_key_is_told_and_the_next_one_counts(
    start_worker: StartWorker,
) -> None:
    worker = start_worker()
    result = call(worker, "call_invalid_digit")
    assert result.ok, result
    assert [letter.category for letter in _wait_for_letters(worker, 1)] == ["complaint"]


def test_no_key_at_all_ends_in_a_voicemail_filed_as_other(start_worker: StartWorker) -> None:
    worker = start_worker()
    result = call(worker, "call_no_input")
    assert result.ok, result
    assert [letter.category for letter in _wait_for_letters(worker, 1)] == ["other"]


def test_hanging_up_during_the_prompt_is_a_missed_call(start_worker: StartWorker) -> None:
    worker = start_worker()
    result = call(worker, "call_hangup_in_prompt")
    assert result.ok, result
    [missed] = _wait_for(worker.missed, 1)
    assert missed.reason == "hung_up_in_menu" and missed.call_id == result.call_ids[0]


def test_hanging_up_while_recording_keeps_what_was_said(start_worker: StartWorker) -> None:
    worker = start_worker()
    result = call(worker, "call_hangup_in_recording")
    assert result.ok, result
    [letter] = _wait_for_letters(worker, 1)
    assert letter.category == "complaint" and letter.attachments[0].size > 8000 * 2


def test_the_agent_answers_through_a_bridged_call(start_worker: StartWorker) -> None:
    with SippUas(scenario("call_agent_uas"), keys={"agent_talk": "1500"}) as agent:
        worker = start_worker(agent=f"sip:agent@{agent.address}")
        result = call(worker, "call_agent")
        answered = agent.stop()
    assert result.ok, result
    assert answered.successful == 1, answered
    [letter] = _wait_for_letters(worker, 1)
    assert letter.category is None and letter.external_id == result.call_ids[0]


def test_a_caller_not_allowed_is_refused_with_403(start_worker: StartWorker) -> None:
    worker = start_worker(allowed_sources=["10.0.0.0/8"])
    result = call(worker, "call_rejected")
    assert result.ok, result
    assert worker.letters() == [] and worker.missed() == []


def test_over_capacity_the_caller_gets_486(start_worker: StartWorker) -> None:
    worker = start_worker(calls_per_worker=1)
    held = run_sipp(
        scenario("call_hangup_in_recording"),
        f"127.0.0.1:{worker.port}",
        calls=2,
        rate=10,
        concurrency=2,
        keys={**FAST, "speak_ms": "3000"},
        timeout=30,
    )
    assert (held.successful, held.failed) == (1, 1), held
    assert "486" in held.errors or "486" in held.messages
