"""The counters a hotline operator watches, served at /metrics in Prometheus text format."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# (modem, connected, signal, failed connects in a row), read at each scrape.
ModemStatus = Callable[[], list[tuple[str, bool, int, int]]]


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

    def watch_modems(self, status: ModemStatus) -> None:
        self.registry.register(_Modems(status))


class _Modems(Collector):
    def __init__(self, status: ModemStatus) -> None:
        self.status = status

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connected = GaugeMetricFamily(
            "hotline_modem_connected", "1 while the modem is connected.", labels=["modem"]
        )
        signal = GaugeMetricFamily(
            "hotline_modem_signal", "Last +CSQ signal (0-31; 99 unknown).", labels=["modem"]
        )
        failures = GaugeMetricFamily(
            "hotline_modem_failures", "Failed connects in a row.", labels=["modem"]
        )
        for name, up, strength, failed in self.status():
            connected.add_metric([name], 1 if up else 0)
            signal.add_metric([name], strength)
            failures.add_metric([name], failed)
        yield from (connected, signal, failures)
