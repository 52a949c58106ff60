"""The jobs about a letter's own words and files (route, ocr, Twilio media), built the same
way wherever they run: in `hotline serve`, or in a lane's worker processes
(`jobs.lanes.<lane>.processes`, `hotline jobs worker --lane L`), which keep CPU-heavy work
such as reading a fax's pages off the gateway's own process.

Deliveries (receipts, replies, webhooks) are not here: the modems that send SMS live in
the serve process, so the notify lane always runs there.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from gateway.contract.config import Config
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import ROUTE, lane_of
from gateway.core.workflow import Workflow
from gateway.engine.dispatch import RouteHandler, workflow_for
from gateway.engine.metrics import Metrics
from gateway.engine.ocr import OcrHandler
from gateway.engine.workers import Handler, lanes_for
from ivr.transcription import transcription_expected
from store.attachments import AttachmentStore


def awaited_texts(config: Config, ocr: OcrHandler) -> frozenset[str]:
    """The texts routing waits for: those this deployment reads (no model, no Tesseract:
    the letters are routed on what is known instead of waiting for ever)."""
    awaited = {"transcription"} if transcription_expected(config.stt) else set()
    try:
        ocr.ready()
    except ConfigurationError:
        pass
    else:
        awaited.add("ocr")
    return frozenset(awaited)


def letter_handlers(
    config: Config,
    sessions: sessionmaker[Session],
    files: AttachmentStore,
    clock: Callable[[], datetime],
    workflow: Workflow,
) -> dict[str, Handler]:
    # A voicemail or fax is routed once its text is written (or will never be).
    route = (ROUTE,) if config.routing.enabled else ()
    ocr = OcrHandler(
        sessions, files, config.ocr, clock, after_text=route, fax=config.channels.smtp.fax
    )
    handlers: dict[str, Handler] = {OcrHandler.kind: ocr}
    if config.routing.enabled:
        # Not otherwise: a gateway that only takes letters in (routing done downstream)
        # never loads the routing core's dictionary, and no route job is ever queued.
        handlers[ROUTE] = RouteHandler(sessions, workflow, awaited_texts(config, ocr))
    if config.channels.twilio.enabled:
        from channels.twilio.media import MediaHandler

        handlers[MediaHandler.kind] = MediaHandler(
            sessions, files, config.channels.twilio, clock, after_text=route
        )
    return handlers


def run_lane(config: Config, lane: str) -> int:
    """One worker process of a lane: its jobs until SIGTERM (serve starts these)."""
    from gateway.engine.database import engine_for
    from gateway.engine.intake import utcnow
    from store.db import make_sessionmaker

    sessions = make_sessionmaker(engine_for(config))
    files = AttachmentStore(config.storage.attachments_dir)
    handlers = {
        kind: handler
        for kind, handler in letter_handlers(
            config, sessions, files, utcnow, workflow_for(config, utcnow)
        ).items()
        if lane_of(kind) == lane
    }
    if not handlers:
        raise ConfigurationError(f"lane {lane!r} has no jobs a worker process can run")
    # Counted in the files of the gateway that started this process (gateway.engine.metrics).
    runner = lanes_for(sessions, Metrics().count_jobs(handlers), config.jobs)[lane]
    runner.run_until_signalled()
    return 0
