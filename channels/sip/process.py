"""`hotline sip worker --index N`: a worker process with its own store connection."""

from __future__ import annotations

import asyncio
import logging
import signal

from channels.sip.worker import SipWorker
from gateway.config import Config
from gateway.dispatch import ROUTE
from gateway.intake import Intake, utcnow
from gateway.metrics import Metrics
from gateway.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_sessionmaker
from store.missed_calls import MissedCalls

log = logging.getLogger(__name__)


def run_worker(config: Config, index: int) -> int:
    from gateway.server import engine_for

    engine = engine_for(config)
    sessions = make_sessionmaker(engine)
    metrics = Metrics()
    intake = Intake(
        sessions,
        AttachmentStore(config.storage.attachments_dir),
        # The gateway drains the same spool folder once the database is back.
        Spool(config.storage.spool_dir, metrics),
        metrics,
        config.zone,
        standing_jobs=(ROUTE,) if config.routing.enabled else (),
    )
    missed = MissedCalls(sessions, config.channels.sip.source, utcnow)
    worker = SipWorker(config, index, intake.accept, missed)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await worker.run(stop)

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    return 0
