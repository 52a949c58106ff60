"""SMS-DELIVER decoding: the alphabets, concatenation headers and broken PDUs real modems give."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from channels.gsm.pdu import Alphabet, Concat, PduError, parse_pdu
from simulators.modem.pdu import deliver_pdus

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "gammu-at-sms"


def deliver(
    sender_digits: str, payload: bytes, dcs: int, *, udh: bytes = b"", udl: int | None = None
) -> str:
    """An SMS-DELIVER with an international originator and a Shanghai timestamp."""
    digits = sender_digits + ("F" if len(sender_digits) % 2 else "")
    oa = bytes([len(sender_digits), 0x91]) + bytes.fromhex(
        "".join(digits[i + 1] + digits[i] for i in range(0, len(digits), 2))
    )
    scts = bytes.fromhex("62116240300523")  # 2026-11-26 04:03:50, +32 quarters (+08:00)
    first = 0x44 if udh else 0x04
    data = (bytes([len(udh)]) + udh if udh else b"") + payload
    return (
        "0891683108200805F0"  # SMSC +8613800280500
        + bytes([first]).hex()
        + oa.hex()
        + "00"
        + f"{dcs:02X}"
        + scts.hex()
        + f"{udl if udl is not None else len(data):02X}"
        + data.hex()
    ).upper()


SHANGHAI = timezone(timedelta(hours=8))


def test_a_7bit_message_decodes_with_sender_time_and_text() -> None:
    # The textbook example (TS 23.040 style): "How are you?" from +31641600986.
    sms = parse_pdu("07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07")
    assert (sms.kind, sms.address, sms.text) == ("deliver", "+31641600986", "How are you?")
    assert sms.timestamp is not None
    # Its zone octet 0x08 sets the sign bit of a zero offset (TS 23.040 §9.2.3.11).
    assert sms.timestamp == datetime(2002, 8, 26, 19, 37, 41, tzinfo=UTC)
    assert sms.smsc == "+31624000000"


def test_ucs2_chinese_decodes() -> None:
    text = "人民路的路灯坏了"
    sms = parse_pdu(deliver("8613800138000", text.encode("utf-16-be"), 0x08))
    assert (sms.address, sms.text, sms.alphabet) == ("+8613800138000", text, Alphabet.UCS2)
    assert sms.timestamp == datetime(2026, 11, 26, 4, 3, 50, tzinfo=SHANGHAI)


def test_dcs_0x48_is_ucs2_in_the_automatic_deletion_group() -> None:
    sms = parse_pdu(deliver("8613800138000", "井盖丢了".encode("utf-16-be"), 0x48))
    assert sms.text == "井盖丢了"


def test_an_emoji_split_across_two_parts_joins_again() -> None:
    encoded = "好👍".encode("utf-16-be")  # 好, then a surrogate pair
    first = parse_pdu(deliver("8613800138000", encoded[:4], 0x08, udh=bytes.fromhex("00032A0201")))
    second = parse_pdu(deliver("8613800138000", encoded[4:], 0x08, udh=bytes.fromhex("00032A0202")))
    assert first.concat == Concat(0x2A, 2, 1, 8) and second.concat == Concat(0x2A, 2, 2, 8)
    assert (first.payload + second.payload).decode("utf-16-be") == "好👍"


def test_a_16_bit_concatenation_reference_is_read() -> None:
    sms = parse_pdu(
        deliver(
            "8613800138000", "第一段".encode("utf-16-be"), 0x08, udh=bytes.fromhex("0804BEEF0301")
        )
    )
    assert sms.concat == Concat(0xBEEF, 3, 1, 16)
    assert sms.text == "第一段"


def test_the_gsm_extension_table_is_decoded() -> None:
    # "[€]" in GSM 7-bit: ESC < ESC e ESC > packed into 6 septets.
    septets = [0x1B, 0x3C, 0x1B, 0x65, 0x1B, 0x3E]
    value = sum(s << (7 * i) for i, s in enumerate(septets))
    packed = value.to_bytes((len(septets) * 7 + 7) // 8, "little")
    sms = parse_pdu(deliver("8613800138000", packed, 0x00, udl=len(septets)))
    assert sms.text == "[€]"


def test_8bit_text_in_gbk_is_read_as_chinese() -> None:
    sms = parse_pdu(deliver("8613800138000", "投诉噪音".encode("gbk"), 0x04))
    assert sms.alphabet is Alphabet.DATA8 and sms.text == "投诉噪音"


@pytest.mark.parametrize(
    "pdu",
    [
        "",
        "zz",
        "07911326040000F0",
        deliver("8613800138000", "好".encode("utf-16-be"), 0x08, udl=9),
        deliver("8613800138000", b"\x00\x41\x00", 0x08),
        deliver("8613800138000", b"abc", 0x08, udh=bytes.fromhex("0003")),
        deliver("8613800138000", b"x", 0x28),
    ],
    ids=["empty", "not-hex", "truncated", "udl-too-long", "odd-ucs2", "torn-udh", "compressed"],
)
def test_a_broken_pdu_is_a_pdu_error(pdu: str) -> None:
    with pytest.raises(PduError):
        parse_pdu(pdu)


def _corpus(kind: str) -> list[Path]:
    if not CORPUS.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"the conformance corpus is missing at {CORPUS}")
        return []
    return sorted((CORPUS / kind).glob("*.dump"))


def _pdu_of(dump: Path) -> str:
    lines = [line.strip() for line in dump.read_text(errors="replace").splitlines()]
    return next(lines[i + 1] for i, line in enumerate(lines) if line.startswith("+CMGR"))


@pytest.mark.parametrize("dump", _corpus("decodable"), ids=lambda p: p.stem)
def test_every_decodable_modem_reply_of_the_gammu_corpus_decodes(dump: Path) -> None:
    sms = parse_pdu(_pdu_of(dump))
    assert sms.kind in {"deliver", "submit", "status-report"}
    if sms.kind == "deliver":
        assert sms.timestamp is not None and sms.address


@pytest.mark.parametrize("dump", _corpus("must-fail"), ids=lambda p: p.stem)
def test_every_broken_modem_reply_of_the_gammu_corpus_is_refused(dump: Path) -> None:
    with pytest.raises(PduError):
        parse_pdu(_pdu_of(dump))


def _long(text: str, encoding: str) -> str:
    """The first part of a concatenated SMS, as the modem simulator builds it."""
    stamp = datetime(2026, 11, 26, 4, 3, 50, tzinfo=SHANGHAI)
    return deliver_pdus(
        smsc="+8613800280500", sender="+8613800138000", text=text, timestamp=stamp,
        encoding=encoding, reference=0xAA,
    )[0]  # fmt: skip


# Messages a modem really hands over, to mutate: 7-bit, UCS2, each single and concatenated,
# and the UDH-flag-without-data PDU that once ended the modem thread.
SEEDS = [
    deliver("8613800138000", "人民路的路灯坏了".encode("utf-16-be"), 0x08),
    deliver("8613800138000", b"\xc8\x32\x9b\xfd\x06", 0x00, udl=5),
    _long("人民路的路灯坏了，" * 10, "ucs2"),
    _long("Streetlight broken at Renmin Road. " * 6, "gsm7"),
    "0891683108100005F0440D91683108108300F000006221400100002305",
]


def test_a_udh_flag_with_a_length_byte_and_no_data_is_a_pdu_error() -> None:
    with pytest.raises(PduError, match="header is longer"):
        parse_pdu(SEEDS[-1])


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(SEEDS),
    edits=st.lists(
        st.tuples(
            st.sampled_from(["set", "cut", "insert", "drop"]),
            st.integers(0, 200),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_a_mutated_pdu_decodes_or_is_a_pdu_error_never_anything_else(
    seed: str, edits: list[tuple[str, int, int]]
) -> None:
    """The decoder's whole contract for a modem's input: an Sms whose text can be read, or
    PduError. Anything else would reach the modem thread as a bug."""
    data = bytearray.fromhex(seed)
    for op, at, value in edits:
        at = at % (len(data) + 1)
        if op == "set" and at < len(data):
            data[at] = value
        elif op == "cut":
            del data[at:]
        elif op == "insert":
            data.insert(at, value)
        elif op == "drop" and at < len(data):
            del data[at]
    try:
        sms = parse_pdu(data.hex())
    except PduError:
        return
    assert isinstance(sms.text, str)
