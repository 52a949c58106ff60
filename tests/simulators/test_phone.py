"""The pjsua2 phone against SIPp as the far end: answers, refusals, DTMF both ways, audio."""

from __future__ import annotations

import array
import asyncio
import json
import math
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulators.phone import (
    CallReport,
    Dtmf,
    HangUp,
    Phone,
    PhoneError,
    Play,
    Step,
    Wait,
    main,
    wav_seconds,
)
from tests.conftest import require_tool
from tests.support.processes import free_port

SCENARIOS = Path(__file__).parent / "scenarios"
PCAPS = Path("/usr/share/sip-tester")
ROOT = Path(__file__).resolve().parents[2]
CALL_TIMEOUT = 15.0  # every call in these tests ends well within it
SIPP_TIMEOUT = 15.0
# RFC 4733 §3.2: the events DTMF digits map to.
EVENTS = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


class Uas:
    """SIPp answering on loopback; ``rtp`` is the socket its SDP answer points the phone at.

    SIPp draws its first screen only on a terminal, and only once its socket is bound: that
    is the sign it is ready (over TCP a caller arriving earlier is refused).
    """

    def __init__(
        self,
        scenario: str | Path,
        logs: Path,
        *,
        transport: str = "udp",
        calls: int = 1,
    ) -> None:
        sipp = require_tool("sipp")
        self.port = free_port()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind(("127.0.0.1", 0))
        self.messages = logs / "messages.log"
        path = SCENARIOS / f"{scenario}.xml" if isinstance(scenario, str) else scenario
        command = [
            sipp, "-sf", str(path), "-t", transport[0] + "1",
            "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", str(self.port),
            "-mp", str(free_port()), "-m", str(calls), "-nostdin",
            "-trace_msg", "-message_file", str(self.messages),
            "-trace_err", "-error_file", str(logs / "errors.log"),
            "-key", "rtp_port", str(self.rtp.getsockname()[1]),
        ]  # fmt: skip
        screen, terminal = pty.openpty()
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=subprocess.STDOUT, cwd=logs
        )
        os.close(terminal)
        self._ready = threading.Event()
        self._output = bytearray()
        self._reader = threading.Thread(target=self._read, args=(screen,), daemon=True)
        self._reader.start()
        if not self._ready.wait(SIPP_TIMEOUT) or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"SIPp did not start: {self._output.decode(errors='replace')}")

    @property
    def uri(self) -> str:
        return f"sip:12345@127.0.0.1:{self.port}"

    def _read(self, screen: int) -> None:
        # Read to the end: a full terminal would stall SIPp.
        try:
            while chunk := os.read(screen, 65536):
                self._output += chunk
                if b"Scenario Screen" in self._output:
                    self._ready.set()
        except OSError:  # EIO once SIPp has gone
            pass
        finally:
            os.close(screen)
            self._ready.set()

    def finish(self) -> int:
        """SIPp's exit status once its calls are done: 0 when each went as the scenario says."""
        try:
            return self.process.wait(SIPP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGUSR1)  # finish the calls and quit, as 'q'
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(timeout=5)
        self.rtp.close()

    def received(self, method: str) -> list[str]:
        """The requests SIPp received, as text: headers and body."""
        found = []
        log = self.messages.read_text().replace("\r\n", "\n")
        for block in re.split(r"^-{20,} .*$", log, flags=re.MULTILINE):
            header, _, message = block.partition("\n\n")
            if "message received" in header and message.startswith(f"{method} "):
                found.append(message)
        return found

    def press(self, digit: str) -> None:
        """One RFC 4733 key to the phone from the far end's RTP socket, once media flows.

        Sent with the payload type the phone offered for telephone-event, as an answerer
        does (the scenarios answer with the offer's number).
        """
        self.rtp.settimeout(SIPP_TIMEOUT)
        _, phone = self.rtp.recvfrom(2048)  # where the phone's RTP comes from
        payload_type = self.event_payload_type()
        # RFC 4733 §2.5.1: updates of one event (one timestamp, growing duration), then its
        # end packet three times. Sent at once: pjmedia goes by the timestamp, not the clock.
        updates = [(160, False), (320, False), (480, False), (640, True), (640, True), (640, True)]
        for sequence, (duration, end) in enumerate(updates):
            marker = 0x80 if sequence == 0 else 0
            header = bytes([0x80, marker | payload_type]) + (1000 + sequence).to_bytes(2)
            header += (8000).to_bytes(4) + (0x4D4F4E49).to_bytes(4)  # timestamp, SSRC
            event = bytes([EVENTS[digit], (0x80 if end else 0) | 10]) + duration.to_bytes(2)
            self.rtp.sendto(header + event, phone)

    def event_payload_type(self) -> int:
        """The phone's telephone-event payload type, from its offer (the answer echoes it)."""
        (invite,) = self.received("INVITE")
        found = re.search(r"^a=rtpmap:(\d+) telephone-event/8000$", invite, re.MULTILINE)
        assert found, invite
        return int(found[1])

    def packets(self) -> list[bytes]:
        """The RTP the phone sent so far (the socket kept it queued)."""
        self.rtp.setblocking(False)
        packets = []
        while True:
            try:
                packets.append(self.rtp.recv(2048))
            except BlockingIOError:
                return packets


def refusal(directory: Path, status: str) -> Path:
    """reject.xml answering ``status`` instead: SIPp reads status codes when it loads."""
    path = directory / f"reject-{status.split()[0]}.xml"
    path.write_text((SCENARIOS / "reject.xml").read_text().replace("486 Busy Here", status))
    return path


@pytest.fixture
def uas(tmp_path: Path) -> Iterator[Callable[..., Uas]]:
    started: list[Uas] = []

    def start(scenario: str | Path, *, transport: str = "udp", calls: int = 1) -> Uas:
        logs = tmp_path / f"sipp-{len(started)}"
        logs.mkdir()
        far = Uas(scenario, logs, transport=transport, calls=calls)
        started.append(far)
        return far

    yield start
    for far in started:
        far.stop()


@pytest.fixture
def phone() -> Iterator[Phone]:
    with Phone() as phone:
        yield phone


@dataclass(frozen=True)
class Rtp:
    payload_type: int
    timestamp: int
    payload: bytes

    @classmethod
    def parse(cls, packet: bytes) -> Rtp:
        """RFC 3550 §5.1: 12 bytes, then 4 per CSRC; no header extensions from pjmedia."""
        start = 12 + 4 * (packet[0] & 0x0F)
        return cls(packet[1] & 0x7F, int.from_bytes(packet[4:8]), packet[start:])


def telephone_events(packets: list[bytes], payload_type: int) -> list[tuple[int, int]]:
    """(event, duration) of each RFC 4733 §2.3 event that ended, once for its 3 end packets."""
    ended: dict[int, tuple[int, int]] = {}
    for rtp in map(Rtp.parse, packets):
        if rtp.payload_type == payload_type and rtp.payload[1] & 0x80:
            ended[rtp.timestamp] = (rtp.payload[0], int.from_bytes(rtp.payload[2:4]))
    return [ended[timestamp] for timestamp in sorted(ended)]


def tone(path: Path, seconds: float, hertz: float = 440.0) -> Path:
    """A loud sine, 8 kHz 16-bit mono: what the conference bridge carries."""
    samples = array.array(
        "h",
        (int(12000 * math.sin(2 * math.pi * hertz * n / 8000)) for n in range(int(8000 * seconds))),
    )
    with wave.open(str(path), "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(samples.tobytes())
    return path


@dataclass(frozen=True)
class Heard:
    channels: int
    sample_width: int
    rate: int
    seconds: float
    peak: int


def listen(path: Path) -> Heard:
    """What a recorded WAV holds; ``wave`` refuses one whose header is not complete."""
    with wave.open(str(path), "rb") as audio:
        params = audio.getparams()
        samples = array.array("h", audio.readframes(params.nframes))
    return Heard(
        params.nchannels,
        params.sampwidth,
        params.framerate,
        params.nframes / params.framerate,
        max((abs(sample) for sample in samples), default=0),
    )


# -- calls the far end answers ------------------------------------------------------------


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_an_answered_call_is_hung_up_by_the_phone(uas: Callable[..., Uas], transport: str) -> None:
    far = uas("answer", transport=transport)
    with Phone(transport=transport) as phone:  # type: ignore[arg-type]
        report = phone.call(far.uri, [Wait(0.3), HangUp()], timeout=CALL_TIMEOUT)
    assert report.status_code == 200
    assert report.reason == "OK"
    assert report.connected
    assert report.hung_up_by == "caller"
    assert report.provisional == (180,)
    assert 0.3 <= report.duration < 5
    assert not report.timed_out
    assert far.finish() == 0  # the scenario got its BYE
    (invite,) = far.received("INVITE")
    assert f"Call-ID: {report.call_id}" in invite
    assert len(far.received("BYE")) == 1


def test_without_hangup_step_the_phone_hangs_up_after_the_script_when_told_not_to_wait(
    uas: Callable[..., Uas], phone: Phone, tmp_path: Path
) -> None:
    far = uas("answer")
    long = tone(tmp_path / "long.wav", 5.0)
    script: list[Step] = [Play(long, wait=False), Wait(0.2)]
    report = phone.call(far.uri, script, timeout=CALL_TIMEOUT, wait_for_far_hangup=False)
    assert report.hung_up_by == "caller"
    assert report.duration < 2  # the WAV still playing did not hold the script up
    assert far.finish() == 0


def test_the_invite_offers_g711_and_rfc4733_events_and_carries_the_given_headers(
    uas: Callable[..., Uas],
) -> None:
    far = uas("answer")
    identity = "<sip:13800138000@127.0.0.1>"
    caller = "sip:13912345678@127.0.0.1"
    with Phone(caller=caller, headers={"P-Asserted-Identity": identity}) as phone:
        phone.call(far.uri, [HangUp()], timeout=CALL_TIMEOUT)
    assert far.finish() == 0
    (invite,) = far.received("INVITE")
    headers, _, sdp = invite.partition("\n\n")
    assert f"P-Asserted-Identity: {identity}" in headers
    assert f"From: {caller};tag=" in headers
    assert "telephone-event/8000" in sdp
    codecs = {line.split()[1] for line in sdp.splitlines() if line.startswith("a=rtpmap:")}
    assert codecs == {"PCMU/8000", "PCMA/8000", "telephone-event/8000"}


def test_rfc4733_keys_reach_the_far_end_as_telephone_events(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    far = uas("answer")
    report = phone.call(far.uri, [Dtmf("12#"), HangUp()], timeout=CALL_TIMEOUT)
    assert report.hung_up_by == "caller"
    assert far.finish() == 0
    # pjmedia sends each key for 160 ms: 1280 timestamp units at 8 kHz.
    events = telephone_events(far.packets(), far.event_payload_type())
    assert events == [(1, 1280), (2, 1280), (11, 1280)]
    assert far.received("INFO") == []


def test_info_keys_go_one_info_each_and_the_far_end_hangs_up(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    far = uas("info_then_bye")
    report = phone.call(far.uri, [Dtmf("1#", method="info")], timeout=CALL_TIMEOUT)
    assert report.hung_up_by == "far"
    assert report.info_responses == (200, 200)
    assert report.connected and not report.timed_out
    assert far.finish() == 0
    infos = far.received("INFO")
    assert [info.partition("\n\n")[2].splitlines() for info in infos] == [
        ["Signal=1", "Duration=160"],
        ["Signal=#", "Duration=160"],
    ]
    assert all("Content-Type: application/dtmf-relay" in info for info in infos)
    assert telephone_events(far.packets(), far.event_payload_type()) == []


def test_play_speaks_the_wav_into_the_call_before_the_next_step(
    uas: Callable[..., Uas], phone: Phone, tmp_path: Path
) -> None:
    far = uas("answer")
    wav = tone(tmp_path / "tone.wav", 1.0)
    report = phone.call(far.uri, [Play(wav), HangUp()], timeout=CALL_TIMEOUT)
    assert report.duration >= 1.0
    assert far.finish() == 0
    speech = [
        rtp.payload
        for rtp in map(Rtp.parse, far.packets())
        if rtp.payload_type in (0, 8) and len(set(rtp.payload)) > 8  # not a silent frame
    ]
    assert 45 <= len(speech) <= 55  # one second in 20 ms frames


def test_the_phone_records_what_the_far_end_says_until_it_hangs_up(
    uas: Callable[..., Uas], phone: Phone, tmp_path: Path
) -> None:
    require_tool(str(PCAPS / "g711a.pcap"))
    far = uas("speak_then_bye")
    heard = tmp_path / "heard.wav"
    report = phone.call(far.uri, [Wait(30), Dtmf("9")], record_to=heard, timeout=CALL_TIMEOUT)
    assert report.hung_up_by == "far"
    assert report.recorded == heard
    assert report.unused_steps == (Dtmf("9"),)
    assert far.finish() == 0
    audio = listen(heard)
    assert (audio.channels, audio.sample_width, audio.rate) == (1, 2, 8000)
    assert 1.5 <= audio.seconds <= 3  # SIPp speaks for 2 s, then hangs up
    assert audio.peak > 1000


async def test_the_phone_hears_keys_sent_as_rfc4733_events_and_as_info(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    far = uas("press_then_bye")  # INFO with Signal=5 half a second after the answer
    call = asyncio.create_task(phone.acall(far.uri, timeout=CALL_TIMEOUT))
    await asyncio.to_thread(far.press, "7")  # as soon as the phone's RTP flows
    report = await call
    assert report.hung_up_by == "far"
    assert report.dtmf_received == "75"
    assert await asyncio.to_thread(far.finish) == 0


async def test_one_phone_places_two_calls_at_once(uas: Callable[..., Uas], phone: Phone) -> None:
    far = uas("answer", calls=2)
    script: list[Step] = [Wait(1.0), HangUp()]
    first, second = await asyncio.gather(
        phone.acall(far.uri, script, timeout=CALL_TIMEOUT),
        phone.acall(far.uri, script, timeout=CALL_TIMEOUT),
    )
    assert first.status_code == second.status_code == 200
    assert first.call_id != second.call_id
    assert await asyncio.to_thread(far.finish) == 0
    # Both INVITEs reached SIPp before either BYE: the calls overlapped.
    log = far.messages.read_text()
    invites = [log.index(f"Call-ID: {r.call_id}") for r in (first, second)]
    assert max(invites) < log.index("\nBYE ")


# -- calls that are not answered ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        pytest.param("486", "Busy Here", id="busy"),
        pytest.param("403", "Forbidden", id="forbidden"),
        pytest.param("603", "Decline", id="declined"),
    ],
)
def test_a_refused_call_reports_the_final_status(
    uas: Callable[..., Uas], phone: Phone, tmp_path: Path, status: str, reason: str
) -> None:
    far = uas(refusal(tmp_path, f"{status} {reason}"))
    report = phone.call(far.uri, [Dtmf("1"), HangUp()], timeout=CALL_TIMEOUT)
    assert (report.status_code, report.reason) == (int(status), reason)
    assert not report.connected
    assert report.hung_up_by == "none"
    assert report.duration == 0
    assert report.unused_steps == (Dtmf("1"), HangUp())
    assert far.finish() == 0


def test_a_call_nobody_answers_is_cancelled_when_its_timeout_passes(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    far = uas("ring")
    report = phone.call(far.uri, [HangUp()], timeout=1.0)
    assert report.timed_out
    assert report.status_code == 487
    assert report.provisional == (180,)
    assert not report.connected
    assert report.hung_up_by == "caller"
    assert far.finish() == 0  # CANCEL, 200, 487, ACK


# -- refusals before dialling ---------------------------------------------------------------


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: Dtmf(""), id="no-digits"),
        pytest.param(lambda: Dtmf("12x"), id="not-a-key"),
        pytest.param(lambda: Dtmf("1", method="inband"), id="unknown-method"),  # type: ignore[arg-type]
        pytest.param(lambda: Wait(-1), id="negative-wait"),
    ],
)
def test_steps_that_cannot_be_done_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ValueError):
        make()


def test_a_wav_that_is_not_pcm_is_refused_before_dialling(phone: Phone, tmp_path: Path) -> None:
    text = tmp_path / "message.wav"
    text.write_text("not audio")
    with pytest.raises(PhoneError, match="not a readable PCM WAV"):
        phone.call("sip:12345@127.0.0.1:9", [Play(text)])


def test_a_uri_pjsua_cannot_parse_is_a_phone_error_and_the_phone_lives_on(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    with pytest.raises(PhoneError, match="PJSIP_EINVALIDREQURI"):
        phone.call("not a sip uri", [HangUp()])
    far = uas("answer")
    assert phone.call(far.uri, [HangUp()], timeout=CALL_TIMEOUT).connected
    assert far.finish() == 0


def test_rfc4733_keys_to_a_far_end_that_did_not_negotiate_them_fail_and_the_call_ends(
    uas: Callable[..., Uas], phone: Phone
) -> None:
    far = uas("answer_without_events")
    with pytest.raises(PhoneError, match="PJMEDIA_RTP_EREMNORFC2833"):
        phone.call(far.uri, [Dtmf("1"), HangUp()], timeout=CALL_TIMEOUT)
    assert far.finish() == 0  # hung up all the same


def test_a_second_phone_in_the_process_is_refused(phone: Phone) -> None:
    with pytest.raises(PhoneError, match="one Endpoint"):
        Phone().start()


def test_the_wav_length_decides_how_long_play_waits(tmp_path: Path) -> None:
    assert wav_seconds(tone(tmp_path / "half.wav", 0.5)) == 0.5


# -- python -m simulators.phone -----------------------------------------------------------


def test_the_command_line_runs_the_steps_in_order_and_prints_a_json_report(
    uas: Callable[..., Uas], tmp_path: Path
) -> None:
    far = uas("info_then_bye")
    hello = tone(tmp_path / "hello.wav", 0.3)
    heard = tmp_path / "heard.wav"
    finished = subprocess.run(
        [
            sys.executable, "-m", "simulators.phone", far.uri, "--play", str(hello),
            "--dtmf-method", "info", "--dtmf", "1#", "--record", str(heard),
            "--header", "P-Asserted-Identity: <sip:13800138000@127.0.0.1>",
            "--timeout", str(CALL_TIMEOUT),
        ],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)  # nothing else on stdout
    assert report["status_code"] == 200
    assert report["hung_up_by"] == "far"
    assert report["info_responses"] == [200, 200]
    assert report["recorded"] == str(heard)
    assert listen(heard).rate == 8000
    assert far.finish() == 0
    (invite,) = far.received("INVITE")
    assert "P-Asserted-Identity: <sip:13800138000@127.0.0.1>" in invite


def test_the_command_line_exits_1_when_the_call_is_refused(
    uas: Callable[..., Uas], tmp_path: Path
) -> None:
    far = uas(refusal(tmp_path, "486 Busy Here"))
    finished = subprocess.run(
        [sys.executable, "-m", "simulators.phone", far.uri, "--hangup"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert finished.returncode == 1, finished.stderr
    assert json.loads(finished.stdout)["status_code"] == 486
    assert far.finish() == 0


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["sip:a@127.0.0.1", "--dtmf", "12x"], id="bad-digit"),
        pytest.param(["sip:a@127.0.0.1", "--header", "no-colon"], id="bad-header"),
        pytest.param(["sip:a@127.0.0.1", "--transport", "sctp"], id="bad-transport"),
    ],
)
def test_the_command_line_refuses_bad_arguments_before_dialling(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def test_a_report_reads_as_json() -> None:
    report = CallReport(
        200, "OK", True, "abc", 1.5, "far", Path("x.wav"), "1", unused_steps=(HangUp(),)
    )
    assert json.loads(json.dumps(report.as_dict()))["unused_steps"] == ["HangUp()"]
