"""The counters a hotline operator watches, served at /metrics in Prometheus text format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """One registry per gateway (not the process-global one), so tests and nodes stay apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
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
        self.database_up = Gauge(
            "hotline_database_up",
            "1 when the last health check reached the database, else 0.",
            registry=self.registry,
        )
