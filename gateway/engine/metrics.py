"""The counters a hotline operator watches, served at /metrics in Prometheus text format.

Worker processes (SIP, STT) count in files: `hotline serve` gives them a folder of its own in
``PROMETHEUS_MULTIPROC_DIR`` (prometheus_client's multiprocess mode) and adds what they
counted to its own counters at each scrape."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, values
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from gateway.contract.errors import ConfigurationError
from gateway.contract.kinds import lane_states
from gateway.engine.queue_metrics import QueueCollector, QueueReader
from gateway.engine.workers import Handler
from store.models import Job

# Read by prometheus_client when a process imports it: set, its counters live in files there.
WORKER_COUNTS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# (modem, connected, signal, failed connects in a row), read at each scrape.
ModemStatus = Callable[[], list[tuple[str, bool, int, int]]]
# {channel part: inputs kept aside since the start}, e.g. {"gsm:modem-1": 3}.
QuarantineCounts = Callable[[], Mapping[str, int]]
# (kind, status, jobs, earliest run_after) per job kind and status (store.jobs.backlog),
# read at each scrape; None while the database cannot be reached.
Backlog = Callable[[], list[tuple[str, str, int, datetime]] | None]


class Metrics:
    """One registry per gateway (not the process-global one), so tests and nodes stay apart."""

    def __init__(self) -> None:
        self.registry = _Registry()
        self.letters_received = Counter(
            "hotline_letters_received",
            "Letters stored by intake, per channel.",
            ["channel"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "hotline_contacts_redelivered",
            "Contacts delivered again and answered with the letter already stored.",
            ["channel"],
            registry=self.registry,
        )
        self.intake_failures = Counter(
            "hotline_intake_failures",
            "Contacts intake could not store or spool, per channel and reason.",
            ["channel", "reason"],
            registry=self.registry,
        )
        self.spooled = Counter(
            "hotline_contacts_spooled",
            "Contacts written to the outage spool because the database was unreachable.",
            registry=self.registry,
        )
        self.spool_rejected = Counter(
            "hotline_spool_rejected",
            "Spool files that could not be read and were set aside for an operator.",
            registry=self.registry,
        )
        self.spool_depth = Gauge(
            "hotline_spool_depth",
            "Contacts waiting in the outage spool.",
            registry=self.registry,
        )
        self.part_up = Gauge(
            "hotline_channel_up",
            "1 when a channel's part (smtp, gsm:<modem>, sip-<n>, kamailio) or background "
            "task is up, else 0; set at each /healthz and /metrics.",
            ["channel"],
            registry=self.registry,
        )
        self.database_up = Gauge(
            "hotline_database_up",
            "1 when the last health check reached the database, else 0.",
            registry=self.registry,
        )

        self.jobs_done = Counter(
            "hotline_jobs_done",
            "Background jobs done, per kind (in the gateway and its STT worker processes).",
            ["kind"],
            registry=self.registry,
        )
        self.jobs_failed = Counter(
            "hotline_jobs_failed",
            "Background jobs given up after their last attempt, per kind.",
            ["kind"],
            registry=self.registry,
        )

        self._quarantines = _Quarantines()
        self.registry.register(self._quarantines)

    def include_workers(self, directory: Path) -> None:
        """Add the counters of the worker processes counting in ``directory``."""
        if getattr(values.ValueClass, "_multiprocess", False):
            # This process counts in files too: its counts would be added twice.
            raise ConfigurationError(
                f"{WORKER_COUNTS_ENV} is set for the gateway: it sets it for its workers only"
            )
        self.registry.register(_Workers(directory))

    def count_jobs(self, handlers: Mapping[str, Handler]) -> dict[str, Handler]:
        return {kind: _Counted(kind, handler, self) for kind, handler in handlers.items()}

    def watch_modems(self, status: ModemStatus) -> None:
        self.registry.register(_Modems(status))

    def watch_lanes(self, backlog: Backlog, clock: Callable[[], datetime]) -> None:
        self.registry.register(_Lanes(backlog, clock))

    def watch_queue(self, read: QueueReader) -> None:
        """The seats' call queue: who waits now, today's callers and seats."""
        self.registry.register(QueueCollector(read))

    def watch_quarantines(self, source: object) -> None:
        """Count what ``source`` keeps aside, when it keeps anything (a channel that refuses
        bad input outright has nothing to count)."""
        counts = getattr(source, "quarantined", None)
        if callable(counts):
            self._quarantines.sources.append(counts)


def worker_counts_dir(base: Path) -> Path:
    """An empty folder for the worker processes of this gateway run to count in:
    ``base/<gateway pid>``. Folders of gateways no longer running are removed (their counts
    went with them); another gateway sharing ``base`` keeps its own."""
    base.mkdir(parents=True, exist_ok=True)
    for folder in base.iterdir():
        if not folder.name.isdigit() or not _running(int(folder.name)):
            shutil.rmtree(folder, ignore_errors=True)
    mine = base / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)  # an earlier run under the same pid (a container)
    mine.mkdir()
    return mine


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # running, as another user
    return True


class _Registry(CollectorRegistry):
    """Families of one name given as one (the gateway's own letters counter and its SIP
    workers' are both ``hotline_letters_received``), counts of the same labels added up:
    a name twice on one page is not valid exposition."""

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for family in super().collect():
            known = families.get(family.name)
            if known is None:
                families[family.name] = family
                continue
            at = {_key(s): i for i, s in enumerate(known.samples)}
            for sample in family.samples:
                i = at.get(_key(sample))
                if i is None:
                    known.samples.append(sample)
                else:
                    mine = known.samples[i]
                    known.samples[i] = mine._replace(value=mine.value + sample.value)
        return families.values()


def _key(sample: Sample) -> tuple[str, frozenset[tuple[str, str]]]:
    return sample.name, frozenset(sample.labels.items())


class _Workers(Collector):
    """Counters the worker processes keep in ``directory``, one file per process, added up
    over every process that ran: a worker that died or was restarted keeps its counts (a
    counter never goes down). Their gauges are left out: each is the gateway's to read."""

    def __init__(self, directory: Path) -> None:
        # prometheus_client leaves these two untyped.
        self.files = MultiProcessCollector(None, path=str(directory))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        found: Iterable[Metric] = self.files.collect()  # type: ignore[no-untyped-call]
        return (family for family in found if family.type == "counter")


class _Counted(Handler):
    """A job handler whose jobs are counted: done when ``run`` returns, failed when the
    runner gives up on one (not at each retried attempt)."""

    def __init__(self, kind: str, handler: Handler, metrics: Metrics) -> None:
        self.handler = handler
        self.kind = kind
        self.schedule = handler.schedule
        self.done = metrics.jobs_done.labels(kind)
        self.failed = metrics.jobs_failed.labels(kind)

    def run(self, job: Job) -> None:
        self.handler.run(job)
        self.done.inc()

    def run_batch(self, jobs: list[Job]) -> list[Exception | None]:
        outcomes = self.handler.run_batch(jobs)
        self.done.inc(sum(outcome is None for outcome in outcomes))
        return outcomes

    def gave_up(self, job: Job, error: str) -> None:
        self.failed.inc()
        self.handler.gave_up(job, error)

    def ready(self) -> None:
        self.handler.ready()


class _Quarantines(Collector):
    """Read from the channels at each scrape: their threads count, the registry does not."""

    def __init__(self) -> None:
        self.sources: list[QuarantineCounts] = []

    def collect(self) -> Iterator[CounterMetricFamily]:
        kept = CounterMetricFamily(
            "hotline_inputs_quarantined",
            "Inputs a channel could not make a letter of and kept on disk for a person "
            "(a malformed PDU, a mail past the fax limits), per channel part.",
            labels=["channel"],
        )
        for counts in self.sources:
            for part, count in counts().items():
                kept.add_metric([part], count)
        yield kept


# +CSQ <rssi> (3GPP TS 27.007 8.5): 0-31 is a reading, 99 "not known or not detectable";
# the worker keeps -1 before its first reading. Neither is a level to graph or alert on.
_KNOWN_SIGNAL = range(32)


class _Modems(Collector):
    def __init__(self, status: ModemStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connected = GaugeMetricFamily(
            "hotline_modem_connected", "1 while the modem is connected.", labels=["modem"]
        )
        signal = GaugeMetricFamily(
            "hotline_modem_signal",
            "Last +CSQ signal (0-31); absent while unknown.",
            labels=["modem"],
        )
        failures = GaugeMetricFamily(
            "hotline_modem_failures", "Failed connects in a row.", labels=["modem"]
        )
        for name, up, strength, failed in self.status():
            connected.add_metric([name], 1 if up else 0)
            if strength in _KNOWN_SIGNAL:
                signal.add_metric([name], strength)
            failures.add_metric([name], failed)
        yield from (connected, signal, failures)


class _Lanes(Collector):
    """Each lane's queue, read from the database at each scrape (every node sees them all)."""

    def __init__(self, backlog: Backlog, clock: Callable[[], datetime]) -> None:
        self.backlog = backlog
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = self.backlog()
        if rows is None:
            return  # the database is down: no figure rather than a false zero
        jobs = GaugeMetricFamily(
            "hotline_jobs",
            "Jobs per lane and status (queued: due or backing off; failed: given up, kept).",
            labels=["lane", "status"],
        )
        oldest = GaugeMetricFamily(
            "hotline_jobs_oldest_due_seconds",
            "How long the oldest due job of a lane has waited to be claimed (0 when none).",
            labels=["lane"],
        )
        for lane, state in sorted(lane_states(rows, self.clock()).items()):
            for status in ("queued", "running", "failed"):
                jobs.add_metric([lane, status], getattr(state, status))
            oldest.add_metric([lane], state.oldest_due_seconds)
        yield from (jobs, oldest)
