"""hotline serve, end to end: a mail arrives, is routed, and the integrator hears of it."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from tests.support.processes import free_port, gateway

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.changed = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.changed:
                    outer.received.append((dict(self.headers), body))
                    outer.changed.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int) -> list[dict[str, object]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.received) >= count, timeout=60)
        verifier = Webhook(SECRET)
        return [
            verifier.verify(body, {k.lower(): v for k, v in headers.items()})
            for headers, body in self.received
        ]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def test_a_mail_becomes_signed_created_and_assigned_webhooks(
    receiver: Receiver, tmp_path: Path
) -> None:
    smtp_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        f"http:\n  port: {free_port()}\n"
        f"channels:\n  smtp:\n    port: {smtp_port}\n  gsm:\n    enabled: false\n"
        "  sip:\n    enabled: false\n"
        "stt:\n  workers: 0\njobs:\n  poll_interval_seconds: 0.2\n"
        "routing:\n  departments:\n    - {code: city-admin, name: 市城市管理局}\n"
        "  rules:\n    - {department: city-admin, keywords: [路灯]}\n"
        "webhooks:\n  allowed_hosts: [127.0.0.1]\n  fanout_interval_seconds: 1\n"
        f"  endpoints:\n    - name: cases\n      url: http://127.0.0.1:{receiver.port}/hook\n"
        f"      secrets: [{SECRET}]\n",
        encoding="utf-8",
    )
    with gateway(config):
        mail = EmailMessage()
        mail["From"], mail["To"] = "张三 <zs@example.cn>", "12345@hotline.local"
        mail["Subject"], mail["Message-ID"] = "路灯坏了", "<hook-1@example.cn>"
        mail.set_content("翠屏区人民路的路灯坏了三天。")
        with smtplib.SMTP("127.0.0.1", smtp_port) as client:
            client.send_message(mail)
        events = receiver.wait_for(2)

    assert [e["type"] for e in events] == ["letter.created", "letter.assigned"]
    assert events[1]["data"]["department"] == "city-admin"  # type: ignore[index]
    assert "zs@example.cn" not in json.dumps(events, ensure_ascii=False)
