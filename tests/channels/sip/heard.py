"""What a caller heard, read back as prompt names: each test prompt is a tone of its own.

The worker plays these in place of the Mandarin recordings. A tone survives G.711 and the
jitter buffer as a tone, so the phone's recording of the call is read 20 ms at a time by
its strongest frequency, and runs of one tone are the prompts in the order they came. The
number's prompts are short and end in a little silence: two equal digits stay two.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ivr.menu import Prompts
from ivr.prompts import BEEP
from tests.support.audio import FRAME, RATE, VOICED_RMS, wav_audio

PROMPT_SECONDS = 0.4  # the menu's prompts: SIPp scenarios wait for them by the clock
NUMBER_SECONDS, NUMBER_GAP = 0.06, 0.04
NAMES: tuple[str, ...] = (*Prompts.model_fields, BEEP)
# 60 Hz apart from 400 Hz up, inside the telephone band (300-3400 Hz).
SPACING = 60.0
TONES: dict[str, float] = {name: 400.0 + SPACING * i for i, name in enumerate(NAMES)}
assert max(TONES.values()) < 3400, "more prompts than tones in the telephone band"
NUMBER_PROMPTS = frozenset(
    name
    for name in NAMES
    if name.startswith("digit_")
    or name in ("stored", "number_is", "code_is", "number_again", "write_down", "number_later")
)
_PADDED = 2048  # FFT length: 3.9 Hz a bin, for a 160-sample frame zero-padded


def tone_prompts(directory: Path, sox: str) -> Path:
    """A tone per prompt name (sox), 8 kHz mono 16-bit like the real ones."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, frequency in TONES.items():
        short = name in NUMBER_PROMPTS
        length, gap = (NUMBER_SECONDS, NUMBER_GAP) if short else (PROMPT_SECONDS, 0.0)
        target = directory / f"{name}.wav"
        shape = ["synth", str(length), "sine", str(frequency), "gain", "-6", "pad", "0", str(gap)]
        subprocess.run(
            [sox, "-n", "-r", str(RATE), "-c", "1", "-b", "16", str(target), *shape], check=True
        )
    return directory


@dataclass(frozen=True)
class Heard:
    name: str
    start: float  # seconds into the caller's recording
    end: float


def heard(wav: bytes) -> list[Heard]:
    """The prompts in the recording, in order; a run of under 40 ms (a frame across two
    tones) is no prompt."""
    audio = wav_audio(wav).astype(float)
    frames = audio[: len(audio) // FRAME * FRAME].reshape(-1, FRAME)
    window = np.hanning(FRAME)
    names = list(TONES)
    frequencies = np.array([TONES[name] for name in names])
    labels: list[str | None] = []
    for frame in frames:
        if np.sqrt((frame**2).mean()) <= VOICED_RMS:
            labels.append(None)
            continue
        spectrum = np.abs(np.fft.rfft(frame * window, _PADDED))
        peak = np.argmax(spectrum) * RATE / _PADDED
        nearest = int(np.argmin(np.abs(frequencies - peak)))
        labels.append(names[nearest] if abs(frequencies[nearest] - peak) < SPACING / 2 else None)
    runs: list[Heard] = []
    start = 0
    for index in range(1, len(labels) + 1):
        if index < len(labels) and labels[index] == labels[start]:
            continue
        name = labels[start]
        if name is not None and index - start >= 2:
            seconds = FRAME / RATE
            runs.append(Heard(name, start * seconds, index * seconds))
        start = index
    return runs


def told(tracking_number: str, code: str) -> list[str]:
    """The prompts that tell a caller their letter's number and code (ivr/flow.py)."""

    def spelt(text: str) -> list[str]:
        return [f"digit_{c.lower()}" for c in text]

    said = ["number_is", *spelt(tracking_number), "code_is", *spelt(code)]
    return ["stored", *said, "number_again", *said, "write_down", "goodbye"]


def after_beep(runs: list[Heard]) -> list[str]:
    """The names heard after the (last) recording tone: what follows a message."""
    names = [run.name for run in runs]
    if BEEP not in names:
        return []
    last = len(names) - 1 - names[::-1].index(BEEP)
    return names[last + 1 :]
