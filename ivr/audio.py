"""Voicemail audio to what a recogniser takes: 16-bit mono PCM at the model's rate. Pure.

Reads RIFF/WAVE as phones and gateways write it: PCM (8/16/24/32-bit), IEEE float, and
G.711 mu-law and A-law telephone audio (format tags 7 and 6, which Python's `wave` module
refuses), any rate, mono or stereo.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import soxr

from gateway.contract.errors import PayloadError

PCM, FLOAT, ALAW, MULAW, EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


class AudioError(PayloadError):
    """A recording that cannot be read as WAV audio."""


@dataclass(frozen=True)
class Audio:
    samples: npt.NDArray[np.float32]  # mono, -1.0 .. 1.0
    rate: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.rate

    def pcm16(self, rate: int) -> bytes:
        """16-bit little-endian mono PCM at ``rate``."""
        samples = resample(self.samples, self.rate, rate)
        return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def read_wav(data: bytes) -> Audio:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a RIFF/WAVE file")
    fmt: tuple[int, int, int, int] | None = None
    body: bytes | None = None
    pos = 12
    while pos + 8 <= len(data):
        kind, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        chunk = data[pos + 8 : pos + 8 + size]
        if kind == b"fmt ":
            if len(chunk) < 16:
                raise AudioError("fmt chunk is too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
            if tag == EXTENSIBLE and len(chunk) >= 26:
                tag = struct.unpack("<H", chunk[24:26])[0]  # the sub-format GUID's first word
            fmt = (tag, channels, rate, bits)
        elif kind == b"data":
            # A recorder killed before it wrote the header's sizes leaves 0 or 0xFFFFFFFF.
            body = data[pos + 8 :] if size in (0, 0xFFFFFFFF) else chunk
        pos += 8 + size + (size & 1)
    if fmt is None or body is None:
        raise AudioError("no fmt or data chunk")
    tag, channels, rate, bits = fmt
    if channels < 1 or not 1000 <= rate <= 384_000:
        raise AudioError(f"implausible format: {channels} channels at {rate} Hz")
    samples = _decode(body, tag, bits)
    usable = len(samples) - len(samples) % channels
    mono = samples[:usable].reshape(-1, channels).mean(axis=1, dtype=np.float32)
    return Audio(mono.astype(np.float32), rate)


def _decode(body: bytes, tag: int, bits: int) -> npt.NDArray[np.float32]:
    raw = np.frombuffer(body, dtype=np.uint8)
    if tag == MULAW and bits == 8:
        return _MULAW[raw]
    if tag == ALAW and bits == 8:
        return _ALAW[raw]
    if tag == FLOAT and bits == 32:
        return np.frombuffer(body[: len(body) // 4 * 4], dtype="<f4").astype(np.float32)
    if tag == PCM and bits == 8:
        return ((raw.astype(np.float32) - 128) / 128).astype(np.float32)
    if tag == PCM and bits in (16, 24, 32):
        width = bits // 8
        usable = raw[: len(raw) // width * width].reshape(-1, width)
        # Little-endian, sign-extended through the top byte, scaled to -1..1.
        padded = np.zeros((len(usable), 4), dtype=np.uint8)
        padded[:, 4 - width :] = usable
        return (padded.view("<i4").reshape(-1) / 2**31).astype(np.float32)
    raise AudioError(f"unsupported WAV encoding: format {tag}, {bits} bits")


def _g711_tables() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """ITU-T G.711 expansions of every 8-bit code."""
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    mu = ((((u & 0x0F) << 3) + 0x84) << ((u & 0x70) >> 4)) - 0x84
    mu = np.where(u & 0x80, -mu, mu)
    a = codes ^ 0x55
    exponent, mantissa = (a & 0x70) >> 4, a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    alaw = np.where(a & 0x80, magnitude, -magnitude)
    return (mu / 32768).astype(np.float32), (alaw / 32768).astype(np.float32)


_MULAW, _ALAW = _g711_tables()


def resample(samples: npt.NDArray[np.float32], source: int, target: int) -> npt.NDArray[np.float32]:
    """Down: libsoxr's band-limited resampling, so nothing above the new Nyquist frequency
    folds back into speech. Up (8 kHz calls for a 16 kHz model): linear interpolation, on
    purpose. The model learnt wideband speech; the images interpolation leaves above 4 kHz
    let it hear a call (tests/ivr/test_stt.py's telephone case: character error rate under
    0.25), where libsoxr's clean 0-4 kHz band read as 0.71."""
    if source == target or len(samples) == 0:
        return samples
    if target < source:
        down: npt.NDArray[np.float32] = soxr.resample(
            np.ascontiguousarray(samples, dtype=np.float32), source, target, quality="HQ"
        )
        return down
    count = int(len(samples) * target / source)
    positions = np.arange(count) * (source / target)
    up: npt.NDArray[np.float32] = np.interp(positions, np.arange(len(samples)), samples).astype(
        np.float32
    )
    return up
