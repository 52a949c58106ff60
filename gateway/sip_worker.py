"""A SIP worker process, assembled: the channel's worker given an intake and the callback
list of its own store connection, as serve gives the other channels theirs.
`hotline sip worker --index N` by hand; `hotline serve` starts `python -m gateway.sip_worker`,
which loads only what a worker uses (not the API, console and routing core the `hotline`
program imports: 25 workers paid ~15 MB each for them)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from channels.sip.worker import SipWorker
from gateway.contract.config import Config, load_config
from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import ROUTE
from gateway.contract.logs import configure
from gateway.core.callqueue import CallQueue
from gateway.engine.database import engine_for
from gateway.engine.intake import Intake
from gateway.engine.metrics import Metrics
from gateway.engine.spool import Spool
from store.attachments import AttachmentStore
from store.db import make_sessionmaker

log = logging.getLogger(__name__)


def run_worker(config: Config, index: int) -> int:
    engine = engine_for(config)
    sessions = make_sessionmaker(engine)
    # Started by `hotline serve`, this process counts in files the gateway reads at each
    # scrape (gateway.engine.metrics); started by hand, in memory, seen by nobody.
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
    # Missed calls too are spooled while the database is down.
    missed = intake.missed_calls(config.channels.sip.source)
    # Callers who ask for a person wait for the seats in the queue all workers share.
    queue = (
        CallQueue.configured(sessions, config.acd, lambda: datetime.now(UTC))
        if config.ivr.agent.queue
        else None
    )
    worker = SipWorker(config, index, intake.accept, missed, queue, intake.attach)

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
    return 1 if worker.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.sip_worker")
    parser.add_argument("--config", type=Path, help="the gateway's config.yaml")
    parser.add_argument("--index", type=int, default=0, help="the worker's number")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigurationError as exc:
        print(f"sip worker: configuration error\n{exc}", file=sys.stderr)
        return 2
    configure(config.logging.level, config.logging.format)
    return run_worker(config, args.index)


if __name__ == "__main__":
    sys.exit(main())
