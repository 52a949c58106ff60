"""The AT command interpreter of a GSM modem in SMS PDU mode (3GPP TS 27.007, TS 27.005). Pure.

Bytes in, bytes out: :meth:`AtModem.feed` takes what the terminal wrote and returns what the
modem answers; unsolicited result codes wait in :attr:`AtModem.unsolicited` until the line is
idle, as a real modem holds them back while a command runs (the buffering of +CNMI <mode> 2,
TS 27.005 §3.4.1), so a +CMTI never lands inside the answer to another command.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from simulators.modem.commands import (
    CME_SIM_PIN,
    CME_TEXT,
    CMS_INVALID_PDU,
    CMS_SIM_PIN,
    COMMANDS,
    INVALID,
    NEEDS_SIM,
    SMS_COMMANDS,
    STAT_READ,
    STAT_UNREAD,
    AtError,
    Op,
    Prompt,
)
from simulators.modem.pdu import decode_submit, tpdu_length

log = logging.getLogger(__name__)

CTRL_Z = 0x1A
ESC = 0x1B
MAX_LINE = 1024


@dataclass(frozen=True)
class ModemProfile:
    """What the modem and its SIM are; ``charsets=None`` is a modem without ``+CSCS``."""

    capacity: int = 30
    pin: str | None = None
    smsc: str = "+8613800100500"
    charsets: tuple[str, ...] | None = ("IRA", "GSM", "UCS2")
    clac: bool = True
    manufacturer: str = "Hotline"
    model: str = "ModemSim GSM"
    revision: str = "1.0"
    imei: str = "490154203237518"
    imsi: str = "460001234567890"
    operator: tuple[str, str, str] = ("CHINA MOBILE", "CMCC", "46000")
    own_number: str | None = None
    signal: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.capacity <= 255:
            raise ValueError("capacity must be 1..255 (SIM storage)")
        if self.pin is not None and not (self.pin.isdigit() and 4 <= len(self.pin) <= 8):
            raise ValueError("a SIM PIN has 4 to 8 digits")
        if not (0 <= self.signal <= 31 or self.signal == 99):
            raise ValueError("signal is an RSSI 0..31, or 99 for unknown (+CSQ)")


@dataclass(frozen=True)
class SentMessage:
    """An SMS-SUBMIT the modem accepted after ``AT+CMGS``; ``reference`` is the TP-MR."""

    pdu: str
    reference: int
    destination: str
    text: str
    at: datetime


@dataclass
class Slot:
    stat: int
    pdu: str
    report: bool = False  # an SMS-STATUS-REPORT (announced by +CDSI, not +CMTI)


@dataclass
class _Fault:
    prefix: str
    reply: str | None  # None: no answer at all
    times: int


@dataclass
class _Entry:
    """A PDU being typed after the "> " prompt of AT+CMGS."""

    length: int
    fault: _Fault | None
    data: bytearray = field(default_factory=bytearray)


class _Final(Exception):
    """Ends a command line with this final result code instead of OK."""

    def __init__(self, reply: str = "ERROR") -> None:
        super().__init__(reply)
        self.reply = reply


class AtModem:
    """The state of one modem: settings, SIM storage, sent messages, injected faults."""

    def __init__(self, profile: ModemProfile, clock: Callable[[], datetime]) -> None:
        self.profile = profile
        self.clock = clock
        self.slots: dict[int, Slot] = {}
        self.pending: deque[Slot] = deque()  # held by the network while the SIM is full
        self.sent: list[SentMessage] = []
        self.commands: list[str] = []
        self.unsolicited = bytearray()
        self.smsc = profile.smsc
        self._faults: list[_Fault] = []
        self._reference = 0
        self.power_on()

    # -- power and line state ------------------------------------------------------------

    def power_on(self) -> None:
        """A fresh boot: factory settings, SIM locked again if it has a PIN, no buffers."""
        self.reset()
        self.sim_locked = self.profile.pin is not None
        self.cfun = 1
        self.unsolicited.clear()
        self._line = bytearray()
        self._entry: _Entry | None = None

    def reset(self) -> None:
        """ATZ / AT&F: volatile settings back to defaults; SIM and storage untouched."""
        self.echo = True
        self.cmee = 0
        self.cnmi = (0, 0, 0, 0, 0)
        charsets = self.profile.charsets or ("IRA",)
        self.charset = "IRA" if "IRA" in charsets else charsets[0]
        self.creg = 0
        self.cops_format = 0
        self.csmp = (17, 167, 0, 0)
        self.flags = {"+CLIP": 0, "+CRC": 0, "+CVHU": 1}

    @property
    def idle(self) -> bool:
        """No command half-typed and no PDU being entered: a URC may go out now."""
        return not self._line and self._entry is None

    def take_unsolicited(self) -> bytes:
        out = bytes(self.unsolicited)
        self.unsolicited.clear()
        return out

    # -- faults ----------------------------------------------------------------------------

    def add_fault(self, prefix: str, reply: str | None, times: int) -> None:
        if not prefix.upper().startswith("AT") or times < 1:
            raise ValueError("a fault needs a command prefix starting with AT and times >= 1")
        self._faults.append(_Fault(prefix.upper(), reply, times))

    def _take_fault(self, line: str) -> _Fault | None:
        for fault in self._faults:
            if line.upper().startswith(fault.prefix):
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    # -- storage ---------------------------------------------------------------------------

    @property
    def receiving(self) -> bool:
        """Registered on the network: SIM unlocked and the radio on (+CFUN=1)."""
        return not self.sim_locked and self.cfun == 1

    def deliver(self, pdu: str, *, report: bool = False) -> int | None:
        """Store a PDU arriving from the network; None while it waits (SIM full, no network)."""
        if any(c in pdu for c in "\r\n\x1a\x1b"):
            raise ValueError("a PDU line cannot hold CR, LF, Ctrl-Z or ESC")
        slot = Slot(STAT_UNREAD, pdu, report)
        if self.pending or not self.receiving or len(self.slots) >= self.profile.capacity:
            self.pending.append(slot)
            return None
        return self._store(slot)

    def fill(self, pdus: list[str]) -> int:
        """Occupy every free slot with old, read messages (no notification)."""
        free = self._free_indexes()
        for index, pdu in zip(free, pdus, strict=False):
            self.slots[index] = Slot(STAT_READ, pdu)
        return min(len(free), len(pdus))

    def free_count(self) -> int:
        return self.profile.capacity - len(self.slots)

    def _free_indexes(self) -> list[int]:
        return [i for i in range(1, self.profile.capacity + 1) if i not in self.slots]

    def _store(self, slot: Slot) -> int:
        index = self._free_indexes()[0]  # the lowest free record, as SIMs fill EF_SMS
        self.slots[index] = slot
        mode, mt, _, ds, _ = self.cnmi
        if mode and slot.report and ds == 2:
            self._urc(f'+CDSI: "SM",{index}')
        elif mode and not slot.report and mt == 1:
            self._urc(f'+CMTI: "SM",{index}')
        return index

    def drain_pending(self) -> None:
        while self.pending and self.receiving and len(self.slots) < self.profile.capacity:
            self._store(self.pending.popleft())

    def status_report(self, pdu: str) -> int | None:
        """Route an SMS-STATUS-REPORT per +CNMI <ds>: 2 stored (+CDSI), 1 direct (+CDS)."""
        ds = self.cnmi[3] if self.cnmi[0] else 0
        if ds == 2:
            return self.deliver(pdu, report=True)
        if ds == 1:
            self._urc(f"+CDS: {tpdu_length(pdu)}\r\n{pdu}")
        return None

    def next_reference(self) -> int:
        reference = self._reference
        self._reference = (self._reference + 1) % 256
        return reference

    def _urc(self, text: str) -> None:
        self.unsolicited += f"\r\n{text}\r\n".encode("latin-1")

    # -- the line --------------------------------------------------------------------------

    def feed(self, data: bytes) -> bytes:
        """Consume what the terminal wrote; return the modem's answer (echo included)."""
        out = bytearray()
        for byte in data:
            if self._entry is not None:
                self._pdu_byte(byte, out)
            else:
                self._command_byte(byte, out)
        return bytes(out)

    def _command_byte(self, byte: int, out: bytearray) -> None:
        if self.echo:
            out.append(byte)
        if byte == 0x0D:  # S3: the command line ends
            line = self._line.decode("latin-1").strip()
            self._line.clear()
            out += self._command_line(line)
        elif byte == 0x08:  # S5: backspace
            del self._line[-1:]
        elif byte not in (0x0A, CTRL_Z, ESC) and len(self._line) < MAX_LINE:
            self._line.append(byte)

    def _pdu_byte(self, byte: int, out: bytearray) -> None:
        entry = self._entry
        assert entry is not None
        if self.echo:
            out.append(byte)
        if byte == CTRL_Z:
            self._entry = None
            out += self._submit(entry)
        elif byte == ESC:  # TS 27.005 §3.5.1: ESC abandons the message
            self._entry = None
            out += _frame([], "OK")
        elif byte not in (0x0D, 0x0A) and len(entry.data) < MAX_LINE:
            entry.data.append(byte)

    def _command_line(self, line: str) -> bytes:
        start = line.upper().find("AT")  # V.250: what comes before the prefix is ignored
        if start < 0:
            return b""
        line = line[start:]
        self.commands.append(line)
        fault = self._take_fault(line)
        if fault is not None and not line.upper().startswith("AT+CMGS="):
            return b"" if fault.reply is None else _frame([], fault.reply)
        lines: list[str] = []
        try:
            for name, op, args in _parse(line[2:]):
                result = self._run(name, op, args)
                if isinstance(result, Prompt):
                    self._entry = _Entry(result.length, fault)
                    return _frame(lines, None) + b"\r\n> "
                lines += result
        except _Final as final:
            return _frame(lines, final.reply)
        except Exception:  # a simulator bug must look like a modem refusing, not kill the line
            log.exception("command %r failed", line)
            return _frame(lines, "ERROR")
        return _frame(lines, "OK")

    def _submit(self, entry: _Entry) -> bytes:
        pdu = entry.data.decode("latin-1").strip().upper()
        fault = entry.fault
        if fault is not None and fault.reply is not None:
            return _frame([], fault.reply)  # refused: nothing was sent
        try:
            submit = decode_submit(pdu)
            if tpdu_length(pdu) != entry.length:
                raise ValueError("<length> does not match the TPDU")
        except ValueError:
            return _frame([], f"+CMS ERROR: {CMS_INVALID_PDU}")
        reference = self.next_reference()  # the modem, not the PDU, numbers TP-MR
        self.sent.append(SentMessage(pdu, reference, submit.destination, submit.text, self.clock()))
        if fault is not None:
            return b""  # hung: the message went out, the answer is lost
        return _frame([f"+CMGS: {reference}"], "OK")

    # -- commands --------------------------------------------------------------------------

    def _run(self, name: str, op: Op, args: list[str]) -> list[str] | Prompt:
        if not name.startswith(("+", "^")):
            return self._basic(name)
        handler = COMMANDS.get(name)
        if handler is None or (name == "+CSCS" and self.profile.charsets is None):
            raise _Final()
        try:
            if name in NEEDS_SIM and self.sim_locked:
                raise AtError(CMS_SIM_PIN if name in SMS_COMMANDS else CME_SIM_PIN)
            return handler(self, op, args)
        except AtError as error:
            raise _Final(self._error(name, error.code)) from None

    def _error(self, name: str, code: int | None) -> str:
        """The final result code for an error: +CMS ERROR for 27.005 commands whatever
        +CMEE says; else ERROR, +CME ERROR: <n> or its text per +CMEE 0, 1, 2."""
        if code is None:
            return "ERROR"
        if name in SMS_COMMANDS:
            return f"+CMS ERROR: {CMS_INVALID_PDU if code == INVALID else code}"
        code = 50 if code == INVALID else code
        if self.cmee == 0:
            return "ERROR"
        if self.cmee == 2 and code in CME_TEXT:
            return f"+CME ERROR: {CME_TEXT[code]}"
        return f"+CME ERROR: {code}"

    def _basic(self, command: str) -> list[str]:
        letter, value = command.rstrip("0123456789"), command.lstrip("&ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        if letter == "E" and value in ("", "0", "1"):
            self.echo = value == "1"
        elif letter in ("Z", "&F") and value in ("", "0"):
            self.reset()
        elif letter == "I" and value in ("", "0"):
            return [self.profile.manufacturer, self.profile.model, self.profile.revision]
        elif letter in ("V", "Q", "H") and value in ("", "0" if letter != "V" else "1"):
            pass  # verbose result codes on, not quiet, nothing to hang up
        elif letter not in ("&C", "&D", "&W"):
            raise _Final()  # V0 (numeric result codes), S-registers and the rest
        return []


_EXTENDED = re.compile(r"([+^][A-Za-z]+)(=\?|\?|=)?")
_BASIC = re.compile(r"&?[A-Za-z][0-9]*")


def _parse(body: str) -> list[tuple[str, Op, list[str]]]:
    """Split a command line after "AT" into commands (V.250 §5.3): basic ones like E0 or Z,
    extended ones like +CMGL=4 separated by ';'. Raises _Final on a syntax error."""
    commands: list[tuple[str, Op, list[str]]] = []
    i = 0
    while i < len(body):
        if body[i] in " ;":
            i += 1
            continue
        extended = _EXTENDED.match(body, i)
        if extended:
            end = _end_of_command(body, extended.end())
            suffix = extended.group(2)
            op = _op(suffix)
            rest = body[extended.end() : end].strip()
            if rest and op != "set":
                raise _Final()
            commands.append(
                (extended.group(1).upper(), op, _arguments(rest) if op == "set" else [])
            )
            i = end
            continue
        basic = _BASIC.match(body, i)
        if not basic:
            raise _Final()
        commands.append((basic.group().upper(), "exec", []))
        i = basic.end()
    return commands


def _op(suffix: str | None) -> Op:
    if suffix == "=?":
        return "test"
    if suffix == "?":
        return "read"
    return "set" if suffix == "=" else "exec"


def _end_of_command(body: str, start: int) -> int:
    quoted = False
    for i in range(start, len(body)):
        if body[i] == '"':
            quoted = not quoted
        elif body[i] == ";" and not quoted:
            return i
    if quoted:
        raise _Final()
    return len(body)


def _arguments(text: str) -> list[str]:
    args, current, quoted = [], "", False
    for char in text:
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            args.append(current.strip())
            current = ""
        else:
            current += char
    args.append(current.strip())
    return args


def _frame(lines: list[str], final: str | None) -> bytes:
    """Information text then the final result code, each framed by CR LF (V.250 §5.7.1)."""
    out = "".join(f"\r\n{line}\r\n" for line in lines)
    if final is not None:
        out += "".join(f"\r\n{line}\r\n" for line in final.split("\n"))
    return out.encode("latin-1")
