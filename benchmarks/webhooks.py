"""Webhook deliveries per second through the webhooks lane, against plain POSTs of the same
bodies to the same local receiver, on SQLite or PostgreSQL (issue 16).

    .venv/bin/python -m benchmarks.webhooks [--events 500] [--rounds 3] [--postgres [URL]]

A webhook counts when the receiver got it once with a valid Standard Webhooks signature
(checked with the ``standardwebhooks`` package after the clock stops) and the body of its
event; a plain POST when the receiver got its body and answered 2xx. Both are sent with the
webhooks lane's concurrency (``jobs.lanes.webhooks.workers``) and take turns round by round,
so a busy moment of the machine falls on either; the ratio is of the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, insert
from standardwebhooks import Webhook

from benchmarks.common import POSTGRES, Tally, postgres_schema, race, ratio
from gateway.contract.config import Config, WebhookEndpoint, WebhooksConfig, load_config
from store.db import make_engine, make_sessionmaker
from store.migrate import upgrade
from store.models import Letter
from tests.conftest import PII

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
SECRET = "whsec_" + "QmVuY2htYXJrIHNlY3JldCBvZiAzMiBieXRlcyEhISE="  # 32 bytes


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """A local endpoint that keeps what it was sent and when; it checks nothing while the
    clock runs, so checking costs neither side."""

    def __init__(self, expected: int) -> None:
        self.got: list[Received] = []
        self.expected = expected
        self.all_in = threading.Event()
        self.lock = lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # Kept before the answer: a client that has its answer finds it kept.
                with lock:
                    outer.got.append(Received(dict(self.headers), body, time.perf_counter()))
                self.send_response(204)
                self.end_headers()
                with lock:  # counted again: a round may have been reset meanwhile
                    if len(outer.got) >= outer.expected:
                        outer.all_in.set()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self, expected: int) -> None:
        with self.lock:
            self.got, self.expected = [], expected
            self.all_in.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def event_body(n: int) -> dict[str, Any]:
    return {
        "type": "letter.created",
        "timestamp": NOW.isoformat(),
        "data": {"tracking_number": f"W{n:014d}", "status": "received"},
    }


def verify_webhooks(got: list[Received], bodies: dict[str, dict[str, Any]], began: float) -> Tally:
    """Each event once, signed with our secret (Standard Webhooks), with its own body."""
    verifier, tally, seen = Webhook(SECRET), Tally(), set()
    last = began
    for r in got:
        try:
            payload = verifier.verify(r.body, r.headers)
        except Exception:  # the library's verification error, whatever its class
            tally.fail("deliveries with a bad signature")
            continue
        webhook_id = r.headers.get("webhook-id", r.headers.get("Webhook-Id", ""))
        if webhook_id in seen:
            tally.fail("deliveries of an event already delivered")
        elif payload != bodies.get(webhook_id):
            tally.fail("deliveries with another body than their event's")
        else:
            seen.add(webhook_id)
            tally.verified += 1
            last = max(last, r.at)
    tally.fail("events never delivered", len(set(bodies) - seen))
    tally.seconds = last - began
    return tally


@contextmanager
def database(postgres: str | None) -> Iterator[Engine]:
    """A fresh, migrated store: a SQLite file (WAL), or a schema of its own on PostgreSQL."""
    with tempfile.TemporaryDirectory() as tmp:
        drop: Callable[[], None] | None = None
        if postgres:
            url, drop = postgres_schema(postgres)
        else:
            url = f"sqlite:///{Path(tmp) / 'hooks.db'}"
        engine = make_engine(url, pii=PII)
        try:
            upgrade(engine)
            yield engine
        finally:
            engine.dispose()
            if drop is not None:
                drop()


def webhook_rate(receiver: Receiver, count: int, config: Config, postgres: str | None) -> Tally:
    """Deliveries per second through the webhooks lane as serve runs it (the outbox, signing,
    the ordering checks, the lane's workers and batches), one event per letter."""
    from gateway.core.messages import queue_message
    from gateway.engine import webhooks
    from gateway.engine.workers import lanes_for
    from store import jobs

    receiver.reset(count)
    settings = WebhooksConfig(
        allowed_hosts=["127.0.0.1"],
        endpoints=[WebhookEndpoint(name="bench", url=receiver.url, secrets=[SECRET])],
    )
    bodies: dict[str, dict[str, Any]] = {}
    with database(postgres) as engine:
        with engine.begin() as conn:
            conn.execute(
                insert(Letter),
                [
                    {
                        "id": n + 1,
                        "tracking_number": f"W{n:014d}",
                        "verification_code": "000000",
                        "channel": "web",
                        "source": "bench",
                        "external_id": f"w{n}",
                        "received_at": NOW,
                        "status": "received",
                        "subject": "路灯",
                        "text": "翠屏区人民路的路灯坏了",
                        "anonymous": False,
                        "confidential": False,
                        "publish": False,
                    }
                    for n in range(count)
                ],
            )
        sessions = make_sessionmaker(engine)
        with sessions.begin() as session:
            for n in range(count):
                body = event_body(n)
                message = queue_message(
                    session, webhooks.KIND, n + 1, "bench", body, NOW, deliver=False
                )
                jobs.enqueue(
                    session,
                    webhooks.KIND,
                    letter_id=n + 1,
                    payload={"outbox_id": message.id},
                    at=NOW,
                )
                bodies[f"msg_{message.id}"] = body
        sender = webhooks.WebhookSender(sessions, settings)
        handler = webhooks.WebhookDelivery(
            sessions, sender, webhooks.utcnow, webhooks.runner_settings(settings, config.jobs)
        )
        lane = lanes_for(sessions, {webhooks.KIND: handler}, config.jobs)["webhooks"]

        async def run() -> float:
            stop = asyncio.Event()
            began = time.perf_counter()
            running = asyncio.create_task(lane.run(stop))
            await asyncio.to_thread(receiver.all_in.wait, 120)
            stop.set()
            await running
            return began

        try:
            began = asyncio.run(run())
        finally:
            sender.close()
    return verify_webhooks(receiver.got, bodies, began)


def plain_rate(receiver: Receiver, count: int, workers: int) -> Tally:
    """The same bodies POSTed from as many threads as the lane has workers, each thread
    with one httpx client."""
    raws = [json.dumps(event_body(n)).encode() for n in range(count)]
    receiver.reset(count)
    answered: list[int] = []

    def client(share: list[bytes]) -> Callable[[Callable[[], None]], None]:
        def work(start: Callable[[], None]) -> None:
            with httpx.Client() as http:
                start()
                for raw in share:
                    answer = http.post(
                        receiver.url, content=raw, headers={"content-type": "application/json"}
                    )
                    answered.append(answer.status_code)

        return work

    tally = race([client(raws[i::workers]) for i in range(workers)])
    ok = sum(1 for status in answered if 200 <= status < 300)
    tally.fail("POSTs answered other than 2xx", len(answered) - ok)
    tally.fail("POSTs never answered", len(raws) - len(answered))
    got = sorted(r.body for r in receiver.got)
    tally.verified = min(ok, sum(1 for a, b in zip(got, sorted(raws), strict=False) if a == b))
    tally.fail("bodies the receiver did not get whole", ok - tally.verified)
    return tally


def webhook_rates(
    count: int, config: Config, postgres: str | None = None, rounds: int = 1
) -> tuple[list[Tally], list[Tally]]:
    """``rounds`` of each, taking turns: (through the lane, plain POSTs)."""
    receiver = Receiver(count)
    gateway, plain = [], []
    try:
        for _ in range(rounds):
            gateway.append(webhook_rate(receiver, count, config, postgres))
            plain.append(plain_rate(receiver, count, config.jobs.lanes.webhooks.workers))
    finally:
        receiver.close()
    return gateway, plain


def report(count: int, gateway: list[Tally], plain: list[Tally], backend: str) -> str:
    ours = statistics.median(t.rate for t in gateway)
    theirs = statistics.median(t.rate for t in plain)
    each = ", ".join(f"{g.rate:.0f}/{p.rate:.0f}" for g, p in zip(gateway, plain, strict=True))
    problems = "; ".join(sorted({t.problems() for t in gateway}))
    plain_problems = "; ".join(sorted({t.problems() for t in plain}))
    return (
        f"webhooks ({backend}, {count} events, {len(gateway)} rounds): "
        f"{ours:.0f} verified deliveries/s through the webhooks lane "
        f"({min(t.verified for t in gateway)}/{count} at least, signed and whole; {problems}); "
        f"plain POSTs of the same bodies {theirs:.0f}/s ({plain_problems}); "
        f"rounds lane/plain {each}; gateway/plain = {ratio(ours, theirs)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=POSTGRES,
        help=f"run on PostgreSQL (default {POSTGRES}) in a schema made and dropped here",
    )
    args = parser.parse_args()
    config = load_config(ROOT / "config.yaml", environ={})
    gateway, plain = webhook_rates(args.events, config, args.postgres, args.rounds)
    print(report(args.events, gateway, plain, "PostgreSQL" if args.postgres else "SQLite"))


if __name__ == "__main__":
    main()
