"""`hotline transcribe`, `hotline stt worker` and `hotline stt eval`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli_common import EXIT_NOT_FOUND, EXIT_USAGE, progress_bar
from gateway.contract.config import Config
from gateway.contract.errors import ConfigurationError


def add_parsers(commands: Any) -> None:
    transcribe = commands.add_parser("transcribe", help="try the configured model on a WAV")
    transcribe.add_argument("file", type=Path)
    transcribe.add_argument("--words", action="store_true", help="each word with its timing")
    stt = commands.add_parser("stt", help="speech-to-text workers and accuracy")
    actions = stt.add_subparsers(dest="action", required=True)
    actions.add_parser("worker", help="claim and run transcription jobs (serve starts these)")
    evaluate = actions.add_parser(
        "eval", help="character error rate over DIR/*.wav with reference DIR/*.txt"
    )
    evaluate.add_argument("directory", type=Path)


def _recogniser(config: Config) -> Any:
    from ivr.stt import Recogniser

    if config.stt.model_path is None:
        raise ConfigurationError("stt.model_path: no model configured")
    return Recogniser(config.stt.model_path, config.stt.grammar or None)


def transcribe(config: Config, args: argparse.Namespace) -> int:
    from ivr.audio import AudioError, read_wav

    try:  # before the model loads: a wrong file is said at once
        audio = read_wav(args.file.read_bytes())
    except FileNotFoundError as exc:
        print(f"hotline: {args.file}: {exc.strerror}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except AudioError as exc:  # not a WAV it can read: the argument is wrong
        print(f"hotline: {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    result = _recogniser(config).transcribe(audio)
    print(result.text)
    confidence = "-" if result.confidence is None else f"{result.confidence:.2f}"
    print(
        f"({audio.seconds:.1f} s, {len(result.words)} words, confidence {confidence})",
        file=sys.stderr,
    )
    if args.words:
        for w in result.words:
            print(f"{w.start:8.2f} {w.end:8.2f} {w.confidence:5.2f}  {w.word}")
    return 0


def stt(config: Config, args: argparse.Namespace) -> int:
    return _worker(config) if args.action == "worker" else _evaluate(config, args.directory)


def _evaluate(config: Config, directory: Path) -> int:
    from ivr.audio import read_wav
    from ivr.stt import character_error_rate

    pairs = [(w, w.with_suffix(".txt")) for w in sorted(directory.glob("*.wav"))]
    pairs = [(w, t) for w, t in pairs if t.exists()]
    if not pairs:
        print(f"hotline: no NAME.wav with NAME.txt in {directory}", file=sys.stderr)
        return EXIT_NOT_FOUND
    recogniser = _recogniser(config)
    edits = length = 0
    with progress_bar("识别", len(pairs), "段") as bar:
        for wav, reference in pairs:
            hypothesis = recogniser.transcribe(read_wav(wav.read_bytes())).text
            e, n = character_error_rate(reference.read_text(encoding="utf-8"), hypothesis)
            edits, length = edits + e, length + n
            # Above the bar, which is drawn again below it.
            bar.write(f"{wav.name}: CER {e / max(n, 1):.1%} ({e}/{n})  {hypothesis}", sys.stdout)
            bar.update()
    print(f"total: CER {edits / max(length, 1):.1%} over {len(pairs)} recordings, {length} chars")
    return 0


def _worker(config: Config) -> int:
    from gateway.contract.kinds import ROUTE, TRANSCRIBE
    from gateway.engine.database import engine_for
    from gateway.engine.intake import utcnow
    from gateway.engine.metrics import Metrics
    from gateway.engine.workers import JobRunner
    from ivr.transcription import TranscribeHandler
    from store.attachments import AttachmentStore
    from store.db import make_sessionmaker
    from store.jobs import JobQueue

    sessions = make_sessionmaker(engine_for(config))
    handler = TranscribeHandler(
        sessions,
        AttachmentStore(config.storage.attachments_dir),
        config.stt,
        utcnow,
        # The voicemail is routed once its transcript is written.
        after_text=(ROUTE,) if config.routing.enabled else (),
    )
    settings = config.jobs.model_copy(update={"lease_seconds": config.stt.lease_seconds})
    # Counted in the files of the gateway that started this process (gateway.engine.metrics).
    handlers = Metrics().count_jobs({TRANSCRIBE: handler})
    runner = JobRunner(JobQueue(sessions), handlers, settings)
    runner.run_until_signalled()
    return 0
