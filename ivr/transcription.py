"""Voicemail transcription as durable jobs, run by worker processes that each hold a model.

A recorded voicemail's letter carries a `transcribe` job from intake. `hotline stt worker`
claims those jobs (leases, retries with backoff, a final failure recorded on the letter);
`hotline serve` keeps `stt.workers` of them running. Killing a worker loses no job: its
lease runs out and another worker takes it.
"""

from __future__ import annotations

import logging

from gateway.contract.config import SttConfig
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import TRANSCRIBE
from gateway.contract.logs import log_event
from gateway.engine.workers import GiveUp, LetterJob
from ivr.audio import AudioError, read_wav
from ivr.stt import Recogniser, Transcript, is_model
from store.models import Job

log = logging.getLogger(__name__)


def is_audio(media_type: str, filename: str) -> bool:
    return media_type.startswith("audio/") or filename.lower().endswith(".wav")


def transcription_expected(settings: SttConfig) -> bool:
    """Whether voicemails will be transcribed here: enabled, with a model in place. When
    not, routing does not wait for their transcripts (a broken model is a configuration
    error the workers report, and the letters show they wait)."""
    return settings.enabled and settings.model_path is not None and is_model(settings.model_path)


class TranscribeHandler(LetterJob[SttConfig]):
    kind = TRANSCRIBE
    actor = "stt"
    failed_event = "transcribe_failed"

    recogniser: Recogniser | None = None  # loaded by ready(), once per worker process

    def ready(self) -> None:
        """Load the model once; while it is missing or broken the jobs wait."""
        if self.recogniser is not None:
            return
        if not self.settings.enabled or self.settings.model_path is None:
            raise ConfigurationError("stt.model_path is not set: voicemails wait for a model")
        self.recogniser = Recogniser(self.settings.model_path, self.settings.grammar or None)

    def run(self, job: Job) -> None:
        self.ready()
        assert self.recogniser is not None
        recordings = [sha for name, media, sha in self.files_of(job) if is_audio(media, name)]
        if not recordings:
            raise GiveUp("the letter has no recording")
        try:
            transcripts = [
                self.recogniser.transcribe(read_wav(self.files.read(sha256)))
                for sha256 in recordings
            ]
        except AudioError as exc:
            raise GiveUp(f"unreadable recording: {exc}") from exc
        self.record(job, transcripts)

    def record(self, job: Job, transcripts: list[Transcript]) -> None:
        """Write what the recordings said onto the letter, which routing then judges on it."""
        words = [w for t in transcripts for w in t.words]
        confidence = sum(w.confidence for w in words) / len(words) if words else None
        changes = {
            "transcript": "\n".join(t.text for t in transcripts if t.text),
            "transcript_confidence": confidence,
            "transcript_words": [
                {"word": w.word, "start": w.start, "end": w.end, "conf": w.confidence}
                for w in words
            ],
        }
        self.update(
            job,
            "transcribed",
            changes,
            settles_text=True,
            seconds=round(sum(t.seconds for t in transcripts), 2),
            words=len(words),
            confidence=None if confidence is None else round(confidence, 3),
        )
        log_event(log, "stt.transcribed", letter=job.letter_id, words=len(words))
