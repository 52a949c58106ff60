"""The AT commands the simulated modem knows (TS 27.007, TS 27.005 in PDU mode): one
function each, registered by name, over the state of an :class:`~simulators.modem.at.AtModem`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from simulators.modem.pdu import tpdu_length

if TYPE_CHECKING:
    from simulators.modem.at import AtModem

Op = Literal["exec", "read", "test", "set"]
STAT_UNREAD, STAT_READ, STAT_UNSENT, STAT_SENT, STAT_ALL = range(5)
# TS 27.005 §3.2.5 +CMS ERROR codes.
CMS_NOT_SUPPORTED, CMS_INVALID_PDU, CMS_SIM_PIN, CMS_INVALID_INDEX = 303, 304, 311, 321
# TS 27.007 §9.2 +CME ERROR codes, with the text CMEE=2 shows.
CME_NOT_ALLOWED, CME_NOT_SUPPORTED, CME_SIM_PIN, CME_WRONG_PIN, CME_BAD_PARAMETERS = (
    3,
    4,
    11,
    16,
    50,
)
CME_TEXT = {
    3: "operation not allowed",
    4: "operation not supported",
    11: "SIM PIN required",
    14: "SIM busy",
    16: "incorrect password",
    50: "Incorrect parameters",
}
INVALID = -1  # a bad parameter: +CMS ERROR: 304 for SMS commands, +CME ERROR: 50 otherwise
# 27.005 commands answer +CMS ERROR whatever +CMEE says; the rest +CME ERROR or ERROR.
SMS_COMMANDS = {"+CSMS", "+CPMS", "+CMGF", "+CSCA", "+CSMP", "+CNMI", "+CMGL", "+CMGR"}
SMS_COMMANDS |= {"+CMGD", "+CMGS"}
NEEDS_SIM = (SMS_COMMANDS - {"+CMGF"}) | {"+CIMI", "+CNUM"}


class AtError(Exception):
    """Ends the command line with an error: plain ERROR when ``code`` is None."""

    def __init__(self, code: int | None = None) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Prompt:
    """Answer "> " and wait for ``length`` TPDU octets in hex, ended by Ctrl-Z."""

    length: int


Handler = Callable[["AtModem", Op, list[str]], "list[str] | Prompt"]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = handler
        return handler

    return register


def ints(args: list[str], low: list[int], high: list[int], need: int = 1) -> list[int]:
    """Integer parameters within ranges; absent trailing ones become the low bound."""
    if not need <= len(args) <= len(low):
        raise AtError(INVALID)
    values = []
    for i, (lo, hi) in enumerate(zip(low, high, strict=True)):
        text = args[i] if i < len(args) else ""
        if text == "" and i >= need:
            values.append(lo)
        elif text.isdigit() and lo <= int(text) <= hi:
            values.append(int(text))
        else:
            raise AtError(INVALID)
    return values


def _only_exec(op: Op, answer: str) -> list[str]:
    if op != "exec":
        raise AtError()
    return [answer]


@command("+CGMI")
def cgmi(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _only_exec(op, m.profile.manufacturer)


@command("+CGMM")
def cgmm(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _only_exec(op, m.profile.model)


@command("+CGMR")
def cgmr(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _only_exec(op, m.profile.revision)


@command("+CGSN")
def cgsn(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _only_exec(op, m.profile.imei)


@command("+CIMI")
def cimi(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _only_exec(op, m.profile.imsi)


@command("+CNUM")
def cnum(m: AtModem, op: Op, args: list[str]) -> list[str]:
    number = m.profile.own_number
    if op != "exec" or number is None:
        return []
    return [f'+CNUM: "","{number}",{145 if number.startswith("+") else 129}']


@command("+CLAC")
def clac(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op != "exec" or not m.profile.clac:
        raise AtError()
    names = sorted("AT" + name for name in COMMANDS)
    return [n for n in names if n != "AT+CSCS" or m.profile.charsets is not None]


@command("+CMEE")
def cmee(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        (m.cmee,) = ints(args, [0], [2])
    return {"read": [f"+CMEE: {m.cmee}"], "test": ["+CMEE: (0-2)"]}.get(op, [])


@command("+CFUN")
def cfun(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        fun, _ = ints(args, [0, 0], [4, 1])
        if fun not in (0, 1, 4):
            raise AtError(INVALID)
        m.cfun = fun
        m.drain_pending()
    return {"read": [f"+CFUN: {m.cfun}"], "test": ["+CFUN: (0,1,4),(0,1)"]}.get(op, [])


@command("+CPIN")
def cpin(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "read":
        return ["+CPIN: SIM PIN" if m.sim_locked else "+CPIN: READY"]
    if op == "set":
        if not m.sim_locked:
            raise AtError(CME_NOT_ALLOWED)
        if not args or args[0] != m.profile.pin:
            raise AtError(CME_WRONG_PIN)
        m.sim_locked = False
        m.drain_pending()
    return []


@command("+COPS")
def cops(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        mode, fmt = ints(args[:2], [0, 0], [4, 2])
        if mode == 3:
            m.cops_format = fmt
        elif mode not in (0, 1):  # manual selection of our one operator is accepted
            raise AtError(CME_NOT_ALLOWED)
    elif op == "read":
        if not m.receiving:
            return ["+COPS: 0"]
        return [f'+COPS: 0,{m.cops_format},"{m.profile.operator[m.cops_format]}",0']
    elif op == "test":
        long, short, numeric = m.profile.operator
        return [f'+COPS: (2,"{long}","{short}","{numeric}",0),,(0-4),(0-2)']
    return []


@command("+CREG")
def creg(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        (m.creg,) = ints(args, [0], [2])
    elif op == "read":
        return [f"+CREG: {m.creg},{1 if m.receiving else 0}"]
    elif op == "test":
        return ["+CREG: (0-2)"]
    return []


@command("+CSQ")
def csq(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "test":
        return ["+CSQ: (0-31,99),(0-7,99)"]
    return _only_exec(op, f"+CSQ: {m.profile.signal if m.cfun == 1 else 99},99")


@command("+CSCS")
def cscs(m: AtModem, op: Op, args: list[str]) -> list[str]:
    charsets = m.profile.charsets or ()
    if op == "set":
        if len(args) != 1 or args[0].upper() not in charsets:
            raise AtError(CME_NOT_SUPPORTED)
        m.charset = args[0].upper()
    elif op == "read":
        return [f'+CSCS: "{m.charset}"']
    elif op == "test":
        return ["+CSCS: (" + ",".join(f'"{c}"' for c in charsets) + ")"]
    return []


@command("+CLIP")
def clip(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _flag(m, op, args, "+CLIP")


@command("+CRC")
def crc(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _flag(m, op, args, "+CRC")


@command("+CVHU")
def cvhu(m: AtModem, op: Op, args: list[str]) -> list[str]:
    return _flag(m, op, args, "+CVHU")


def _flag(m: AtModem, op: Op, args: list[str], name: str) -> list[str]:
    if op == "set":
        (m.flags[name],) = ints(args, [0], [1])
    elif op == "read":
        return [f"{name}: {m.flags[name]}" + (",2" if name == "+CLIP" else "")]
    elif op == "test":
        return [f"{name}: (0,1)"]
    return []


@command("+CSMS")
def csms(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        ints(args, [0], [1])
        return ["+CSMS: 1,1,1"]
    return {"read": ["+CSMS: 0,1,1,1"], "test": ["+CSMS: (0,1)"]}.get(op, [])


@command("+CMGF")
def cmgf(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set" and ints(args, [0], [1]) != [0]:
        raise AtError(CMS_NOT_SUPPORTED)  # PDU mode only
    return {"read": ["+CMGF: 0"], "test": ["+CMGF: (0)"]}.get(op, [])


@command("+CSCA")
def csca(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        number = _from_te(m, args[0]) if args else ""
        if not number.removeprefix("+").isdigit() or len(args) > 2:
            raise AtError(INVALID)
        m.smsc = number
    elif op == "read":
        kind = 145 if m.smsc.startswith("+") else 129
        return [f'+CSCA: "{_to_te(m, m.smsc)}",{kind}']
    return []


def _to_te(m: AtModem, text: str) -> str:
    """Strings reach the terminal in the +CSCS character set (TS 27.007 §5.5)."""
    return text.encode("utf-16-be").hex().upper() if m.charset == "UCS2" else text


def _from_te(m: AtModem, text: str) -> str:
    if m.charset != "UCS2":
        return text
    try:
        return bytes.fromhex(text).decode("utf-16-be")
    except ValueError:
        return ""


@command("+CSMP")
def csmp(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        fo, vp, pid, dcs = ints(args, [0, 0, 0, 0], [255, 255, 255, 255])
        m.csmp = (fo, vp, pid, dcs)
    elif op == "read":
        return ["+CSMP: " + ",".join(map(str, m.csmp))]
    return []


@command("+CPMS")
def cpms(m: AtModem, op: Op, args: list[str]) -> list[str]:
    used, total = len(m.slots), m.profile.capacity
    if op == "test":
        return ['+CPMS: ("SM"),("SM"),("SM")']
    if op == "read":
        return ["+CPMS: " + ",".join([f'"SM",{used},{total}'] * 3)]
    if op == "set":
        if not 1 <= len(args) <= 3 or any(a.upper() != "SM" for a in args):
            raise AtError(CMS_NOT_SUPPORTED)
        return ["+CPMS: " + ",".join([f"{used},{total}"] * 3)]
    raise AtError()


@command("+CNMI")
def cnmi(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "set":
        mode, mt, bm, ds, bfr = ints(args, [0] * 5, [3, 3, 3, 2, 1])
        if mt > 1:  # +CMT direct delivery is not emulated: messages always go to SM
            raise AtError(CMS_NOT_SUPPORTED)
        m.cnmi = (mode, mt, bm, ds, bfr)
    elif op == "read":
        return ["+CNMI: " + ",".join(map(str, m.cnmi))]
    elif op == "test":
        return ["+CNMI: (0-3),(0,1),(0-3),(0-2),(0,1)"]
    return []


@command("+CMGL")
def cmgl(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "test":
        return ["+CMGL: (0-4)"]
    if op == "read":
        raise AtError()
    (stat,) = ints(args, [0], [4], need=0)
    lines = []
    for index in sorted(m.slots):
        slot = m.slots[index]
        if stat in (STAT_ALL, slot.stat):
            lines += [f"+CMGL: {index},{slot.stat},,{tpdu_length(slot.pdu)}", slot.pdu]
            if slot.stat == STAT_UNREAD:  # TS 27.005 §3.4.2: listing marks it read
                slot.stat = STAT_READ
    return lines


@command("+CMGR")
def cmgr(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "test":
        return []
    if op != "set":
        raise AtError()
    (index,) = ints(args, [0], [255])
    if not 1 <= index <= m.profile.capacity:
        raise AtError(CMS_INVALID_INDEX)
    slot = m.slots.get(index)
    if slot is None:
        return []  # an empty record: OK and no data, as SIMCom and Quectel modems answer
    lines = [f"+CMGR: {slot.stat},,{tpdu_length(slot.pdu)}", slot.pdu]
    if slot.stat == STAT_UNREAD:
        slot.stat = STAT_READ
    return lines


@command("+CMGD")
def cmgd(m: AtModem, op: Op, args: list[str]) -> list[str]:
    if op == "test":
        return [f"+CMGD: ({','.join(map(str, sorted(m.slots)))}),(0-4)"]
    if op != "set":
        raise AtError()
    index, flag = ints(args, [0, 0], [255, 4])
    if flag == 0:  # <delflag> 1..4 ignore <index> (TS 27.005 §3.5.4)
        if not 1 <= index <= m.profile.capacity:
            raise AtError(CMS_INVALID_INDEX)
        m.slots.pop(index, None)
    else:
        read, sent, unsent = STAT_READ, STAT_SENT, STAT_UNSENT
        doomed = {1: {read}, 2: {read, sent}, 3: {read, sent, unsent}}.get(flag, set(range(4)))
        for i in [i for i, slot in m.slots.items() if slot.stat in doomed]:
            del m.slots[i]
    m.drain_pending()
    return []


@command("+CMGS")
def cmgs(m: AtModem, op: Op, args: list[str]) -> list[str] | Prompt:
    if op == "test":
        return []
    if op != "set":
        raise AtError()
    (length,) = ints(args, [1], [255])
    return Prompt(length)
