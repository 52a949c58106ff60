"""The SIP channel's pure parts: who called, and a killed worker's recording repaired."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from channels.sip import recovery
from channels.sip.identity import parties

INVITE = (
    "INVITE sip:12345@10.0.0.5:5060;user=phone SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n"
    'f: "张三" <sip:02887654321@trunk.example>;tag=1\r\n'
    "t: <sip:12345@10.0.0.5>\r\n"
    "P-Asserted-Identity: <tel:+8613912345678>\r\n"
    "Content-Type: application/sdp\r\n\r\n"
    "v=0\r\nP-Asserted-Identity: <tel:999>\r\n"
)


def test_the_caller_is_the_asserted_identity_and_the_called_the_request_uri() -> None:
    found = parties(INVITE)
    assert (found.caller, found.called) == ("+8613912345678", "12345")


def _invite(from_: str, *extra: str, call_id: str = "a84b4c76e66710@pc33") -> str:
    return "\r\n".join(
        [
            "INVITE sip:12345@10.0.0.5 SIP/2.0",
            "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1",
            f"From: {from_}",
            "To: <sip:12345@10.0.0.5>",
            f"Call-ID: {call_id}",
            *extra,
            "",
            "",
        ]
    )


@pytest.mark.parametrize(
    ("from_", "extra", "caller"),
    [
        # A display name that looks like a URI is only a name (RFC 3261 §25.1).
        ('"sip:110" <sip:13912345678@trunk.example>;tag=1', (), "13912345678"),
        ('"tel:120 \\" <sip:110@x>" <sip:13912345678@t>;tag=1', (), "13912345678"),
        ("sip:110 <sip:13912345678@t>;tag=1", (), "13912345678"),
        ("Anonymous <sip:13912345678@t>;tag=1", (), "13912345678"),
        ("sip:13912345678@trunk.example;tag=1", (), "13912345678"),
        # The asserted identity, parsed the same way.
        ("<sip:1@t>;tag=1", ('P-Asserted-Identity: "tel:120" <sip:13712345678@t>',), "13712345678"),
        ("<sip:1@t>;tag=1", ("P-Asserted-Identity: <sip:anonymous.invalid>",
                              "P-Asserted-Identity: <tel:+86-139-1234-5678>"), "+8613912345678"),
        # Escapes are the characters they stand for (§19.1.2), not dropped.
        ("<sip:%31%33%39%31%32%33%34%35%36%37%38@t>;tag=1", (), "13912345678"),
        ("<sip:139-1234-5678@t;user=phone>;tag=1", (), "13912345678"),
        # Folded headers are one header (§7.3.1).
        ("<sip:1@t>;tag=1", ("P-Asserted-Identity:\r\n <sip:13612345678@t>",), "13612345678"),
        # Nobody: an unknown scheme, a host without a user, a quote left open.
        ("<mailto:13912345678@t>;tag=1", (), None),
        ("<sip:trunk.example>;tag=1", (), None),
        ('"sip:13912345678@t <sip:1@t>', (), None),
    ],
    ids=[
        "display-name-uri", "escaped-quote-name", "token-name", "anonymous-name", "addr-spec",
        "pai-display-name", "second-pai", "percent-escapes", "visual-separators", "folded",
        "unknown-scheme", "no-user", "open-quote",
    ],
)  # fmt: skip
def test_the_caller_is_read_from_the_uri_never_from_the_display_name(
    from_: str, extra: tuple[str, ...], caller: str | None
) -> None:
    assert parties(_invite(from_, *extra)).caller == caller


def test_an_asserted_identity_from_outside_the_trust_domain_is_ignored() -> None:
    message = _invite("<sip:13912345678@t>;tag=1", "P-Asserted-Identity: <tel:110>")
    assert parties(message, trust_asserted=True).caller == "110"
    assert parties(message, trust_asserted=False).caller == "13912345678"


def test_a_dialog_is_the_call_id_with_the_callers_from_and_tag() -> None:
    one = parties(_invite("<sip:13912345678@t>;tag=1")).dialog
    assert one.startswith("a84b4c76e66710@pc33;from=")
    assert parties(_invite("<sip:13912345678@t>;tag=1")).dialog == one  # delivered again
    others = {
        parties(_invite("<sip:13712345678@t>;tag=1")).dialog,  # another caller, same Call-ID
        parties(_invite("<sip:13912345678@t>;tag=2")).dialog,  # another dialog of the phone
        parties(_invite("<sip:13912345678@t>;tag=1", call_id="x@pc33")).dialog,
    }
    assert one not in others and len(others) == 3
    assert "13912345678" not in one  # no number in the key (letters.external_id)
    long = parties(_invite("<sip:1@t>;tag=1", call_id="c" * 1000)).dialog
    assert len(long) < 255


def test_without_an_asserted_identity_the_from_names_the_caller() -> None:
    plain = INVITE.replace("P-Asserted-Identity: <tel:+8613912345678>\r\n", "", 1)
    assert parties(plain).caller == "02887654321"


def test_nothing_but_number_characters_survive() -> None:
    hostile = INVITE.replace("+8613912345678", "1390000'); DROP--\r\nX: y", 1)
    caller = parties(hostile).caller
    assert caller is not None and set(caller) <= set("0123456789+*#._-DROPXy")
    assert parties("garbage").caller is None


def test_a_recording_cut_off_by_kill_9_gets_a_true_header(tmp_path: Path) -> None:
    audio = bytes(range(256)) * 64 + b"\x01"  # an odd byte: half a sample, dropped
    wav = tmp_path / "call-1.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVE" + b"\x00" * 32 + audio)  # header not final
    wav.with_suffix(".json").write_text(json.dumps({"call_id": "call-1", "caller": "138"}))
    [left] = recovery.leftovers(tmp_path)
    assert left.note["caller"] == "138" and round(left.seconds, 2) == round(len(audio) / 16000, 2)
    fixed = tmp_path / "fixed.wav"
    fixed.write_bytes(recovery.repaired(wav))
    with wave.open(str(fixed), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        assert w.readframes(w.getnframes()) == audio[:-1]
    recovery.discard(wav)
    assert recovery.leftovers(tmp_path) == []


def test_a_note_without_its_recording_or_unreadable_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"call_id": "a"}))
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "b.wav").write_bytes(b"RIFF")
    assert recovery.leftovers(tmp_path) == []
