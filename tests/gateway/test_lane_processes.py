"""A lane in worker processes: `hotline serve` keeps `hotline jobs worker --lane ocr`, which
reads a fax's pages off the gateway's own process, and the letter is routed on its words."""

from __future__ import annotations

import smtplib
import time
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import httpx
from sqlalchemy import Engine, select

from store.db import make_engine
from store.models import Job, Letter
from tests.conftest import PII, require_tool
from tests.support.faxes import FONT, fax_tiff
from tests.support.processes import free_port, gateway


def fax(pages: bytes) -> bytes:
    message = EmailMessage()
    message["From"] = "Fax Server <fax@faxserver.local>"
    message["To"] = "fax@hotline.local"
    message["Subject"] = "Fax from 0831-2345678"
    message["Message-ID"] = "<fax-lane@faxserver.local>"
    message.set_content("You have received a 1 page fax.")
    message.add_attachment(pages, maintype="image", subtype="tiff", filename="fax.tif")
    return message.as_bytes(policy=SMTP)


def until(engine: Engine, done: str, timeout: float = 120) -> list[Job]:
    """The letter's jobs once every one is ``done``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            jobs = list(conn.execute(select(Job).order_by(Job.id)))
        if jobs and all(job.status == done for job in jobs) and len(jobs) >= 2:
            return jobs  # type: ignore[return-value]
        time.sleep(0.3)
    raise AssertionError(f"jobs never all {done}: {[(j.kind, j.status) for j in jobs]}")


def test_a_fax_is_read_in_the_ocr_lanes_worker_process_and_then_routed(
    tmp_path: Path, database_url: str
) -> None:
    """On both databases: the worker process and serve claim from one queue (SKIP LOCKED on
    PostgreSQL, where a queued job also wakes the other process by NOTIFY)."""
    require_tool("tesseract")
    require_tool(str(FONT))
    http, smtp = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: {database_url}\n"
        f"http:\n  port: {http}\nlogging:\n  format: json\n"
        "jobs:\n  poll_interval_seconds: 0.2\n"
        "  lanes:\n    ocr: {workers: 1, processes: 1}\n"
        f"channels:\n  smtp:\n    port: {smtp}\n  gsm:\n    enabled: false\n"
        "  sip:\n    enabled: false\nstt:\n  workers: 0\n",
        encoding="utf-8",
    )
    with gateway(config) as serve:
        serve.wait_for_line('"event": "worker.started", "pool": "jobs:ocr"')
        with smtplib.SMTP("127.0.0.1", smtp, timeout=30) as client:
            client.sendmail(
                "fax@faxserver.local", ["fax@hotline.local"], fax(fax_tiff(["人民路井盖丢失"]))
            )
        engine = make_engine(database_url, pii=PII)
        jobs = until(engine, "done")
        metrics = httpx.get(f"http://127.0.0.1:{http}/metrics").text
        health = httpx.get(f"http://127.0.0.1:{http}/healthz").json()
        serve_pid = serve.pid

    ocr = [job for job in jobs if job.kind == "ocr"]
    routes = [job for job in jobs if job.kind == "route"]
    assert len(ocr) == 1 and len(routes) >= 1
    # Claimed by the worker process, not by serve (a claim is "host:pid/token").
    assert ocr[0].locked_by is not None
    assert ocr[0].locked_by.partition("/")[0].rpartition(":")[2] not in ("", str(serve_pid))
    # Routed on the words: the route job came with them, after the fax was queued.
    assert routes[-1].created_at > ocr[0].created_at and routes[-1].id > ocr[0].id
    with engine.connect() as conn:
        text, pending = conn.execute(select(Letter.transcript, Letter.text_pending)).one()
    engine.dispose()
    assert "井盖" in (text or "") and not pending
    assert health["parts"]["jobs:ocr-0"] == "ok"
    assert 'hotline_jobs_done_total{kind="ocr"} 1.0' in metrics  # counted from the worker
