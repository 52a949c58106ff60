"""Every WAV a phone system writes is read as the same speech."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from ivr.audio import AudioError, read_wav, resample
from tests.ivr.conftest import sox

FORMATS = {
    "pcm16-22k": (),
    "telephone-mulaw-8k": ("-r", "8000", "-e", "mu-law"),
    "telephone-alaw-8k": ("-r", "8000", "-e", "a-law"),
    "pcm8-8k": ("-r", "8000", "-b", "8"),
    "pcm24-48k-stereo": ("-r", "48000", "-b", "24", "-c", "2"),
    "pcm32-44k": ("-r", "44100", "-b", "32"),
    "float-16k": ("-r", "16000", "-e", "floating-point", "-b", "32"),
}


@pytest.mark.parametrize("options", FORMATS.values(), ids=FORMATS.keys())
def test_each_encoding_reads_as_the_same_sound(
    speech: Path, tmp_path: Path, options: tuple[str, ...]
) -> None:
    original = read_wav(speech.read_bytes())
    converted = read_wav(sox(speech, tmp_path / "x.wav", *options).read_bytes())

    assert converted.seconds == pytest.approx(original.seconds, abs=0.01)
    a = resample(original.samples, original.rate, 8000)
    b = resample(converted.samples, converted.rate, 8000)
    n = min(len(a), len(b))
    # The same waveform, up to the coding noise of 8-bit G.711 and resampling.
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.9


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"RIFF\x00\x00\x00\x00WAVE",
        b"RIFF....WAVEfmt \x02\x00\x00\x00\x01\x00",
        b"OggS not a wav at all",
        b"RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"
        + struct.pack("<HHIIHH", 85, 1, 8000, 1000, 1, 0)
        + b"data\x00\x00\x00\x00",
    ],
    ids=["empty", "no-chunks", "short-fmt", "ogg", "mp3-in-wav"],
)
def test_a_recording_that_is_not_readable_wav_is_an_audio_error(data: bytes) -> None:
    with pytest.raises(AudioError):
        read_wav(data)


def test_a_header_left_unfinished_by_a_killed_recorder_still_reads(speech: Path) -> None:
    data = bytearray(speech.read_bytes())
    data_at = data.index(b"data")
    data[data_at + 4 : data_at + 8] = b"\x00\x00\x00\x00"  # the size was never written
    assert read_wav(bytes(data)).seconds == pytest.approx(read_wav(speech.read_bytes()).seconds)


def spectrum(samples: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, power) of the samples, the edges' settling left out."""
    steady = samples[rate // 100 : -rate // 100]
    power = np.abs(np.fft.rfft(steady * np.hanning(len(steady)))) ** 2
    return np.fft.rfftfreq(len(steady), 1 / rate), power


def test_audio_down_to_16khz_folds_nothing_back_into_the_speech_band() -> None:
    """A 10 kHz tone recorded at 48 kHz has no place at 16 kHz: a band-limited resampler
    removes it, where a short filter lets part of it fold back to 6 kHz."""
    seconds = np.arange(48000) / 48000
    tone = (0.5 * np.sin(2 * np.pi * 10000 * seconds)).astype(np.float32)
    voice = (0.5 * np.sin(2 * np.pi * 1000 * seconds)).astype(np.float32)

    down = resample(tone + voice, 48000, 16000)

    assert down.dtype == np.float32 and len(down) == 16000
    frequencies, power = spectrum(down, 16000)
    assert frequencies[np.argmax(power)] == pytest.approx(1000, abs=2)
    folded = power[(frequencies > 5500) & (frequencies < 6500)].sum()
    assert folded / power.sum() < 1e-6


def test_telephone_audio_up_to_16khz_keeps_its_tone_and_length() -> None:
    seconds = np.arange(8000) / 8000
    tone = (0.5 * np.sin(2 * np.pi * 1000 * seconds)).astype(np.float32)

    wideband = resample(tone, 8000, 16000)

    assert wideband.dtype == np.float32 and len(wideband) == 16000
    frequencies, power = spectrum(wideband, 16000)
    assert frequencies[np.argmax(power)] == pytest.approx(1000, abs=2)
