"""Speech to text with Vosk, offline: citizens' voices never leave the city's servers."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.contract.errors import ConfigurationError
from ivr.audio import Audio

CHUNK_SECONDS = 0.25


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    seconds: float

    @property
    def confidence(self) -> float | None:
        """The mean word confidence; None for a recording with no speech."""
        if not self.words:
            return None
        return sum(w.confidence for w in self.words) / len(self.words)


def _vosk() -> Any:
    import vosk

    vosk.SetLogLevel(-1)  # Kaldi's progress lines on stderr otherwise
    return vosk


class Recogniser:
    """One loaded model (hundreds of MB: load it once per worker process)."""

    def __init__(self, model_path: Path, grammar: list[str] | None = None) -> None:
        if not is_model(model_path):
            raise ConfigurationError(
                f"stt.model_path: {model_path} is not a Vosk model (it needs am/ and conf/); "
                "install one, e.g. vosk-model-small-cn-0.22 (see README)"
            )
        try:
            self.model = _vosk().Model(str(model_path))
        except Exception as exc:  # Kaldi reports a broken model as a bare exception
            raise ConfigurationError(
                f"stt.model_path: {model_path} cannot be loaded: {exc}"
            ) from exc
        self.rate = _model_rate(model_path)
        # Restricting recognition to phrases works only with models built for it (small ones).
        self.grammar = json.dumps([*grammar, "[unk]"], ensure_ascii=False) if grammar else None

    def transcribe(self, audio: Audio) -> Transcript:
        vosk = _vosk()
        if self.grammar:
            recogniser = vosk.KaldiRecognizer(self.model, self.rate, self.grammar)
        else:
            recogniser = vosk.KaldiRecognizer(self.model, self.rate)
        recogniser.SetWords(True)
        pcm = audio.pcm16(self.rate)
        step = int(self.rate * CHUNK_SECONDS) * 2
        results = []
        for offset in range(0, len(pcm), step):
            if recogniser.AcceptWaveform(pcm[offset : offset + step]):
                results.append(json.loads(recogniser.Result()))
        results.append(json.loads(recogniser.FinalResult()))
        words = tuple(
            Word(w["word"], float(w["start"]), float(w["end"]), float(w.get("conf", 1.0)))
            for result in results
            for w in result.get("result", [])
        )
        return Transcript(join_words([w.word for w in words]), words, audio.seconds)


def is_model(path: Path) -> bool:
    """Whether the directory looks like a Vosk model (it may still fail to load)."""
    return (path / "am").is_dir() and (path / "conf").is_dir()


def _model_rate(model_path: Path) -> int:
    conf = model_path / "conf" / "mfcc.conf"
    if conf.exists():
        found = re.search(r"--sample-frequency=(\d+)", conf.read_text())
        if found:
            return int(found.group(1))
    return 16000


_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")


def join_words(words: list[str]) -> str:
    """Chinese is written without spaces between words; other scripts keep theirs."""
    out = ""
    for word in words:
        if out and not (_HAN.match(out[-1]) and _HAN.match(word[0])):
            out += " "
        out += word
    return out


def character_error_rate(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference length) over characters, ignoring spaces and punctuation."""
    ref, hyp = _chars(reference), _chars(hypothesis)
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i]
        for j, h in enumerate(hyp, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h)))
        previous = current
    return previous[-1], len(ref)


def _chars(text: str) -> str:
    return "".join(c for c in text if not (c.isspace() or unicodedata.category(c)[0] == "P"))
