"""The modem simulator against the real python-gsmmodem-new and pyserial, over a real pty."""

from __future__ import annotations

import json
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import serial
from gsmmodem.exceptions import (
    CmsError,
    CommandError,
    IncorrectPinError,
    PinRequiredError,
    TimeoutException,
)
from gsmmodem.modem import GsmModem, ReceivedSms, SentSms
from gsmmodem.pdu import decodeSmsPdu

from channels.gsm.pdu import parse_pdu
from simulators.modem import ModemProfile, ModemSimulator
from simulators.modem.at import AtModem
from simulators.modem.control import dispatch
from simulators.modem.pdu import deliver_pdus, encode_address, encode_timestamp, pack_septets

ROOT = Path(__file__).resolve().parents[2]
SHANGHAI = ZoneInfo("Asia/Shanghai")
NOON = datetime(2024, 3, 1, 9, 30, 15, tzinfo=SHANGHAI)
CITIZEN = "+8613800138000"
WAIT = 5.0  # seconds any wait on the simulator or the library may take


def fixed_clock() -> datetime:
    return NOON


@pytest.fixture
def sim() -> Iterator[ModemSimulator]:
    with ModemSimulator(clock=fixed_clock) as running:
        yield running


@contextmanager
def connected(sim: ModemSimulator, pin: str | None = None, **options: Any) -> Iterator[Any]:
    """A GsmModem that went through connect(), closed afterwards with its helper threads."""
    modem = GsmModem(sim.device, 115200, **options)
    modem.timeout = 0.05  # the serial read timeout: how long close() waits for the reader
    try:
        modem.connect(pin=pin)
        yield modem
    finally:
        for thread in threading.enumerate():  # one per notification (+CMTI, +CDSI)
            if "HandleModemNotification" in thread.name:
                thread.join(WAIT)
        if getattr(modem, "rxThread", None) is not None:
            modem.close()


class Terminal:
    """A plain pyserial client typing AT commands, as minicom or a script would."""

    FINAL = ("OK", "ERROR", "+CME ERROR:", "+CMS ERROR:")

    def __init__(self, path: str) -> None:
        self.port = serial.Serial(path, 115200, timeout=WAIT)

    def line(self) -> str:
        raw = self.port.read_until(b"\r\n")
        if not raw.endswith(b"\r\n"):
            raise TimeoutError(f"no complete line, got {raw!r}")
        return str(raw[:-2].decode()).rstrip("\r")  # an echoed command keeps its own CR

    def at(self, command: str) -> list[str]:
        """Send one command line; its answer lines up to the final result code."""
        self.port.write(command.encode() + b"\r")
        return self.answer()

    def answer(self) -> list[str]:
        lines: list[str] = []
        while not lines or not lines[-1].startswith(self.FINAL):
            line = self.line()
            if line:
                lines.append(line)
        return lines

    def close(self) -> None:
        self.port.close()


@contextmanager
def terminal(path: str, *setup: str) -> Iterator[Terminal]:
    term = Terminal(path)
    try:
        for command in ("ATE0", *setup):
            assert term.at(command)[-1] == "OK", command
        yield term
    finally:
        term.close()


def user_data(pdu_hex: str) -> tuple[int, int, int, bytes]:
    """First octet, DCS, UDL and UD of an SMS-DELIVER, read by hand (TS 23.040 §9.2.2.1)."""
    pdu = bytes.fromhex(pdu_hex)
    i = 1 + pdu[0]
    first = pdu[i]
    i += 1 + 2 + (pdu[i + 1] + 1) // 2  # first octet, OA length and type, OA digits
    dcs = pdu[i + 1]
    i += 2 + 7  # PID, DCS, SCTS
    return first, dcs, pdu[i], pdu[i + 1 :]


def joined(text: str) -> str:
    """The library decodes UCS2 unit by unit: rejoin the surrogate pairs it leaves apart."""
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


# -- PDU encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("produced", "expected"),
    [
        pytest.param(pack_septets(b"hellohello"), "E8329BFD4697D9EC37", id="septets-of-hellohello"),
        pytest.param(encode_address("Design@Home"), "14D0C4F23C7D760390EF7619", id="alphanumeric"),
        pytest.param(encode_address(CITIZEN), "0D91683108108300F0", id="international"),
        pytest.param(encode_address("10086"), "05810180F6", id="national"),
        pytest.param(encode_timestamp(NOON), "42301090035123", id="shanghai-plus-32-quarters"),
        pytest.param(
            encode_timestamp(datetime(2024, 1, 5, 23, 0, 0, tzinfo=timezone(timedelta(hours=-5)))),
            "4210503200000A",  # sign bit 3 of the zone octet set
            id="new-york-minus-20-quarters",
        ),
    ],
)
def test_pdu_fields_are_encoded_as_ts_23040_says(produced: bytes, expected: str) -> None:
    assert produced.hex().upper() == expected


def test_a_short_gsm7_message_is_one_pdu_built_field_by_field() -> None:
    (pdu,) = deliver_pdus(smsc="+8613800100500", sender=CITIZEN, text="hellohello", timestamp=NOON)
    assert pdu == (
        "0891683108100005F0"  # SCA: 8 octets, international
        "04"  # SMS-DELIVER, no more messages
        "0D91683108108300F0"  # OA
        "0000"  # PID, DCS GSM 7-bit
        "42301090035123"  # SCTS, +08:00
        "0A"  # UDL: 10 septets
        "E8329BFD4697D9EC37"
    )


def test_texts_that_do_not_fit_the_chosen_alphabet_are_refused() -> None:
    with pytest.raises(ValueError, match="GSM 7-bit"):
        deliver_pdus(smsc="", sender=CITIZEN, text="你好", timestamp=NOON, encoding="gsm7")
    with pytest.raises(ValueError, match="timezone"):
        deliver_pdus(smsc="", sender=CITIZEN, text="hi", timestamp=datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="alphanumeric"):
        deliver_pdus(smsc="", sender="TwelveLetters", text="hi", timestamp=NOON)


# -- the AT interpreter, without a pty ---------------------------------------------------


def answers(modem: AtModem, line: str) -> list[str]:
    return [part for part in modem.feed(line.encode() + b"\r").decode().split("\r\n") if part]


@pytest.mark.parametrize(
    ("setup", "command", "expected"),
    [
        pytest.param([], "AT", ["OK"], id="at"),
        pytest.param([], "AT+CPIN?", ["+CPIN: READY", "OK"], id="sim-ready"),
        pytest.param([], "AT+CSQ", ["+CSQ: 20,99", "OK"], id="signal"),
        pytest.param([], "AT+COPS?", ['+COPS: 0,0,"CHINA MOBILE",0', "OK"], id="operator"),
        pytest.param(["AT+COPS=3,2"], "AT+COPS?", ['+COPS: 0,2,"46000",0', "OK"], id="numeric"),
        pytest.param([], "AT+CREG?", ["+CREG: 0,1", "OK"], id="registered"),
        pytest.param([], "AT+CSCA?", ['+CSCA: "+8613800100500",145', "OK"], id="smsc"),
        pytest.param(
            ['AT+CSCS="UCS2"'],
            "AT+CSCA?",
            ['+CSCA: "002B0038003600310033003800300030003100300030003500300030",145', "OK"],
            id="smsc-in-ucs2-charset",
        ),
        pytest.param([], "AT+CSCS=?", ['+CSCS: ("IRA","GSM","UCS2")', "OK"], id="charsets"),
        pytest.param([], "AT+CPMS=?", ['+CPMS: ("SM"),("SM"),("SM")', "OK"], id="memories"),
        pytest.param([], 'AT+CPMS="ME"', ["+CMS ERROR: 303"], id="no-phone-memory"),
        pytest.param([], "AT+CMGF=1", ["+CMS ERROR: 303"], id="no-text-mode"),
        pytest.param([], "AT+CNMI=2,2,0,0,0", ["+CMS ERROR: 303"], id="no-direct-cmt"),
        pytest.param([], "AT+CMGR=2", ["OK"], id="empty-record-reads-as-nothing"),
        pytest.param([], "AT+CMGR=31", ["+CMS ERROR: 321"], id="index-out-of-range"),
        pytest.param([], "AT+CMGL=7", ["+CMS ERROR: 304"], id="bad-status"),
        pytest.param([], "AT+NOPE", ["ERROR"], id="unknown-command"),
        pytest.param([], 'AT+CPIN="1234"', ["ERROR"], id="pin-when-ready-cmee-0"),
        pytest.param(["AT+CMEE=1"], 'AT+CPIN="1234"', ["+CME ERROR: 3"], id="cmee-1"),
        pytest.param(
            ["AT+CMEE=2"], 'AT+CPIN="1234"', ["+CME ERROR: operation not allowed"], id="cmee-2"
        ),
        pytest.param([], "AT+CMEE=1;+CMEE?", ["+CMEE: 1", "OK"], id="chained"),
        pytest.param(
            ["AT+CNMI=2,1,0,2,0", "ATZ", "ATE0"],
            "AT+CNMI?",
            ["+CNMI: 0,0,0,0,0", "OK"],
            id="atz-resets-cnmi",
        ),
    ],
)
def test_the_interpreter_answers(setup: list[str], command: str, expected: list[str]) -> None:
    modem = AtModem(ModemProfile(), fixed_clock)
    modem.feed(b"ATE0\r")
    for line in setup:
        assert answers(modem, line)[-1] == "OK", line
    assert answers(modem, command) == expected


def test_a_locked_sim_refuses_sms_commands_until_the_pin() -> None:
    modem = AtModem(ModemProfile(pin="1234"), fixed_clock)
    modem.feed(b"ATE0\r")
    assert modem.deliver("00") is None  # not registered: the network keeps it
    assert answers(modem, "AT+CMGL=4") == ["+CMS ERROR: 311"]
    assert answers(modem, 'AT+CPIN="0000"') == ["ERROR"]
    assert answers(modem, 'AT+CPIN="1234"') == ["OK"]
    assert answers(modem, "AT+CMGL=4") == ["+CMGL: 1,0,,0", "00", "OK"]


def test_a_hung_cmgs_sends_the_message_but_never_answers() -> None:
    modem = AtModem(ModemProfile(), fixed_clock)
    modem.feed(b"ATE0\r")
    modem.add_fault("AT+CMGS", None, 1)
    assert modem.feed(b"AT+CMGS=19\r") == b"\r\n> "
    assert modem.feed(b"0001000D91683108108300F0000005E8329BFD06\x1a") == b""
    assert [s.text for s in modem.sent] == ["hello"]
    assert modem.feed(b"AT\r") == b"\r\nOK\r\n"


# -- python-gsmmodem-new on the pty ------------------------------------------------------


def test_the_library_connects_and_the_modem_saw_its_whole_setup(sim: ModemSimulator) -> None:
    with connected(sim) as modem:
        assert modem.manufacturer == "Hotline"
        assert modem.signalStrength == 20
        assert modem.networkName == "CHINA MOBILE"
        assert modem.smsc == "+8613800100500"
    for command in ("ATZ", "ATE0", "AT+CMEE=1", "AT+CPIN?", "AT+CMGF=0", "AT+CNMI=2,1,0,2"):
        assert command in sim.commands


def test_the_library_unlocks_a_sim_that_asks_for_a_pin() -> None:
    with ModemSimulator(ModemProfile(pin="1234")) as sim:
        with pytest.raises(IncorrectPinError), connected(sim, pin="0000"):
            pass
        with pytest.raises(PinRequiredError), connected(sim):
            pass
        with connected(sim, pin="1234") as modem:
            assert modem.write("AT+CPIN?")[0] == "+CPIN: READY"


@pytest.mark.parametrize(
    ("sender", "text", "dcs"),
    [
        pytest.param(CITIZEN, "Fee 5€ [ok] {x} ~|^\\ done", 0x00, id="gsm7-extension-table"),
        pytest.param(CITIZEN, "你好，我家门口的路灯坏了三天了", 0x08, id="ucs2-chinese"),
        pytest.param(CITIZEN, "路灯又坏了💡😡", 0x08, id="emoji-surrogate-pairs"),
        pytest.param("ICBC", "Your code is 1234", 0x00, id="alphanumeric-sender"),
        pytest.param("10086", "话费余额 12.50 元", 0x08, id="national-sender"),
    ],
)
def test_a_delivered_text_reads_back_through_the_library(
    sim: ModemSimulator, sender: str, text: str, dcs: int
) -> None:
    assert sim.deliver_text(sender, text) == [1]
    first, got_dcs, _, _ = user_data(sim.stored()[1])
    assert (first, got_dcs) == (0x04, dcs)
    with connected(sim) as modem:
        (sms,) = modem.listStoredSms()
    assert isinstance(sms, ReceivedSms)
    assert (sms.index, sms.number, joined(sms.text), sms.time) == (1, sender, text, NOON)
    assert sms.time.utcoffset() == timedelta(hours=8)


def test_a_five_part_ucs2_message_arrives_out_of_order_with_a_duplicate(
    sim: ModemSimulator,
) -> None:
    # 66 UTF-16 units fit a part with a 16-bit reference: an emoji on units 66-67 must move.
    text = "市" * 65 + "🚧" + "民来信" * 70
    indexes = sim.deliver_text(
        CITIZEN,
        text,
        concat_ref=0x1234,
        ref_bits=16,
        part_order=[3, 1, 5, 2, 4],
        duplicate_parts=[2],
    )
    assert indexes == [1, 2, 3, 4, 5, 6]
    with connected(sim, AT_CNMI="2,0,0,0,0") as modem:
        listing = modem.write("AT+CMGL=4")
    assert listing[-1] == "OK"
    headers, pdus = listing[0:-1:2], listing[1:-1:2]
    assert [h.split(",")[0] for h in headers] == [f"+CMGL: {i}" for i in indexes]
    parts: dict[int, bytes] = {}
    for pdu in pdus:
        first, dcs, udl, ud = user_data(pdu)
        assert (first, dcs, udl) == (0x44, 0x08, len(ud))
        assert ud[:6] == bytes([6, 0x08, 4, 0x12, 0x34, 5])  # UDHL, IEI 16-bit ref, ref, total
        payload = ud[7:]
        assert not 0xD8 <= payload[-2] <= 0xDB, "a part ends inside a surrogate pair"
        parts.setdefault(ud[6], payload)
    assert [user_data(p)[3][6] for p in pdus] == [3, 1, 5, 2, 4, 2]
    assert b"".join(parts[n] for n in sorted(parts)).decode("utf-16-be") == text


@pytest.mark.parametrize(
    ("ref_bits", "header", "room"),
    [
        pytest.param(8, bytes([5, 0x00, 3, 0x42, 3]), 153, id="8-bit-ref-one-fill-bit"),
        pytest.param(16, bytes([6, 0x08, 4, 0x00, 0x42, 3]), 152, id="16-bit-ref-no-fill-bits"),
    ],
)
def test_long_gsm7_parts_start_their_text_on_a_septet_boundary(
    sim: ModemSimulator, ref_bits: int, header: bytes, room: int
) -> None:
    text = "".join(f"Line {i:03d} of the complaint; " for i in range(12)) + "€"
    assert sim.deliver_text(CITIZEN, text, concat_ref=0x42, ref_bits=ref_bits) == [1, 2, 3]
    pdus = list(sim.stored().values())
    for number, pdu in enumerate(pdus, start=1):
        first, dcs, _, ud = user_data(pdu)
        assert (first, dcs, ud[: len(header) + 1]) == (0x44, 0x00, header + bytes([number]))
    header_septets = ((len(header) + 1) * 8 + 6) // 7
    assert user_data(pdus[0])[2] - header_septets == room
    # The gateway's own decoder reads every part; the library only fill bits it expects.
    assert "".join(parse_pdu(pdu).text for pdu in pdus) == text
    if ref_bits == 8:
        assert "".join(decodeSmsPdu(pdu)["text"] for pdu in pdus) == text


def test_the_library_reads_and_deletes_a_message_announced_by_cmti(sim: ModemSimulator) -> None:
    received: list[Any] = []
    arrived = threading.Event()

    def on_sms(sms: Any) -> None:
        received.append(sms)
        arrived.set()

    with connected(sim, smsReceivedCallbackFunc=on_sms) as modem:
        mark = len(sim.commands)
        assert sim.deliver_text(CITIZEN, "井盖丢了") == [1]
        assert arrived.wait(WAIT)
        sim.wait_for_command("AT+CMGD=1", after=mark, timeout=WAIT)
        modem.write("AT")  # queues behind the library's own CMGD: it has its answer now
    assert [joined(s.text) for s in received] == ["井盖丢了"]
    # The library compares "SM" from +CMTI with '"SM"' from +CPMS=? and so selects it again.
    assert sim.commands[mark:] == ['AT+CPMS="SM"', "AT+CMGR=1", "AT+CMGD=1,0", "AT"]
    assert sim.stored() == {}


def test_the_library_sees_a_delivery_report_through_cdsi(sim: ModemSimulator) -> None:
    reported = threading.Event()
    with connected(sim, smsStatusReportCallback=lambda report: reported.set()) as modem:
        sms = modem.sendSms(CITIZEN, "您的来信已收到")
        assert sms.status == SentSms.ENROUTE
        index = sim.send_status_report(sms.reference)
        assert index == 1
        assert reported.wait(WAIT)
        assert sms.status == SentSms.DELIVERED
        assert sms.report.reference == sms.reference


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param(ModemProfile(), id="cscs-listed-by-clac"),
        pytest.param(ModemProfile(clac=False), id="cscs-found-by-probing"),
    ],
)
def test_send_sms_records_the_submitted_pdu(profile: ModemProfile) -> None:
    with ModemSimulator(profile, clock=fixed_clock) as sim, connected(sim) as modem:
        first = modem.sendSms(CITIZEN, "您的来信已收到")
        second = modem.sendSms(CITIZEN, "Ref 12345")
        assert 'AT+CSCS="UCS2"' in sim.commands
    assert [(s.reference, s.destination, s.text) for s in sim.sent] == [
        (first.reference, CITIZEN, "您的来信已收到"),
        (second.reference, CITIZEN, "Ref 12345"),
    ]
    decoded = decodeSmsPdu(sim.sent[0].pdu)
    assert (decoded["type"], decoded["number"], decoded["text"]) == (
        "SMS-SUBMIT",
        CITIZEN,
        "您的来信已收到",
    )


def test_without_cscs_the_library_refuses_to_send_ucs2() -> None:
    with ModemSimulator(ModemProfile(charsets=None)) as plain, connected(plain) as modem:
        assert "AT+CSCS=?" not in plain.commands
        with pytest.raises(CommandError, match="CSCS command not supported"):
            modem.sendSms(CITIZEN, "您的来信已收到")
        modem.sendSms(CITIZEN, "Received, thank you")
    assert [s.text for s in plain.sent] == ["Received, thank you"]


def test_an_injected_cms_error_makes_send_sms_raise(sim: ModemSimulator) -> None:
    sim.fail_next("AT+CMGS", "+CMS ERROR: 500")
    with connected(sim) as modem:
        with pytest.raises(CmsError) as error:
            modem.sendSms(CITIZEN, "您的来信已收到")
        assert error.value.code == 500
        assert sim.sent == []
        modem.sendSms(CITIZEN, "您的来信已收到")
    assert len(sim.sent) == 1


def test_a_hung_command_times_out_once(sim: ModemSimulator) -> None:
    sim.hang_next("AT+CSQ")
    with connected(sim) as modem:
        with pytest.raises(TimeoutException):
            modem.write("AT+CSQ", timeout=0.3)
        assert modem.signalStrength == 20


def test_an_unplugged_modem_fails_the_library_and_comes_back_on_a_new_path(
    sim: ModemSimulator,
) -> None:
    failures: list[Exception] = []
    gone = threading.Event()

    def on_fatal(error: Exception) -> None:
        failures.append(error)
        gone.set()

    sim.deliver_text(CITIZEN, "kept on the SIM")
    with connected(sim, fatalErrorCallbackFunc=on_fatal):
        sim.disconnect()
        assert gone.wait(WAIT)
    assert isinstance(failures[0], serial.SerialException)
    assert sim.device is None
    sim.reconnect()
    with connected(sim) as modem:
        assert [s.text for s in modem.listStoredSms()] == ["kept on the SIM"]


# -- a plain terminal on the pty ----------------------------------------------------------


def test_a_terminal_sees_echo_then_cmti_cmgr_and_cmgd(sim: ModemSimulator) -> None:
    assert sim.device is not None
    term = Terminal(sim.device)
    try:
        term.port.write(b"AT\r")
        assert term.port.read_until(b"OK\r\n") == b"AT\r\r\nOK\r\n"  # echo on after power-up
        assert term.at("ATE0") == ["ATE0", "OK"]
        assert term.at("AT+CNMI=2,1,0,0,0") == ["OK"]
        sim.deliver_text(CITIZEN, "hello")
        assert term.line() == ""
        assert term.line() == '+CMTI: "SM",1'
        reply = term.at("AT+CMGR=1")
        assert reply == ["+CMGR: 0,,25", sim.stored()[1], "OK"]
        assert term.at("AT+CMGR=1")[0] == "+CMGR: 1,,25"  # read now
        assert term.at("AT+CMGD=1") == ["OK"]
        assert term.at("AT+CMGL=4") == ["OK"]
    finally:
        term.close()


def test_a_terminal_can_send_and_abandon_a_pdu(sim: ModemSimulator) -> None:
    assert sim.device is not None
    pdu = "0001000D91683108108300F0000005E8329BFD06"  # "hello", no SCA
    with terminal(sim.device) as term:
        term.port.write(b"AT+CMGS=19\r")
        assert term.port.read_until(b"> ") == b"\r\n> "
        term.port.write(pdu.encode() + b"\x1b")
        assert term.answer() == ["OK"]  # ESC abandons it
        term.port.write(b"AT+CMGS=18\r")
        term.port.read_until(b"> ")
        term.port.write(pdu.encode() + b"\x1a")
        assert term.answer() == ["+CMS ERROR: 304"]  # the length does not match the PDU
        term.port.write(b"AT+CMGS=19\r")
        term.port.read_until(b"> ")
        term.port.write(pdu.encode() + b"\x1a")
        assert term.answer() == ["+CMGS: 0", "OK"]
    assert [(s.destination, s.text, s.pdu) for s in sim.sent] == [(CITIZEN, "hello", pdu)]


def test_a_full_sim_holds_new_messages_until_a_record_frees() -> None:
    small = ModemSimulator(ModemProfile(capacity=3), clock=fixed_clock)
    device = small.start()
    try:
        with terminal(device, "AT+CNMI=2,1,0,0,0") as term:
            assert small.deliver_text(CITIZEN, "one") == [1]
            assert small.fill_storage() == 2
            assert small.deliver_text(CITIZEN, "four") == []
            assert small.pending == 1
            assert term.line() == ""
            assert term.line() == '+CMTI: "SM",1'
            assert term.at("AT+CPMS?") == ['+CPMS: "SM",3,3,"SM",3,3,"SM",3,3', "OK"]
            assert term.at("AT+CMGD=2") == ["OK"]
            assert [term.line(), term.line()] == ["", '+CMTI: "SM",2']
        assert small.pending == 0
        assert decodeSmsPdu(small.stored()[2])["text"] == "four"
    finally:
        small.stop()


def test_a_malformed_pdu_is_stored_and_listed_as_given(sim: ModemSimulator) -> None:
    assert sim.device is not None
    broken = "0891683108100005F0040D91683108108300F00000623011"  # cut inside the SCTS
    assert sim.deliver_pdu(broken) == 1
    with terminal(sim.device) as term:
        assert term.at("AT+CMGL=4") == ["+CMGL: 1,0,,15", broken, "OK"]


# -- the control process -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_line", "error"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param("[1]", "a request is a JSON object", id="not-an-object"),
        pytest.param('{"op": "explode"}', "unknown op 'explode'", id="unknown-op"),
        pytest.param('{"op": "deliver_text", "sender": "+86"}', "'text' is required", id="missing"),
        pytest.param(
            '{"op": "hang_next", "command": "AT", "times": "2"}', "must be int", id="wrong-type"
        ),
        pytest.param(
            '{"op": "deliver_text", "sender": "+86", "text": "x", "part_order": [2]}',
            "part_order must order the parts 1..1",
            id="refused-by-the-simulator",
        ),
        pytest.param('{"op": "send_status_report", "mr": 7}', "no sent message", id="unknown-mr"),
    ],
)
def test_a_bad_control_request_gets_an_error_reply(request_line: str, error: str) -> None:
    reply = dispatch(ModemSimulator(), request_line)
    assert reply["ok"] is False
    assert error in reply["error"]


@contextmanager
def control(address: str) -> Iterator[Callable[[str], dict[str, Any]]]:
    """Ask the control socket: one JSON line out, one back."""
    host, port = address.rsplit(":", 1)
    with (
        socket.create_connection((host, int(port)), timeout=WAIT) as connection,
        connection.makefile("rw", encoding="utf-8") as stream,
    ):

        def ask(request: str) -> dict[str, Any]:
            stream.write(request + "\n")
            stream.flush()
            reply: dict[str, Any] = json.loads(stream.readline())
            return reply

        yield ask


def test_the_command_line_simulator_is_driven_over_its_control_socket(tmp_path: Path) -> None:
    link = tmp_path / "modem0"
    args = [sys.executable, "-m", "simulators.modem", "--capacity", "5", "--symlink", str(link)]
    with subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            ready, _, _ = select.select([child.stdout], [], [], WAIT)
            assert ready, "the simulator printed nothing"
            hello = json.loads(child.stdout.readline())
            assert link.resolve() == Path(hello["device"])
            with control(hello["control"]) as ask:
                reply = ask('{"op":"deliver_text","sender":"+8613800138000","text":"你好"}')
                assert reply == {"ok": True, "indexes": [1], "pending": 0}
                assert ask("garbage")["ok"] is False
                fault = '{"op":"fail_next","command":"AT+CSQ","reply":"+CME ERROR: 14"}'
                assert ask(fault) == {"ok": True}
                with terminal(str(link)) as term:
                    assert term.at("AT+CSQ") == ["+CME ERROR: 14"]
                    assert term.at("AT+CMGL=4")[0] == "+CMGL: 1,0,,24"
                stored = ask('{"op":"stored"}')["stored"]
                assert decodeSmsPdu(stored["1"])["text"] == "你好"
                assert ask('{"op":"sent"}') == {"ok": True, "sent": []}
                assert ask('{"op":"fill_storage"}') == {"ok": True, "filled": 4}
                assert ask('{"op":"disconnect"}') == {"ok": True}
                assert not link.is_symlink()  # unplugged, as udev removes the link
                device = ask('{"op":"reconnect"}')["device"]
                assert link.resolve() == Path(device)
            child.send_signal(signal.SIGTERM)
            _, errors = child.communicate(timeout=WAIT)
            assert child.returncode == 0, errors
            assert not link.exists()
        finally:
            if child.poll() is None:
                child.kill()
                child.communicate()
