"""SMS-DELIVER and SMS-STATUS-REPORT encoding as a network hands them to a modem. Pure.

3GPP TS 23.040 §9.2.2.1 (SMS-DELIVER), §9.2.2.3 (SMS-STATUS-REPORT), §9.1.2.5 (addresses),
§9.2.3.11 (timestamps), §9.2.3.24.1 (concatenation); alphabets per TS 23.038 §6.2.1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Encoding = Literal["auto", "gsm7", "ucs2"]

# TS 23.038 §6.2.1: the GSM 7-bit default alphabet and its extension table (after 0x1B).
GSM7 = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_GSM7_INDEX = {c: i for i, c in enumerate(GSM7) if c != "\x1b"}

DCS_GSM7 = 0x00
DCS_UCS2 = 0x08
MAX_SEPTETS = 160
MAX_OCTETS = 140
IEI_CONCAT_8 = 0x00
IEI_CONCAT_16 = 0x08


def gsm7_septets(text: str) -> bytes | None:
    """``text`` in the default alphabet (extension characters as ESC + code), or None."""
    out = bytearray()
    for char in text:
        if char in _GSM7_INDEX:
            out.append(_GSM7_INDEX[char])
        elif char in GSM7_EXTENSION:
            out += bytes((0x1B, GSM7_EXTENSION[char]))
        else:
            return None
    return bytes(out)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Septets packed LSB first (TS 23.038 §6.1.2.1), after ``fill_bits`` zero bits."""
    value = 0
    for i, septet in enumerate(septets):
        value |= (septet & 0x7F) << (fill_bits + 7 * i)
    return value.to_bytes((fill_bits + 7 * len(septets) + 7) // 8, "little")


def semi_octets(digits: str) -> bytes:
    """Swapped-nibble BCD, padded with F (TS 23.040 §9.1.2.3)."""
    if len(digits) % 2:
        digits += "F"
    return bytes(int(digits[i + 1] + digits[i], 16) for i in range(0, len(digits), 2))


def encode_address(address: str) -> bytes:
    """TP-OA / TP-RA: ``+digits`` international (0x91), digits in the unknown/national
    format networks use for short codes (0x81), anything else alphanumeric (0xD0)."""
    if address.startswith("+") and address[1:].isdigit() and len(address) <= 21:
        return bytes((len(address) - 1, 0x91)) + semi_octets(address[1:])
    if address.isdigit() and len(address) <= 20:
        return bytes((len(address), 0x81)) + semi_octets(address)
    septets = gsm7_septets(address)
    if not address or septets is None or len(septets) > 11:
        raise ValueError(f"not a number nor an 11-character GSM alphanumeric: {address!r}")
    packed = pack_septets(septets)
    # The length counts useful semi-octets: 7 bits per character, rounded up to 4.
    return bytes(((len(septets) * 7 + 3) // 4, 0xD0)) + packed


def encode_smsc(number: str) -> bytes:
    """The SCA in front of a PDU: its length counts octets, including the type octet."""
    if not number:
        return b"\x00"
    digits = number.removeprefix("+")
    if not digits.isdigit():
        raise ValueError(f"SMSC must be a phone number: {number!r}")
    body = semi_octets(digits)
    return bytes((len(body) + 1, 0x91 if number.startswith("+") else 0x81)) + body


def encode_timestamp(when: datetime) -> bytes:
    """TP-SCTS: local time and the offset from UTC in signed quarter hours (§9.2.3.11)."""
    offset = when.utcoffset()
    if offset is None:
        raise ValueError("timestamp needs a timezone (the PDU carries the offset)")
    quarters, rest = divmod(abs(offset), timedelta(minutes=15))
    if rest or quarters > 79:
        raise ValueError(f"offset {offset} is not a whole number of quarter hours")
    zone = semi_octets(f"{quarters:02d}")[0] | (0x08 if offset < timedelta(0) else 0)
    return semi_octets(when.strftime("%y%m%d%H%M%S")) + bytes((zone,))


def split_user_data(text: str, encoding: Encoding, ref_bits: int) -> tuple[int, list[bytes]]:
    """The DCS and the payload of each part: septets (GSM 7-bit) or UTF-16BE octets.

    Concatenated parts leave room for the UDH (§9.2.3.24.1): 153/152 septets or 134/132
    octets. An escape sequence or a surrogate pair is never cut between two parts.
    """
    septets = gsm7_septets(text) if encoding != "ucs2" else None
    if encoding == "gsm7" and septets is None:
        raise ValueError("text has characters outside the GSM 7-bit alphabet")
    udh_octets = 6 if ref_bits == 8 else 7
    if septets is not None:
        if len(septets) <= MAX_SEPTETS:
            return DCS_GSM7, [septets]
        room = MAX_SEPTETS - (udh_octets * 8 + 6) // 7
        return DCS_GSM7, _chunks(septets, room, 1, lambda s: s[-1] == 0x1B)
    octets = text.encode("utf-16-be", errors="surrogatepass")
    if len(octets) <= MAX_OCTETS:
        return DCS_UCS2, [octets]
    room = (MAX_OCTETS - udh_octets) // 2 * 2
    return DCS_UCS2, _chunks(octets, room, 2, lambda s: 0xD8 <= s[-2] <= 0xDB)


def _chunks(data: bytes, room: int, unit: int, cut_inside: Callable[[bytes], bool]) -> list[bytes]:
    parts = []
    while data:
        chunk = data[:room]
        if len(chunk) < len(data) and cut_inside(chunk):
            chunk = chunk[:-unit]
        parts.append(chunk)
        data = data[len(chunk) :]
    return parts


def concat_header(reference: int, total: int, number: int, ref_bits: int) -> bytes:
    """UDH with one concatenation IE: IEI 0x00 (8-bit reference) or 0x08 (16-bit)."""
    if ref_bits == 8:
        ie = bytes((IEI_CONCAT_8, 3, reference & 0xFF, total, number))
    else:
        ie = bytes((IEI_CONCAT_16, 4, reference >> 8 & 0xFF, reference & 0xFF, total, number))
    return bytes((len(ie),)) + ie


def deliver_pdu(
    *,
    smsc: str,
    sender: str,
    timestamp: datetime,
    dcs: int,
    payload: bytes,
    header: bytes = b"",
) -> str:
    """One SMS-DELIVER PDU as a modem shows it in PDU mode: SCA + TPDU, upper-case hex."""
    first = 0x04  # MTI=00 SMS-DELIVER, TP-MMS=1: no more messages waiting
    if header:
        first |= 0x40  # TP-UDHI
    if dcs == DCS_GSM7:
        header_bits = len(header) * 8
        fill = (7 - header_bits % 7) % 7  # the text starts on a septet boundary
        udl = (header_bits + fill) // 7 + len(payload)
        ud = header + pack_septets(payload, fill)
    else:
        udl = len(header) + len(payload)
        ud = header + payload
    tpdu = (
        bytes((first,))
        + encode_address(sender)
        + bytes((0x00, dcs))  # TP-PID: plain short message
        + encode_timestamp(timestamp)
        + bytes((udl,))
        + ud
    )
    return (encode_smsc(smsc) + tpdu).hex().upper()


def deliver_pdus(
    *,
    smsc: str,
    sender: str,
    text: str,
    timestamp: datetime,
    encoding: Encoding = "auto",
    reference: int = 0,
    ref_bits: int = 8,
) -> list[str]:
    """The SMS-DELIVER PDUs of ``text`` in part order; one PDU without UDH if it fits."""
    if ref_bits not in (8, 16):
        raise ValueError("ref_bits must be 8 or 16")
    if not 0 <= reference < 1 << ref_bits:
        raise ValueError(f"reference {reference} does not fit in {ref_bits} bits")
    dcs, parts = split_user_data(text, encoding, ref_bits)
    if len(parts) == 1:
        return [
            deliver_pdu(smsc=smsc, sender=sender, timestamp=timestamp, dcs=dcs, payload=parts[0])
        ]
    if len(parts) > 255:
        raise ValueError(f"text needs {len(parts)} parts; a concatenated SMS has at most 255")
    return [
        deliver_pdu(
            smsc=smsc,
            sender=sender,
            timestamp=timestamp,
            dcs=dcs,
            payload=payload,
            header=concat_header(reference, len(parts), number, ref_bits),
        )
        for number, payload in enumerate(parts, start=1)
    ]


def status_report_pdu(
    *, smsc: str, reference: int, recipient: str, sent: datetime, done: datetime, status: int
) -> str:
    """SMS-STATUS-REPORT (§9.2.2.3): TP-MR, TP-RA, TP-SCTS, TP-DT, TP-ST (0 = delivered)."""
    tpdu = (
        bytes((0x06, reference & 0xFF))  # MTI=10, TP-MMS=1, TP-SRQ=0: reports an SMS-SUBMIT
        + encode_address(recipient)
        + encode_timestamp(sent)
        + encode_timestamp(done)
        + bytes((status & 0xFF,))
    )
    return (encode_smsc(smsc) + tpdu).hex().upper()


def tpdu_length(pdu_hex: str) -> int:
    """The <length> of +CMGL/+CMGR/+CMGS: octets after the SCA (best effort if malformed)."""
    try:
        data = bytes.fromhex(pdu_hex)
    except ValueError:
        return len(pdu_hex) // 2
    if not data:
        return 0
    return max(len(data) - 1 - data[0], 0)


@dataclass(frozen=True)
class Submit:
    """The parts of an SMS-SUBMIT (§9.2.2.2) a modem looks at before sending it."""

    reference: int
    destination: str
    dcs: int
    header: bytes  # the UDH including its length octet; empty without TP-UDHI
    text: str
    status_report: bool


def decode_submit(pdu_hex: str) -> Submit:
    """Check and decode an SMS-SUBMIT written after ``AT+CMGS``; ValueError if malformed."""
    data = bytes.fromhex(pdu_hex)
    reader = _Reader(data)
    reader.take(reader.octet())  # SCA; empty means the one from AT+CSCA
    first = reader.octet()
    if first & 0x03 != 0x01:
        raise ValueError("not an SMS-SUBMIT")
    reference = reader.octet()
    digits = reader.octet()
    kind = reader.octet()
    raw = reader.take((digits + 1) // 2)
    if kind & 0x70 == 0x50:
        destination = _gsm7_text(unpack_septets(raw, digits * 4 // 7))
    else:
        destination = ("+" if kind & 0x70 == 0x10 else "") + "".join(
            f"{b & 0x0F:X}{b >> 4:X}" for b in raw
        ).replace("F", "")
    reader.octet()  # TP-PID
    dcs = reader.octet()
    validity = (first >> 3) & 0x03  # TP-VPF: none, enhanced (7), relative (1), absolute (7)
    reader.take({0: 0, 1: 7, 2: 1, 3: 7}[validity])
    udl = reader.octet()
    ud = reader.rest()
    header = ud[: ud[0] + 1] if first & 0x40 and ud else b""
    alphabet = data_alphabet(dcs)
    if alphabet == DCS_GSM7:
        if len(ud) < (udl * 7 + 7) // 8:
            raise ValueError("user data shorter than TP-UDL")
        skip = (len(header) * 8 + 6) // 7
        text = _gsm7_text(unpack_septets(ud, udl)[skip:])
    else:
        if len(ud) < udl:
            raise ValueError("user data shorter than TP-UDL")
        body = ud[len(header) : udl]
        text = body.decode("utf-16-be", "replace") if alphabet == DCS_UCS2 else body.hex()
    return Submit(reference, destination, dcs, header, text, bool(first & 0x20))


def data_alphabet(dcs: int) -> int:
    """DCS_GSM7, DCS_UCS2 or 0x04 (8-bit data) for a TP-DCS (TS 23.038 §4)."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding, with or without automatic deletion
        return (DCS_GSM7, 0x04, DCS_UCS2, DCS_GSM7)[(dcs >> 2) & 0x03]
    if group == 0xE:
        return DCS_UCS2
    if group == 0xF:
        return 0x04 if dcs & 0x04 else DCS_GSM7
    return DCS_GSM7  # message waiting groups 0xC and 0xD


def unpack_septets(data: bytes, count: int) -> bytes:
    value = int.from_bytes(data, "little")
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


_GSM7_EXTENSION_CHARS = {code: char for char, code in GSM7_EXTENSION.items()}


def _gsm7_text(septets: bytes) -> str:
    out = []
    escaped = False
    for septet in septets:
        if escaped:
            out.append(_GSM7_EXTENSION_CHARS.get(septet, " "))
            escaped = False
        elif septet == 0x1B:
            escaped = True
        else:
            out.append(GSM7[septet])
    return "".join(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError("PDU too short")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def octet(self) -> int:
        return self.take(1)[0]

    def rest(self) -> bytes:
        return self.data[self.pos :]
