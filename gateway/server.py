"""Assembly: build the store, intake and HTTP listener from config, run until told to stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from collections.abc import Callable, Coroutine, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from starlette.routing import BaseRoute, Mount

from gateway.contract.config import Config
from gateway.contract.kinds import ROUTE, lane_of
from gateway.contract.logs import log_event
from gateway.core.callqueue import CallQueue
from gateway.engine import notices, webhooks
from gateway.engine.call_recordings import purge_recordings_forever
from gateway.engine.database import engine_for
from gateway.engine.dispatch import sweep_forever, workflow_for
from gateway.engine.health import Health
from gateway.engine.http import ErrorPage, build_app
from gateway.engine.intake import Intake, utcnow
from gateway.engine.listening import announce_http, bind_http, listening
from gateway.engine.metrics import WORKER_COUNTS_ENV, Metrics, worker_counts_dir
from gateway.engine.notifications import Receipts, media_of
from gateway.engine.outbox import DeliveryReports, Mailer, Sender, delivery_handlers
from gateway.engine.processes import WorkerPool
from gateway.engine.queue_metrics import queue_reader
from gateway.engine.spool import Spool
from gateway.engine.workers import Handler, lanes_for, purge_forever
from gateway.frontends.api import open311
from gateway.frontends.api.app import Services, build_api
from gateway.handlers import letter_handlers
from gateway.registry import Wiring, build_channels, python_command, senders_of
from store import jobs
from store.attachments import AttachmentStore
from store.db import is_outage, make_read_sessionmaker, make_sessionmaker
from store.models import ConsoleUser

log = logging.getLogger(__name__)
# Said at start while the console has nobody to sign in (the password is asked twice).
FIRST_CONSOLE_USER = "hotline console add-user USERNAME --name 姓名 --role admin"


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The gateway owns the signals and stops every part, not only HTTP.
        yield


class Gateway:
    def __init__(self, config: Config, config_path: Path | None = None) -> None:
        self.config = config
        # Worker processes read the same file (and the same environment overrides).
        self.config_path = config_path
        self.engine = engine_for(config)
        self.metrics = Metrics()
        self.spool = Spool(config.storage.spool_dir, self.metrics)
        sessions = make_sessionmaker(self.engine)
        files = AttachmentStore(config.storage.attachments_dir)
        # With routing on, the receipt waits for screening (gateway/core/workflow/citizen.py).
        media = media_of(config)
        receipts = None if config.routing.enabled else Receipts(media.email, media.sms)
        self.sessions = sessions
        self.workflow = workflow_for(config, utcnow)
        self.intake = Intake(
            sessions,
            files,
            self.spool,
            self.metrics,
            config.zone,
            receipts=receipts,
            standing_jobs=(ROUTE,) if config.routing.enabled else (),
        )
        self.reads = make_read_sessionmaker(self.engine)
        wiring = Wiring(
            config,
            self.intake,
            DeliveryReports(sessions, utcnow),
            sessions,
            self.reads,
            utcnow,
            config_path,
        )
        channels = build_channels(wiring)
        self.channels = {n: c.listener for n, c in channels.items() if c.listener is not None}
        for channel in channels.values():
            if channel.modems is not None:
                self.metrics.watch_modems(channel.modems)
        self.webhook_sender: webhooks.WebhookSender | None = None
        handlers = self._handlers(senders_of(channels), files)
        # A lane given worker processes runs there (`hotline jobs worker`), not here.
        self.lane_pools = {
            lane: WorkerPool(f"jobs:{lane}", self._cli("jobs", "worker", "--lane", lane), n)
            for lane, n in config.jobs.lanes.processes().items()
            if n and any(lane_of(kind) == lane for kind in handlers)
        }
        handlers = {k: h for k, h in handlers.items() if lane_of(k) not in self.lane_pools}
        self.lanes = lanes_for(sessions, self.metrics.count_jobs(handlers), config.jobs)
        self.metrics.watch_lanes(self.backlog, utcnow)
        if config.ivr.agent.queue:
            queue = CallQueue.configured(sessions, config.acd, utcnow)
            self.metrics.watch_queue(queue_reader(queue.snapshot, self.reads, utcnow, config.zone))
        # The citizen's site, at the root, is the last channel's: under everything else.
        routes, pages = self._frontends(files)
        routes += [r for c in channels.values() for r in c.routes]
        pages += [p for c in channels.values() for p in c.pages]
        self.health = Health()
        for listener in self.channels.values():
            self.health.watch(listener)
            self.metrics.watch_quarantines(listener)
        self.app = build_app(
            self.metrics, self.database_up, self.spool.depth, routes, self.health.report, pages
        )
        self.http = _Uvicorn(
            uvicorn.Config(
                self.app,
                host=config.http.host,
                port=config.http.port,
                log_config=None,
                lifespan="off",
                access_log=False,
            )
        )

    def _handlers(self, senders: dict[str, Sender], files: AttachmentStore) -> dict[str, Handler]:
        """Every job kind this deployment runs: the letters' own, the outbox's deliveries
        (through the channels' senders and outgoing mail) and the webhooks."""
        config, sessions = self.config, self.sessions
        if config.outgoing_mail.enabled:
            senders["email"] = Mailer(config.outgoing_mail).deliver
        domain = config.outgoing_mail.from_address.rpartition("@")[2]
        handlers = letter_handlers(config, sessions, files, utcnow, self.workflow)
        handlers.update(delivery_handlers(sessions, senders, utcnow, domain))
        # Webhooks retry on their own schedule (for about a day), unlike SMS and e-mail.
        if config.webhooks.endpoints:
            webhooks.check_endpoints(config.webhooks)
            self.webhook_sender = webhooks.WebhookSender(sessions, config.webhooks, utcnow)
            handlers[webhooks.KIND] = webhooks.WebhookDelivery(
                sessions,
                self.webhook_sender,
                utcnow,
                webhooks.runner_settings(config.webhooks, config.jobs),
            )
        return handlers

    def _frontends(
        self, files: AttachmentStore
    ) -> tuple[list[BaseRoute], list[tuple[str, ErrorPage | None]]]:
        """The API with Open311, and the console, as configured, and who answers an unknown
        address or a failure under each: the API its own JSON problems, the console its
        pages."""
        config, routes = self.config, list[BaseRoute]()
        pages: list[tuple[str, ErrorPage | None]] = []
        if config.api.enabled:
            services = Services(
                config.api, self.sessions, files, self.intake, self.workflow, utcnow
            )
            routes.append(Mount("/api/v1", app=build_api(services)))
            routes.append(Mount("/open311/v2", routes=open311.routes(services, config.zone)))
            pages += [("/api/v1/", None), ("/open311/v2/", None)]
        if config.console.enabled:
            from gateway.frontends.console.app import Console

            console = Console(config, self.sessions, files, self.workflow, utcnow)
            routes.extend(console.routes())
            pages.append(("/console/", console.error_page))
        return routes, pages

    def _cli(self, *args: str) -> list[str]:
        """A `hotline` command for a worker process: the same file (and environment)."""
        return python_command("gateway.cli", self.config_path, *args)

    def backlog(self) -> list[tuple[str, str, int, datetime]] | None:
        try:
            with self.reads() as session:
                return jobs.backlog(session)
        except SQLAlchemyError as exc:
            if is_outage(exc):
                return None
            raise

    def database_up(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            if is_outage(exc):
                return False
            raise
        return True

    async def run(self, stop: asyncio.Event) -> None:
        wakers = [runner.waker() for runner in self.lanes.values()]

        def jobs_queued() -> None:  # a letter's jobs may be in any lane
            for wake in wakers:
                wake()

        self.intake.jobs_queued = jobs_queued
        # Each worker process started from here on (SIP, STT) counts into this run's folder,
        # read at each scrape. Through the environment, as prometheus_client reads it, so
        # every pool gets it, whoever builds it (the SIP channel builds its own).
        counts = worker_counts_dir(self.config.storage.spool_dir.parent / "metrics")
        os.environ[WORKER_COUNTS_ENV] = str(counts)
        self.metrics.include_workers(counts)
        with self.sessions.begin() as session:
            self.workflow.sync_departments(session)
        if self.webhook_sender is not None:
            # A new endpoint's cursor starts at the newest event: place it before any channel
            # takes a contact, or the first letters' events would count as history.
            await asyncio.to_thread(webhooks.fan_out, self.sessions, self.config.webhooks, utcnow())
        # Taken before any channel starts: a port another program holds ends the start here.
        http_socket = bind_http(
            self.config.http.host, self.config.http.port, self.http.config.backlog
        )
        await self._start_channels(http_socket)
        announce_http(http_socket)
        http = asyncio.create_task(self.http.serve(sockets=[http_socket]), name="http")
        work: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "spool-drainer": lambda: self._drain_spool(stop),
        }
        for lane, runner in self.lanes.items():
            work[f"jobs:{lane}"] = functools.partial(runner.run, stop)
        for lane, pool in self.lane_pools.items():
            self.health.watch(pool)
            work[f"jobs:{lane}"] = functools.partial(pool.run, stop)
        work["jobs-purge"] = lambda: purge_forever(self.sessions, self.config.jobs, utcnow, stop)
        acd = self.config.acd
        if self.config.ivr.agent.queue and acd.record_calls:
            files = AttachmentStore(self.config.storage.attachments_dir)
            work["recordings-purge"] = lambda: purge_recordings_forever(
                self.sessions, files, acd.keep_recordings_days, utcnow, stop
            )
        if self.engine.dialect.name == "postgresql":  # SQLite has no notices: lanes poll
            work["jobs-notices"] = lambda: notices.listen(
                self.engine, self._wake_lane_of, jobs_queued, stop
            )
        if self.webhook_sender is not None:
            work["webhook-fanout"] = lambda: webhooks.fan_out_forever(
                self.sessions, self.config.webhooks, utcnow, stop, self.lanes["webhooks"].waker()
            )
        if self.config.stt.enabled and self.config.stt.workers:
            pool = WorkerPool("stt", self._cli("stt", "worker"), self.config.stt.workers)
            self.health.watch(pool)
            work["stt-workers"] = lambda: pool.run(stop)
        if self.config.routing.enabled:
            interval = self.config.deadlines.sweep_interval_seconds
            work["sweep"] = lambda: sweep_forever(
                self.sessions, self.workflow, utcnow, interval, stop
            )
        background = [
            asyncio.create_task(self.health.supervise(name, run, stop), name=name)
            for name, run in work.items()
        ]
        log_event(
            log,
            "gateway.started",
            logging.INFO,
            http=f"{self.config.http.host}:{self.config.http.port}",
            channels=",".join(self.channels) or "none",
            **self._to_open(http_socket),
        )
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({http, stopped}, return_when=asyncio.FIRST_COMPLETED)
        # Channels first: nothing new arrives while the rest winds down.
        for channel in self.channels.values():
            await channel.stop()
        self.http.should_exit = True
        stop.set()
        await asyncio.gather(*background, return_exceptions=True)
        if self.webhook_sender is not None:
            self.webhook_sender.close()
        stopped.cancel()
        await http
        self.engine.dispose()
        log_event(log, "gateway.stopped")

    def _to_open(self, http_socket: socket.socket) -> dict[str, str]:
        """What a person who just started the gateway opens (`make run` shows it): the
        pages' addresses, and while the console has no user, how to add the first."""
        host, port = http_socket.getsockname()[:2]
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)  # any: this machine's
        base = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        config, shown = self.config, {}
        if config.channels.web.enabled:
            shown["site"] = f"{base}/"
        if config.console.enabled:
            shown["console"] = f"{base}/console/"
            with self.sessions() as session:
                if session.scalar(select(ConsoleUser.id).limit(1)) is None:
                    shown["first_console_user"] = FIRST_CONSOLE_USER
        if config.api.enabled:
            shown["api_docs"] = f"{base}/api/v1/openapi.json"
        shown["metrics"] = f"{base}/metrics"
        return shown

    async def _start_channels(self, http_socket: socket.socket) -> None:
        """Each channel in turn; when one cannot (its port taken), those started before it
        stop, so that the process ends with nothing of it left running."""
        started = []
        try:
            for name, channel in self.channels.items():
                await listening(name, channel.start())
                started.append(channel)
        except BaseException:
            for channel in reversed(started):
                await channel.stop()
            http_socket.close()
            self.engine.dispose()
            raise

    def _wake_lane_of(self, kind: str) -> None:
        """Another process queued jobs of this kind (on the event loop: gateway.engine.notices)."""
        runner = self.lanes.get(lane_of(kind))
        if runner is not None:
            runner.wake()

    async def _drain_spool(self, stop: asyncio.Event) -> None:
        interval = self.config.storage.spool_drain_interval_seconds
        while not stop.is_set():
            if self.spool.depth():
                try:
                    await asyncio.to_thread(self.intake.drain_spool)
                except Exception:
                    log.exception("spool.drain_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
