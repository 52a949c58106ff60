"""The seats' call queue in /metrics (gateway/engine/queue_metrics.py), on SQLite and
PostgreSQL: callers put through CallQueue.handle, then the exact samples of a scrape."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from gateway.contract.config import load_config
from gateway.engine.http import build_app
from gateway.engine.metrics import Metrics
from gateway.engine.queue_metrics import queue_reader
from gateway.server import Gateway
from store.db import make_read_sessionmaker
from tests.support.queued_calls import SHANGHAI, Day, play

DAY = date(2026, 12, 11)  # the day before is another ten-day period (旬)
MIDNIGHT = datetime(2026, 12, 10, 16, 0, tzinfo=UTC).timestamp()  # 2026-12-11 00:00 local

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(engine: Engine, day: Day) -> Samples:
    metrics = Metrics()
    reads = make_read_sessionmaker(engine)
    metrics.watch_queue(queue_reader(day.queue.snapshot, reads, day.clock, SHANGHAI))
    app = build_app(metrics, lambda: True, lambda: 0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://gw"
    ) as client:
        page = await client.get("/metrics")
    assert page.status_code == 200
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.text)
        for s in family.samples
        if s.name.startswith("hotline_queue_")
    }


def by_outcome(name: str, values: dict[str, float]) -> Samples:
    return {(name, (("outcome", k),)): v for k, v in values.items()}


def buckets(outcome: str, counts: tuple[int, ...]) -> Samples:
    bounds = ("5", "10", "15", "20", "30", "60", "120", "180", "300", "+Inf")
    return {
        ("hotline_queue_wait_seconds_bucket", (("le", le), ("outcome", outcome))): float(n)
        for le, n in zip(bounds, counts, strict=True)
    }


async def test_a_scrape_gives_the_queue_now_and_today_s_callers_by_outcome_and_seat(
    engine: Engine,
) -> None:
    day = play(engine, DAY)

    samples = await scrape(engine, day)

    # Waits of today's callers: answered 5, 15 (exactly: within) and 70 s; abandoned 17 s;
    # message 131 s; queue_timeout 134 s; lost 23 s. The caller of the evening before is
    # another day's.
    assert samples == {
        ("hotline_queue_waiting", ()): 1.0,
        ("hotline_queue_ringing", ()): 1.0,
        ("hotline_queue_oldest_wait_seconds", ()): 15.0,
        ("hotline_queue_seats", (("state", "talking"),)): 1.0,
        ("hotline_queue_seats", (("state", "ringing"),)): 1.0,
        ("hotline_queue_seats", (("state", "signed_in"),)): 0.0,
        ("hotline_queue_seats", (("state", "break"),)): 0.0,
        ("hotline_queue_seats", (("state", "signed_out"),)): 0.0,
        **by_outcome(
            "hotline_queue_calls_total",
            {"answered": 3, "abandoned": 1, "queue_timeout": 1, "message": 1, "lost": 1},
        ),
        **by_outcome(
            "hotline_queue_calls_created",
            dict.fromkeys(("answered", "abandoned", "queue_timeout", "message", "lost"), MIDNIGHT),
        ),
        **buckets("answered", (1, 1, 2, 2, 2, 2, 3, 3, 3, 3)),
        **buckets("abandoned", (0, 0, 0, 1, 1, 1, 1, 1, 1, 1)),
        **buckets("queue_timeout", (0, 0, 0, 0, 0, 0, 0, 1, 1, 1)),
        **buckets("message", (0, 0, 0, 0, 0, 0, 0, 1, 1, 1)),
        **buckets("lost", (0, 0, 0, 0, 1, 1, 1, 1, 1, 1)),
        **by_outcome(
            "hotline_queue_wait_seconds_count",
            {"answered": 3, "abandoned": 1, "queue_timeout": 1, "message": 1, "lost": 1},
        ),
        **by_outcome(
            "hotline_queue_wait_seconds_sum",
            {"answered": 90, "abandoned": 17, "queue_timeout": 134, "message": 131, "lost": 23},
        ),
        ("hotline_queue_longest_wait_seconds", ()): 134.0,
        ("hotline_queue_seat_calls_total", (("seat", "8001"),)): 2.0,
        ("hotline_queue_seat_calls_total", (("seat", "8002"),)): 1.0,
        ("hotline_queue_seat_calls_created", (("seat", "8001"),)): MIDNIGHT,
        ("hotline_queue_seat_calls_created", (("seat", "8002"),)): MIDNIGHT,
        ("hotline_queue_seat_talk_seconds_total", (("seat", "8001"),)): 188.0,
        ("hotline_queue_seat_talk_seconds_total", (("seat", "8002"),)): 0.0,  # still talking
        ("hotline_queue_seat_talk_seconds_created", (("seat", "8001"),)): MIDNIGHT,
        ("hotline_queue_seat_talk_seconds_created", (("seat", "8002"),)): MIDNIGHT,
    }


def write_config(tmp_path: Path, database_url: str, queue: bool) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"database:\n  url: {json.dumps(database_url)}\n"
        f"storage:\n  spool_dir: {tmp_path / 'spool'}\n  attachments_dir: {tmp_path / 'files'}\n"
        "channels:\n  smtp:\n    enabled: false\n  gsm:\n    enabled: false\n"
        "  sip:\n    enabled: false\n"
        f"ivr:\n  agent:\n    queue: {'true' if queue else 'false'}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("queue", [True, False], ids=["seats-queue", "no-seats-queue"])
async def test_the_gateway_serves_the_queue_s_metrics_when_callers_queue_for_seats(
    database_url: str, tmp_path: Path, queue: bool
) -> None:
    gateway = Gateway(load_config(write_config(tmp_path, database_url, queue)))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=gateway.app), base_url="http://gw"
        ) as client:
            page = (await client.get("/metrics")).text
    finally:
        gateway.engine.dispose()

    assert ("\nhotline_queue_waiting 0.0\n" in page) is queue
    assert ('hotline_queue_calls_total{outcome="answered"} 0.0' in page) is queue
    assert "hotline_jobs{" in page  # the rest of the page either way
