"""kill -9 the gateway while clients send 500 mails: every 250 is exactly one letter."""

from __future__ import annotations

import os
import random
import signal
import smtplib
import threading
from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from store.models import Letter
from tests.support.processes import free_port, gateway

MAILS = 500
CLIENTS = 4


def message(n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"市民{n} <citizen{n}@example.cn>"
    m["To"] = "12345@hotline.local"
    m["Subject"] = f"第{n}封来信"
    m["Message-ID"] = f"<crash-{n}@example.cn>"
    m.set_content(f"这是第{n}封来信的正文。" * 20)
    return m.as_bytes(policy=SMTP)


class Clients:
    """Mail servers delivering over several connections; they remember what got 250."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.acked: set[int] = set()
        self.changed = threading.Condition()

    def deliver(self, numbers: Iterable[int]) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port, timeout=30) as client:
                for n in numbers:
                    client.sendmail(f"citizen{n}@example.cn", ["12345@hotline.local"], message(n))
                    with self.changed:
                        self.acked.add(n)
                        self.changed.notify_all()
        except (OSError, smtplib.SMTPException):
            return  # the gateway died under us: what was not acknowledged is retried later

    def run(self, numbers: list[int]) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=self.deliver, args=(numbers[i::CLIENTS],), daemon=True)
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        return threads

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.acked) >= count, timeout=120)


def stored(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Letter.external_id)).scalars())


@pytest.mark.slow
def test_kill_9_while_mail_arrives_loses_no_acknowledged_mail(
    database_url: str, engine: Engine, tmp_path: Path
) -> None:
    rng = random.Random(2525)
    smtp_port, http_port = free_port(), free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"http:\n  port: {http_port}\nchannels:\n  smtp:\n    port: {smtp_port}\n"
        "  gsm:\n    enabled: false\n  sip:\n    enabled: false\n",
        "utf-8",
    )
    clients = Clients(smtp_port)
    for kill_at in sorted(rng.sample(range(50, MAILS - 50), 3)):
        with gateway(config, HOTLINE_DATABASE_URL=database_url) as proc:
            pending = [n for n in range(MAILS) if n not in clients.acked]
            threads = clients.run(pending)
            clients.wait_for(kill_at)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            for thread in threads:
                thread.join(timeout=60)
        ids = stored(engine)
        assert len(ids) == len(set(ids)), "a mail was stored twice"
        lost = {n for n in clients.acked if f"crash-{n}@example.cn" not in ids}
        assert not lost, f"got 250 but lost after kill -9: {sorted(lost)[:5]}"

    with gateway(config, HOTLINE_DATABASE_URL=database_url):
        for thread in clients.run([n for n in range(MAILS) if n not in clients.acked]):
            thread.join(timeout=120)
    assert len(clients.acked) == MAILS
    ids = stored(engine)
    assert sorted(ids) == sorted(f"crash-{n}@example.cn" for n in range(MAILS))
