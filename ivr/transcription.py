"""Voicemail transcription as durable jobs, run by worker processes that each hold a model.

A recorded voicemail's letter carries a `transcribe` job from intake. `hotline stt worker`
claims those jobs (leases, retries with backoff, a final failure recorded on the letter);
`hotline serve` keeps `stt.workers` of them running. Killing a worker loses no job: its
lease runs out and another worker takes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from gateway.config import SttConfig
from gateway.errors import ConfigurationError
from gateway.logs import log_event
from gateway.workers import GiveUp, Handler
from ivr.audio import AudioError, read_wav
from ivr.stt import Recogniser, Transcript
from store.attachments import AttachmentStore
from store.letters import record_event
from store.models import Job, Letter

log = logging.getLogger(__name__)
TRANSCRIBE = "transcribe"


def is_audio(media_type: str, filename: str) -> bool:
    return media_type.startswith("audio/") or filename.lower().endswith(".wav")


class TranscribeHandler(Handler):
    kind = TRANSCRIBE

    def __init__(
        self,
        sessions: sessionmaker[Session],
        files: AttachmentStore,
        settings: SttConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.sessions = sessions
        self.files = files
        self.settings = settings
        self.clock = clock
        self.recogniser: Recogniser | None = None

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
        with self.sessions() as session:
            letter = session.get(Letter, job.letter_id)
            if letter is None:
                raise GiveUp(f"letter {job.letter_id} does not exist")
            recordings = [
                a.sha256 for a in letter.attachments if is_audio(a.media_type, a.filename)
            ]
        if not recordings:
            raise GiveUp("the letter has no recording")
        try:
            transcripts = [
                self.recogniser.transcribe(read_wav(self.files.read(sha256)))
                for sha256 in recordings
            ]
        except AudioError as exc:
            raise GiveUp(f"unreadable recording: {exc}") from exc
        self._store(job, transcripts)

    def _store(self, job: Job, transcripts: list[Transcript]) -> None:
        words = [w for t in transcripts for w in t.words]
        text = "\n".join(t.text for t in transcripts if t.text)
        confidence = sum(w.confidence for w in words) / len(words) if words else None
        with self.sessions.begin() as session:
            letter = session.get(Letter, job.letter_id)
            assert letter is not None
            letter.transcript = text
            letter.transcript_confidence = confidence
            letter.transcript_words = [
                {"word": w.word, "start": w.start, "end": w.end, "conf": w.confidence}
                for w in words
            ]
            record_event(
                session,
                at=self.clock(),
                actor="stt",
                kind="transcribed",
                letter=letter,
                seconds=round(sum(t.seconds for t in transcripts), 2),
                words=len(words),
                confidence=None if confidence is None else round(confidence, 3),
            )
        log_event(log, "stt.transcribed", letter=job.letter_id, words=len(words))

    def gave_up(self, job: Job, error: str) -> None:
        # The letter keeps its recording: an operator listens to it.
        with self.sessions.begin() as session:
            letter = session.get(Letter, job.letter_id)
            if letter is not None:
                record_event(
                    session,
                    at=self.clock(),
                    actor="stt",
                    kind="transcribe_failed",
                    letter=letter,
                    error=error,
                )
