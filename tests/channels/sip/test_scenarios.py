"""The SIPp scenarios against SIPp stand-ins on loopback: each loads and ends its dialog.

The gateway is not in these tests; they prove the callers and the agent are sound SIP
before the gateway's own tests lean on them, and that the driver counts what happened.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.support.sipp import (
    SCENARIOS,
    SHIPPED,
    SippResult,
    SippUas,
    render,
    run_sipp,
    scenario,
)

# Every wait cut short: the stand-ins play no prompts.
FAST = {
    "menu_wait": "100",
    "retry_wait": "100",
    "record_wait": "100",
    "silent_wait": "100",
    "hangup_wait": "100",
    "speak_ms": "500",
}
# A caller that waits for the gateway's BYE is ready for it 7.7 s after its ACK with FAST
# (g711a.pcap lasts 7.1 s); the stand-in agent hangs up a little later.
AFTER_THE_MESSAGE = "9000"


@pytest.fixture(autouse=True)
def _sipp() -> None:
    require_tool("sipp")


def call(caller: Path, agent_keys: dict[str, str]) -> tuple[SippResult, SippResult]:
    """One call from ``caller`` to the stand-in agent: what each side counted."""
    with SippUas(scenario("call_agent_uas"), keys=agent_keys, calls=1) as agent:
        placed = run_sipp(caller, agent.address, keys=FAST, timeout=30)
        answered = agent.stop()
    return placed, answered


@pytest.mark.parametrize(
    ("name", "agent_keys"),
    [
        ("call_menu_voicemail", {"agent_talk": AFTER_THE_MESSAGE}),
        ("call_menu_voicemail_hangup", {}),
        ("call_invalid_digit", {"agent_talk": AFTER_THE_MESSAGE}),
        ("call_no_input", {}),
        ("call_hangup_in_prompt", {}),
        ("call_hangup_in_recording", {}),
        ("call_agent", {"agent_talk": "1500"}),
        ("call_rejected", {"agent_reply": "403"}),
        ("call_busy", {"agent_reply": "486"}),
    ],
    ids=[
        "voicemail: # then the other side hangs up",
        "voicemail: the caller hangs up",
        "a wrong key then a category",
        "no key at all",
        "hang-up in the prompt",
        "hang-up in the recording",
        "agent: the other side hangs up",
        "403 expected",
        "486 expected",
    ],
)
def test_a_caller_scenario_completes_its_dialog_with_a_generic_peer(
    name: str, agent_keys: dict[str, str]
) -> None:
    placed, answered = call(scenario(name), agent_keys)
    assert placed.ok, placed
    assert answered.ok, answered
    assert (placed.successful, placed.failed) == (1, 0)
    assert len(placed.call_ids) == 1
    assert placed.call_ids == answered.call_ids


def test_a_refusal_fails_a_caller_that_expected_an_answer() -> None:
    placed, answered = call(scenario("call_menu_voicemail"), {"agent_reply": "486"})
    assert (placed.returncode, placed.successful, placed.failed) == (1, 0, 1)
    assert not placed.ok
    assert "486 Busy Here" in str(placed)
    assert answered.ok, answered


@pytest.mark.parametrize("name", ["call_rejected", "call_busy"])
def test_the_ack_to_a_refusal_is_in_the_invites_transaction(name: str) -> None:
    # A SIPp peer does not check it; pjsip matches the ACK to the INVITE by branch.
    placed, _ = call(scenario(name), {"agent_reply": "403" if name == "call_rejected" else "486"})
    branches = {
        line.split(" ")[0]: via
        for line, via in zip(
            placed.messages.splitlines(), placed.messages.splitlines()[1:], strict=False
        )
        if line.startswith(("INVITE sip:", "ACK sip:"))
    }
    assert branches["INVITE"] == branches["ACK"]
    assert "branch=z9hG4bK" in branches["ACK"]


def test_an_answer_fails_a_caller_that_expected_busy() -> None:
    placed, _ = call(scenario("call_busy"), {})
    assert (placed.successful, placed.failed) == (0, 1)


def test_the_agent_call_takes_a_transfer_by_refer(tmp_path: Path) -> None:
    gateway = scenario("refer_uas", tmp_path)
    with SippUas(gateway, keys={"refer_wait": "1000"}, calls=1) as stand_in:
        placed = run_sipp(scenario("call_agent"), stand_in.address, keys=FAST, timeout=30)
        transferred = stand_in.stop()
    assert placed.ok, placed
    assert transferred.ok, transferred
    assert "message/sipfrag" in placed.messages


def test_the_agent_rings_until_cancelled(tmp_path: Path) -> None:
    placed, answered = call(scenario("cancel_uac", tmp_path), {"agent_reply": "none"})
    assert placed.ok, placed
    assert answered.ok, answered
    assert "487 Request Terminated" in answered.messages


def test_a_uas_that_cannot_load_its_scenario_fails_to_start(tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text('<scenario name="broken">\n  <recv request="INVITE">\n</scenario>\n')
    with pytest.raises(RuntimeError, match="did not start"):
        SippUas(broken).start()


def test_the_agent_refuses_an_unknown_reply() -> None:
    with pytest.raises(ValueError, match="agent_reply '999'"):
        SippUas(scenario("call_agent_uas"), keys={"agent_reply": "999"})


@pytest.fixture
def rtp_sink() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.setblocking(False)
        yield sink


def received(sink: socket.socket) -> list[bytes]:
    packets = []
    while True:
        try:
            packets.append(sink.recv(2048))
        except BlockingIOError:
            return packets


def test_the_caller_sends_the_chosen_key_as_rfc4733_and_speech_as_pcma(
    tmp_path: Path, rtp_sink: socket.socket
) -> None:
    caller = scenario("call_hangup_in_recording", tmp_path, digit="5")
    sink_port = str(rtp_sink.getsockname()[1])
    with SippUas(scenario("rtp_sink_uas", tmp_path), keys={"rtp_sink": sink_port}) as stand_in:
        placed = run_sipp(caller, stand_in.address, keys=FAST, timeout=30)
        stand_in.stop()
    assert placed.ok, placed
    packets = received(rtp_sink)
    types = [packet[1] & 0x7F for packet in packets]
    events = {packet[12] for packet in packets if packet[1] & 0x7F == 101}
    assert events == {5}  # RFC 4733 event code of key 5
    assert types.count(8) >= 10  # PCMA, 30 ms a packet
    assert all(struct.unpack("!B", packet[:1])[0] >> 6 == 2 for packet in packets)


def test_many_calls_are_counted_one_by_one() -> None:
    with SippUas(scenario("call_agent_uas")) as agent:
        placed = run_sipp(
            scenario("call_hangup_in_prompt"),
            agent.address,
            calls=4,
            rate=20,
            concurrency=4,
            keys=FAST,
            timeout=30,
        )
        answered = agent.stop()
    assert placed.ok, placed
    assert (placed.successful, answered.successful) == (4, 4)
    assert len(set(placed.call_ids)) == 4
    assert set(placed.call_ids) == set(answered.call_ids)


def test_a_scenario_runs_over_tcp() -> None:
    # The agent hangs up: a SIPp UAS counts the caller's closing its connection as a failure.
    with SippUas(scenario("call_agent_uas"), transport="t1", keys={"agent_talk": "500"}) as agent:
        placed = run_sipp(scenario("call_agent"), agent.address, transport="t1", keys=FAST)
        answered = agent.stop()
    assert placed.ok, placed
    assert answered.ok, answered
    assert "SIP/2.0/TCP" in placed.messages


def test_a_call_nobody_answers_is_cut_by_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # takes the INVITE, never answers
        placed = run_sipp(
            scenario("call_hangup_in_prompt"), f"127.0.0.1:{silent.getsockname()[1]}", timeout=2
        )
    assert not placed.ok
    assert (placed.returncode, placed.successful, placed.unfinished) == (255, 0, 1)
    assert placed.retransmissions >= 1


@pytest.mark.parametrize("name", SHIPPED)
def test_the_checked_in_scenario_is_the_rendered_one(name: str) -> None:
    # After a change in tests/support/sipp.py: python -m tests.support.sipp
    assert (SCENARIOS / f"{name}.xml").read_text() == render(name)


def test_a_digit_without_a_pcap_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'A' is not a DTMF key"):
        scenario("call_menu_voicemail", tmp_path, digit="A")


def test_a_variant_needs_a_directory_of_its_own() -> None:
    with pytest.raises(ValueError, match="pass out_dir"):
        scenario("call_menu_voicemail", digit="3")
