"""The prompt recordings: spoken by the real espeak-ng, shaped by the real sox."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from ivr.menu import IvrConfig, Prompts
from ivr.prompts import (
    EXIT_FAILED,
    MANIFEST,
    NAMES,
    SHIPPED,
    VOICE,
    check_prompt,
    digest,
    prompt_path,
    prompt_paths,
    prompts_command,
    seconds,
    spoken,
)
from ivr.prompts import build_prompts as _build_prompts
from tests.conftest import require_tool


def build_prompts(prompts: Prompts, out_dir: Path) -> list[Path]:
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    return _build_prompts(prompts, out_dir, espeak=espeak, sox=sox)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("prompts")
    build_prompts(Prompts(), out)
    return out


def tone(path: Path, *, rate: int = 8000, channels: int = 1, width: int = 2) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(bytes([16]) * (channels * width * rate // 10))  # 100 ms
    return path


def test_every_prompt_and_the_beep_is_8khz_mono_16bit(built: Path) -> None:
    for name in NAMES:
        check_prompt(built / f"{name}.wav")


@pytest.mark.parametrize("name", [n for n in NAMES if n != "beep"])
def test_a_spoken_prompt_lasts_a_plausible_time(built: Path, name: str) -> None:
    # The nine-option menu is the one long prompt (56 syllables); a digit of a tracking
    # number is one syllable (X three), read one prompt at a time.
    shortest, longest = (0.3, 1.0) if name.startswith("digit_") else (1.0, 10.0)
    if name == "menu":
        longest = 15.0
    assert shortest <= seconds(built / f"{name}.wav") <= longest


def test_a_prompt_starts_with_100ms_of_quiet_then_speech(built: Path) -> None:
    with wave.open(str(built / "welcome.wav"), "rb") as wav:
        frames = wav.readframes(wav.getnframes())
    samples = memoryview(frames).cast("h")
    lead = max(abs(s) for s in samples[:700])
    voice = max(abs(s) for s in samples[800:8000])
    assert lead < 400 < voice


def test_the_beep_is_300ms(built: Path) -> None:
    assert seconds(built / "beep.wav") == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("这里是12345市民热线。", "这里是幺二三四五市民热线。"),
        ("投诉请按1，重听请按0。", "投诉请按1，重听请按0。"),
        ("请拨打0831-12345", "请拨打零八三幺-幺二三四五"),
    ],
    ids=["hotline number", "single keys", "area code"],
)
def test_numbers_are_read_digit_by_digit(text: str, said: str) -> None:
    assert spoken(text) == said


def test_unchanged_texts_are_not_rebuilt(built: Path, tmp_path: Path) -> None:
    first = build_prompts(Prompts(), tmp_path)
    stamps = {path: path.stat().st_mtime_ns for path in first}
    assert len(first) == len(NAMES)
    assert build_prompts(Prompts(), tmp_path) == []
    assert {path: path.stat().st_mtime_ns for path in first} == stamps


def test_a_changed_text_rebuilds_that_prompt_only(tmp_path: Path) -> None:
    build_prompts(Prompts(), tmp_path)
    before = (tmp_path / "welcome.wav").read_bytes()
    rebuilt = build_prompts(Prompts(busy="线路繁忙，请稍后再拨打。"), tmp_path)
    assert rebuilt == [tmp_path / "busy.wav"]
    assert (tmp_path / "welcome.wav").read_bytes() == before
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert manifest["busy"] == digest(VOICE, "线路繁忙，请稍后再拨打。")


def test_a_deleted_prompt_is_rebuilt(tmp_path: Path) -> None:
    build_prompts(Prompts(), tmp_path)
    (tmp_path / "thanks.wav").unlink()
    assert build_prompts(Prompts(), tmp_path) == [tmp_path / "thanks.wav"]


def test_the_same_text_builds_the_same_bytes(built: Path, tmp_path: Path) -> None:
    build_prompts(Prompts(), tmp_path)
    assert (tmp_path / "menu.wav").read_bytes() == (built / "menu.wav").read_bytes()


def test_the_command_prints_one_line_per_prompt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tool("espeak-ng")
    require_tool("sox")
    assert prompts_command(IvrConfig(), tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES)
    assert all(line.endswith("built") for line in lines)
    assert prompts_command(IvrConfig(), tmp_path) == 0
    assert all(line.endswith("unchanged") for line in capsys.readouterr().out.splitlines())


def test_the_command_fails_cleanly_without_espeak(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert prompts_command(IvrConfig(), tmp_path / "out") == EXIT_FAILED
    assert "cannot build prompts" in capsys.readouterr().err


def test_a_citys_own_recording_is_preferred(tmp_path: Path) -> None:
    own = tone(tmp_path / "welcome.wav")
    assert prompt_path(tmp_path, "welcome") == own
    assert prompt_path(tmp_path, "menu") == SHIPPED / "menu.wav"
    assert prompt_path(None, "welcome") == SHIPPED / "welcome.wav"


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"rate": 16000}, "16000 Hz"),
        ({"channels": 2}, "2 channel(s)"),
        ({"width": 1}, "8-bit"),
    ],
    ids=["16 kHz", "stereo", "8-bit"],
)
def test_a_recording_in_the_wrong_format_is_rejected(
    tmp_path: Path, shape: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match="must be 8000 Hz mono 16-bit PCM") as raised:
        check_prompt(tone(tmp_path / "welcome.wav", **shape))
    assert message in str(raised.value)


@pytest.mark.parametrize(
    "content",
    [b"", b"RIFF\x00\x00\x00\x00WAVE", b"ID3\x03 an mp3 renamed to .wav"],
    ids=["empty", "no chunks", "mp3"],
)
def test_an_unreadable_recording_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "menu.wav"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="not a readable PCM WAV"):
        check_prompt(path)


def test_a_missing_recording_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a readable PCM WAV"):
        check_prompt(tmp_path / "menu.wav")


def test_a_silent_empty_recording_is_rejected(tmp_path: Path) -> None:
    with wave.open(str(tmp_path / "menu.wav"), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
    with pytest.raises(ValueError, match="has no audio"):
        check_prompt(tmp_path / "menu.wav")


def test_a_citys_wrong_recording_fails_the_start_check(tmp_path: Path) -> None:
    tone(tmp_path / "goodbye.wav", rate=44100)
    with pytest.raises(ValueError, match=r"goodbye\.wav is 44100 Hz"):
        prompt_paths(tmp_path)


def test_the_shipped_prompts_are_built_from_the_default_texts() -> None:
    # A default text changed without `hotline prompts build --out ivr/prompts` fails here.
    manifest = json.loads((SHIPPED / MANIFEST).read_text())
    expected = {name: digest(VOICE, text) for name, text in Prompts().model_dump().items()}
    assert {name: manifest[name] for name in expected} == expected
    assert set(manifest) == set(NAMES)
    assert prompt_paths(None) == {name: SHIPPED / f"{name}.wav" for name in NAMES}
