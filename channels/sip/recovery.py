"""Recordings a killed worker left behind, kept as far as they got.

pjsua2 writes a WAV's header only when the recorder is destroyed, so a worker killed in
the middle of a message leaves the audio with a header that does not count it. The note
written beside each recording names the call; here the header is made true and the
message stored like any other.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HEADER_BYTES = 44
RATE, CHANNELS, WIDTH = 8000, 1, 2  # the conference bridge's format


@dataclass(frozen=True)
class Leftover:
    wav: Path
    note: dict[str, Any]

    @property
    def seconds(self) -> float:
        return max(0, self.wav.stat().st_size - HEADER_BYTES) / (RATE * CHANNELS * WIDTH)


def leftovers(directory: Path) -> list[Leftover]:
    found = []
    for note in sorted(directory.glob("*.json")):
        wav = note.with_suffix(".wav")
        try:
            content = json.loads(note.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        if wav.exists() and isinstance(content, dict) and content.get("call_id"):
            found.append(Leftover(wav, content))
    return found


def repaired(wav: Path) -> bytes:
    """The file's audio under a header that counts it (whole samples only)."""
    data = wav.read_bytes()[HEADER_BYTES:]
    data = data[: len(data) - len(data) % (CHANNELS * WIDTH)]
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE"
    header += b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, CHANNELS, RATE, RATE * CHANNELS * WIDTH, CHANNELS * WIDTH, WIDTH * 8
    )
    return header + b"data" + struct.pack("<I", len(data)) + data


def wav_seconds(wav: bytes) -> float:
    """The length of a WAV made by ``repaired``."""
    return max(0, len(wav) - HEADER_BYTES) / (RATE * CHANNELS * WIDTH)


def discard(leftover_wav: Path) -> None:
    leftover_wav.unlink(missing_ok=True)
    leftover_wav.with_suffix(".json").unlink(missing_ok=True)
