"""What a caller sent and what a voicemail holds, compared sample by sample.

SIPp sends the G.711 A-law payload of a pcap; the worker records the decoded samples. Each
voiced 20 ms frame of the message must be in the recording unchanged: a cut end, a lost
packet or a frame the jitter buffer threw away shows as speech missing.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 8000
FRAME = 160  # 20 ms, a G.711 packet
# Loudness (RMS of a frame) above which it is speech: G.711 idle noise stays under 50.
VOICED_RMS = 300.0


def alaw_decode(payload: bytes) -> np.ndarray:
    """ITU-T G.711 A-law to 16-bit linear (the table pjmedia and SIPp use)."""
    a = np.frombuffer(payload, dtype=np.uint8) ^ 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = (a & 0x0F).astype(np.int32)
    linear = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << (exponent.astype(np.int32) - 1),
    )
    return np.where(sign != 0, linear, -linear).astype(np.int16)


def pcap_audio(path: Path) -> np.ndarray:
    """The A-law RTP payloads of a pcap (Ethernet/IPv4/UDP, as SIPp ships them), decoded.
    RTP events (payload type 101, DTMF) are not audio and are left out."""
    data = path.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    offset, chunks = 24, []
    while offset + 16 <= len(data):
        included = struct.unpack(endian + "I", data[offset + 8 : offset + 12])[0]
        packet = data[offset + 16 : offset + 16 + included]
        offset += 16 + included
        ip = packet[14:]
        udp = ip[(ip[0] & 0x0F) * 4 :]
        rtp = udp[8:]
        if len(rtp) < 12 or rtp[1] & 0x7F != 8:  # PCMA only
            continue
        header = 12 + 4 * (rtp[0] & 0x0F)
        if rtp[0] & 0x10:  # a header extension
            header += 4 + 4 * struct.unpack(">H", rtp[header + 2 : header + 4])[0]
        chunks.append(rtp[header:])
    return alaw_decode(b"".join(chunks))


def wav_audio(wav: bytes) -> np.ndarray:
    with wave.open(io.BytesIO(wav), "rb") as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def file_audio(path: Path) -> np.ndarray:
    return pcap_audio(path) if path.suffix == ".pcap" else wav_audio(path.read_bytes())


def ulaw_decode(payload: bytes) -> np.ndarray:
    """ITU-T G.711 mu-law to 16-bit linear."""
    u = ~np.frombuffer(payload, dtype=np.uint8)
    exponent = ((u >> 4) & 0x07).astype(np.int32)
    mantissa = (u & 0x0F).astype(np.int32)
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(u & 0x80, -magnitude, magnitude).astype(np.int16)


def g711(audio: np.ndarray, law: str) -> np.ndarray:
    """``audio`` as it comes out of a G.711 A-law or mu-law encoder and decoder: the
    reference encoders (Sun's g711.c, as pjmedia builds its tables), 13-bit A-law and
    14-bit mu-law, truncating within a segment."""
    pcm = audio.astype(np.int32)
    if law == "ulaw":
        value = pcm >> 2
        mask = np.where(value < 0, 0x7F, 0xFF)
        value = np.minimum(np.abs(value), 8159) + 0x21
        seg = np.searchsorted(np.array([(0x40 << i) - 1 for i in range(8)]), value)
        code = np.where(seg >= 8, 0x7F, (seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask
        return ulaw_decode(bytes(code.astype(np.uint8)))
    value = pcm >> 3
    mask = np.where(value >= 0, 0xD5, 0x55)
    value = np.where(value >= 0, value, -value - 1)
    seg = np.searchsorted(np.array([(0x20 << i) - 1 for i in range(8)]), value)
    quant = np.where(seg < 2, value >> 1, value >> np.maximum(seg, 1)) & 0x0F
    code = np.where(seg >= 8, 0x7F, (seg << 4) | quant) ^ mask
    return alaw_decode(bytes(code.astype(np.uint8)))


def voiced_frames(audio: np.ndarray) -> list[int]:
    """The indexes of the 20 ms frames that hold speech."""
    usable = audio[: len(audio) // FRAME * FRAME].astype(float).reshape(-1, FRAME)
    return [int(i) for i in np.flatnonzero(np.sqrt((usable**2).mean(axis=1)) > VOICED_RMS)]


@dataclass(frozen=True)
class Kept:
    """How much of a message's speech a recording holds, sample for sample."""

    sent: int  # voiced 20 ms frames in the message
    found: int  # of those, the frames found unchanged in the recording
    recording: float  # the recording's length in seconds
    missing: tuple[int, ...] = ()  # the voiced frames not found, by index in the message

    @property
    def missing_seconds(self) -> float:
        return (self.sent - self.found) * FRAME / RATE

    @property
    def whole(self) -> bool:
        """Every voiced frame the caller sent is in the recording."""
        return self.sent > 0 and self.found == self.sent

    @property
    def whole_to_the_bye(self) -> bool:
        """At most one frame short: at a BYE pjsua tears the stream down before any callback,
        with what its jitter buffer still holds (within 20 ms of the message, issue 14)."""
        return self.sent > 0 and self.sent - self.found <= 1


def kept(message: np.ndarray, recording: np.ndarray) -> Kept:
    """G.711 passes samples through unchanged: each voiced frame the caller sent must be in
    the recording (the jitter buffer may move frames, never lose them). Only the middle
    10 ms of each is compared: where the buffer runs dry (a late packet, the stream's end)
    pjmedia's concealment blends 5 ms at the edges of the frames beside the gap."""
    haystack = recording.astype("<i2").tobytes()
    frames = voiced_frames(message)
    found = [_contains(haystack, message[i * FRAME : (i + 1) * FRAME]) for i in frames]
    return Kept(
        sent=len(frames),
        found=sum(found),
        recording=len(recording) / RATE,
        missing=tuple(i for i, hit in zip(frames, found, strict=True) if not hit),
    )


def _contains(haystack: bytes, frame: np.ndarray) -> bool:
    edge = FRAME // 4
    needle = frame[edge:-edge].astype("<i2").tobytes()
    at = haystack.find(needle)
    while at >= 0 and at % 2:  # only at whole samples
        at = haystack.find(needle, at + 1)
    return at >= 0
