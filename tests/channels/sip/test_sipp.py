"""SIPp as an independent SIP peer against a real worker: RFC 2833 DTMF and G.711 audio
from the pcaps SIPp ships, along every path of the menu."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.channels.sip.conftest import StartWorker, Worker
from tests.channels.sip.test_calls import _wait_for, _wait_for_letters, stored_wav
from tests.conftest import require_tool
from tests.support.audio import kept, pcap_audio, wav_audio
from tests.support.processes import free_port
from tests.support.sipp import MESSAGE_PCAP, SippResult, SippUas, run_sipp, scenario

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
    assert letter.category == category
    assert letter.external_id.startswith(result.call_ids[0] + ";from=")
    assert letter.citizen is not None and letter.citizen.phone == "13800138000"
    assert len(letter.attachments) == 1
    assert [j.letter_id for j in worker.jobs("transcribe")] == [letter.id]


@pytest.mark.realtime
@pytest.mark.parametrize("ending", ["call_menu_voicemail", "call_menu_voicemail_hangup"])
def test_the_voicemail_holds_every_sample_up_to_the_key_or_the_bye(
    start_worker: StartWorker, ending: str
) -> None:
    """The caller's 7.08 s message ends in speech, and the # or the BYE follows its last
    packet within 20 ms: a recording read before pjmedia closed it, or stopped while the
    end was still in the jitter buffer, loses that speech. Every voiced frame sent must
    be in the WAV, sample for sample."""
    worker = start_worker()
    result = call(worker, ending)
    assert result.ok, result
    [letter] = _wait_for_letters(worker, 1)
    message = pcap_audio(MESSAGE_PCAP)
    got = kept(message, wav_audio(stored_wav(worker, letter)))
    assert got.sent > 250, got
    assert got.whole_to_the_bye if ending.endswith("hangup") else got.whole, got


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
    assert missed.reason == "hung_up_in_menu"
    assert missed.call_id.startswith(result.call_ids[0] + ";from=")


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
    assert letter.category is None
    assert letter.external_id.startswith(result.call_ids[0] + ";from=")


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


@pytest.mark.realtime
def test_two_callers_sending_one_call_id_are_two_letters_each_their_own(
    start_worker: StartWorker,
) -> None:
    """A Call-ID is unique only with the From tag (RFC 3261 §12): two phones that reuse
    one must not have the second message filed under the first caller's letter."""
    worker = start_worker()
    same = ["-cid_str", "reused-call-id@pbx.example"]
    callers = ("13911110001", "13722220002")
    with ThreadPoolExecutor(2) as pool:
        results = list(
            pool.map(
                lambda caller: run_sipp(
                    scenario("call_menu_voicemail_hangup"),
                    f"127.0.0.1:{worker.port}",
                    keys={**FAST, "caller": caller, "asserted": caller},
                    extra_args=same,
                    timeout=40,
                ),
                callers,
            )
        )
    assert [(r.ok, r.call_ids) for r in results] == [(True, ("reused-call-id@pbx.example",))] * 2, [
        r.errors for r in results
    ]
    letters = _wait_for_letters(worker, 2)
    assert sorted(letter.citizen.phone for letter in letters) == sorted(callers)
    assert len({letter.external_id for letter in letters}) == 2
    assert len({letter.tracking_number for letter in letters}) == 2
    message = pcap_audio(MESSAGE_PCAP)
    for letter in letters:  # each holds its own whole message
        got = kept(message, wav_audio(stored_wav(worker, letter)))
        assert got.whole_to_the_bye, got


def test_a_display_name_cannot_forge_the_callers_number(start_worker: StartWorker) -> None:
    """From: "sip:110" <sip:13800138000@…>: the number is in the brackets (RFC 3261
    §25.1); and an asserted identity from outside the trust domain is not believed."""
    worker = start_worker(trusted_identity_sources=["10.0.0.0/8"])
    result = run_sipp(
        scenario("call_menu_voicemail_hangup"),
        f"127.0.0.1:{worker.port}",
        keys={**FAST, "display": "sip:110@127.0.0.1", "caller": "13800138000"},
        timeout=40,
    )
    assert result.ok, result
    [letter] = _wait_for_letters(worker, 1)
    assert letter.citizen is not None and letter.citizen.phone == "13800138000"


@pytest.mark.parametrize(
    ("trusted", "stored"), [(["127.0.0.0/8"], "110"), (["10.0.0.0/8"], "13800138000")]
)
def test_the_asserted_identity_counts_only_from_the_trust_domain(
    start_worker: StartWorker, trusted: list[str], stored: str
) -> None:
    """RFC 3325 §5: a P-Asserted-Identity is believed only from a trusted node."""
    worker = start_worker(trusted_identity_sources=trusted)
    keys = {**FAST, "asserted": "110", "caller": "13800138000"}
    result = run_sipp(
        scenario("call_menu_voicemail_hangup"), f"127.0.0.1:{worker.port}", keys=keys, timeout=40
    )
    assert result.ok, result
    [letter] = _wait_for_letters(worker, 1)
    assert letter.citizen is not None and letter.citizen.phone == stored


@pytest.mark.parametrize(
    ("local_ip", "from_front_port"),
    [("127.0.0.2", True), ("127.0.0.1", False)],
    ids=["other-loopback-address", "other-port"],
)
def test_behind_kamailio_a_worker_takes_calls_only_from_kamailio(
    start_worker: StartWorker, local_ip: str, from_front_port: bool
) -> None:
    """A worker's loopback port is not a second door: only Kamailio's forwarding socket
    (channels.sip.host:port) may call it; it vets the trunks' addresses."""
    front = free_port()
    worker = start_worker(workers=2, worker_base_port=free_port(), port=front)
    target = f"127.0.0.1:{worker.port}"
    refused = run_sipp(
        scenario("call_rejected"),
        target,
        local_ip=local_ip,
        local_port=front if from_front_port else 0,
        keys={"reply": "403"},
        timeout=20,
    )
    assert refused.ok, refused
    admitted = run_sipp(
        scenario("call_menu_voicemail_hangup"), target, local_port=front, keys=FAST, timeout=40
    )
    assert admitted.ok, admitted
    [letter] = _wait_for_letters(worker, 1)
    assert letter.citizen is not None and letter.citizen.phone == "13800138000"


@pytest.mark.realtime
def test_a_busy_machine_drops_no_frame_of_three_messages_at_once(
    start_worker: StartWorker,
) -> None:
    """Two processes spin on the CPU while three callers leave their messages: the bridge's
    clock stalls and the packets come in bursts. pjmedia's default progressive discard
    then dropped a frame in about every other message (measured); the jitter buffer must
    keep them all, so each message is whole."""
    worker = start_worker()
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        result = run_sipp(
            scenario("call_menu_voicemail"),
            f"127.0.0.1:{worker.port}",
            calls=3,
            rate=10,
            concurrency=3,
            keys=FAST,
            timeout=60,
        )
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert result.ok, result
    message = pcap_audio(MESSAGE_PCAP)
    found = [
        kept(message, wav_audio(stored_wav(worker, letter)))
        for letter in _wait_for_letters(worker, 3)
    ]
    assert all(got.whole for got in found), found
