"""SMS PDUs as modems hand them over (3GPP TS 23.040 §9.2, alphabets per TS 23.038). Pure.

Decoded here rather than by python-gsmmodem-new, which turns emoji into lone surrogates
and reads DCS 0x48 (UCS2 in the automatic-deletion group) as GSM 7-bit. UCS2 parts are kept
as bytes so a surrogate pair split across two parts of a long message joins again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from channels.charsets import decode_text
from gateway.contract.errors import PayloadError

# TS 23.038 §6.2.1: the GSM 7-bit default alphabet and its extension table (after 0x1B).
GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}


class PduError(PayloadError):
    """A PDU that cannot be decoded (truncated, bad lengths, unknown encoding)."""


class Alphabet(enum.Enum):
    GSM7 = "gsm7"
    DATA8 = "8bit"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class Concat:
    """Concatenation info from the user data header (IEI 0x00 or 0x08)."""

    reference: int
    total: int
    sequence: int
    reference_bits: int


@dataclass(frozen=True)
class Sms:
    """One decoded PDU. For SMS-DELIVER ``address`` is the originator and ``timestamp`` the
    SMSC's; for SMS-SUBMIT (a message stored for sending) it is the destination."""

    kind: str  # "deliver", "submit" or "status-report"
    address: str
    timestamp: datetime | None
    alphabet: Alphabet
    payload: bytes  # the user data after the header: septets unpacked to one byte each
    concat: Concat | None
    smsc: str | None
    message_reference: int | None = None
    status: int | None = None

    @property
    def text(self) -> str:
        return decode_payload(self.alphabet, self.payload)


def decode_payload(alphabet: Alphabet, payload: bytes) -> str:
    if alphabet is Alphabet.UCS2:
        # surrogatepass first keeps nothing lone: a full pair decodes to one character.
        return payload.decode("utf-16-be", errors="replace")
    if alphabet is Alphabet.DATA8:
        # Phones that send 8-bit "text" send it in the local charset, GBK included.
        return decode_text(payload, None)
    return _gsm7_text(payload)


def _gsm7_text(septets: bytes) -> str:
    out = []
    escaped = False
    for s in septets:
        if escaped:
            out.append(GSM7_EXTENSION.get(s, GSM7[s] if s != 0x1B else " "))
            escaped = False
        elif s == 0x1B:
            escaped = True
        else:
            out.append(GSM7[s])
    return "".join(out)


def unpack_septets(data: bytes, count: int, skip_bits: int = 0) -> bytes:
    """``count`` 7-bit values packed LSB first (TS 23.038 §6.1.2.1), after ``skip_bits``."""
    value = int.from_bytes(data, "little")
    return bytes((value >> (skip_bits + 7 * i)) & 0x7F for i in range(count))


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise PduError(f"PDU too short for {what}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def octet(self, what: str) -> int:
        return self.take(1, what)[0]


def _semi_octets(data: bytes) -> str:
    digits = "".join(f"{b & 0x0F:X}{b >> 4:X}" for b in data)
    return digits.replace("F", "")


def _address(reader: _Reader, *, length_in_digits: bool) -> str:
    length = reader.octet("address length")
    if length == 0 and not length_in_digits:
        return ""
    kind = reader.octet("address type")
    size = (length + 1) // 2 if length_in_digits else length - 1
    raw = reader.take(size, "address")
    if (kind & 0x70) == 0x50:  # alphanumeric sender (TS 23.040 §9.1.2.5)
        return _gsm7_text(unpack_septets(raw, size * 8 // 7)).rstrip("@")
    digits = _semi_octets(raw)
    if not all(c.isdigit() or c in "*#ABC" for c in digits):
        raise PduError(f"address has characters no number has: {digits!r}")
    return ("+" if (kind & 0x70) == 0x10 else "") + digits


def _timestamp(raw: bytes) -> datetime:
    try:
        fields = [int(f"{b & 0x0F}{b >> 4}") for b in raw[:6]]
        year, month, day, hour, minute, second = fields
        zone = raw[6]
        quarters = (zone & 0x07) * 10 + (zone >> 4)
        offset = timedelta(minutes=15 * quarters) * (-1 if zone & 0x08 else 1)
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as exc:
        raise PduError(f"bad SMSC timestamp {raw.hex()}") from exc


def _alphabet(dcs: int) -> Alphabet:
    group = dcs >> 4
    if group <= 0x7:  # general data coding and the automatic-deletion group (TS 23.038 §4)
        if dcs & 0x20:
            raise PduError(f"compressed text (DCS {dcs:#04x}) is not supported")
        return {0: Alphabet.GSM7, 1: Alphabet.DATA8, 2: Alphabet.UCS2}.get(
            (dcs >> 2) & 0x03, Alphabet.GSM7
        )
    if group == 0xE:  # message waiting, store, UCS2
        return Alphabet.UCS2
    if group == 0xF:  # data coding / message class
        return Alphabet.DATA8 if dcs & 0x04 else Alphabet.GSM7
    return Alphabet.GSM7  # message waiting groups and reserved values


def _concat(header: bytes) -> Concat | None:
    i = 0
    while i + 2 <= len(header):
        iei, length = header[i], header[i + 1]
        value = header[i + 2 : i + 2 + length]
        if len(value) != length:
            raise PduError("user data header is truncated")
        if iei == 0x00 and length == 3:
            return Concat(value[0], value[1], value[2], 8)
        if iei == 0x08 and length == 4:
            return Concat(int.from_bytes(value[:2], "big"), value[2], value[3], 16)
        i += 2 + length
    return None


def parse_pdu(pdu_hex: str) -> Sms:
    """Decode a PDU as listed by AT+CMGL/AT+CMGR in PDU mode (with the SMSC prefix)."""
    try:
        # Some modems leave a quote or a CR on the PDU line.
        data = bytes.fromhex(pdu_hex.strip().strip('"').strip())
    except ValueError as exc:
        raise PduError("PDU is not hexadecimal") from exc
    reader = _Reader(data)
    smsc_length = reader.octet("SMSC length")
    smsc = None
    if smsc_length:
        smsc_reader = _Reader(reader.take(smsc_length, "SMSC"))
        smsc_reader.data = bytes([smsc_length]) + smsc_reader.data
        smsc = _address(smsc_reader, length_in_digits=False)
    first = reader.octet("first octet")
    mti = first & 0x03
    if mti == 0x02:
        return _status_report(reader, smsc)
    if mti == 0x01:
        message_reference = reader.octet("message reference")
        address = _address(reader, length_in_digits=True)
        reader.octet("PID")
        dcs = reader.octet("DCS")
        vpf = (first >> 3) & 0x03
        reader.take({0: 0, 2: 1}.get(vpf, 7), "validity period")
        timestamp = None
        kind = "submit"
    elif mti == 0x00:
        address = _address(reader, length_in_digits=True)
        reader.octet("PID")
        dcs = reader.octet("DCS")
        timestamp = _timestamp(reader.take(7, "SMSC timestamp"))
        kind, message_reference = "deliver", None
    else:
        raise PduError(f"unknown message type {mti}")
    alphabet = _alphabet(dcs)
    length = reader.octet("user data length")
    rest = data[reader.pos :]
    if dcs >> 3 == 0x1F and len(rest) == length and length % 2 == 0:
        # DCS 0xF8-0xFB sets a reserved bit; phones that do so send UCS2, which shows as a
        # length in octets rather than septets.
        alphabet = Alphabet.UCS2
    has_header = bool(first & 0x40) and length > 0
    if alphabet is Alphabet.GSM7:
        # Some modems cut the last octets of a long 7-bit message: keep what arrived.
        needed = min((length * 7 + 7) // 8, len(rest))
        length = min(length, needed * 8 // 7)
        header, skip = b"", 0
        if has_header:
            if not rest or rest[0] + 1 > needed:  # a length byte and nothing after it
                raise PduError("user data header is longer than the user data")
            header = rest[1 : 1 + rest[0]]
            skip = (1 + rest[0]) * 8
            skip += (7 - skip % 7) % 7  # fill bits up to a septet boundary
        count = length - skip // 7
        if count < 0:
            raise PduError("user data header is longer than the user data")
        payload = unpack_septets(rest[:needed], count, skip)
    else:
        if len(rest) < length:
            raise PduError(f"user data is {len(rest)} octets, its length says {length}")
        body = rest[:length]
        header = b""
        if has_header:
            if not body or body[0] + 1 > len(body):
                raise PduError("user data header is longer than the user data")
            header, body = body[1 : 1 + body[0]], body[1 + body[0] :]
        payload = body
        if alphabet is Alphabet.UCS2 and len(payload) % 2:
            raise PduError("UCS2 user data has an odd number of octets")
    return Sms(
        kind=kind,
        address=address,
        timestamp=timestamp,
        alphabet=alphabet,
        payload=payload,
        concat=_concat(header) if has_header else None,
        smsc=smsc,
        message_reference=message_reference,
    )


def _status_report(reader: _Reader, smsc: str | None) -> Sms:
    """SMS-STATUS-REPORT (TS 23.040 §9.2.2.3): the fate of a message we sent."""
    message_reference = reader.octet("message reference")
    address = _address(reader, length_in_digits=True)
    timestamp = _timestamp(reader.take(7, "SMSC timestamp"))
    reader.take(7, "discharge time")
    status = reader.octet("status")
    return Sms(
        kind="status-report",
        address=address,
        timestamp=timestamp,
        alphabet=Alphabet.GSM7,
        payload=b"",
        concat=None,
        smsc=smsc,
        message_reference=message_reference,
        status=status,
    )
