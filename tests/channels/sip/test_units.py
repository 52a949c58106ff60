"""The SIP channel's pure parts: who called, and a killed worker's recording repaired."""

from __future__ import annotations

import json
import wave
from pathlib import Path

from channels.sip import recovery
from channels.sip.identity import Parties, parties

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
    assert parties(INVITE) == Parties(caller="+8613912345678", called="12345")


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
