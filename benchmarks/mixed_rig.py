"""What benchmarks/mixed.py stands up around a real `hotline serve`: its config, the slow
webhook receiver, the modem simulator's control socket and the /metrics poller."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import free_port

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ENDPOINT = "slow"
DISTRICTS = (
    "翠屏区",
    "叙州区",
    "南溪区",
    "江安县",
    "长宁县",
    "高县",
    "珙县",
    "筠连县",
    "兴文县",
    "屏山县",
    "临港区",
    "三江新区",
)
LANES = ("route", "notify", "ocr", "media", "transcribe")
PROMPT_SECONDS = 0.3


@dataclass(frozen=True)
class Ports:
    http: int
    smtp: int
    modem_control: int
    sip: int | None


def write_config(root: Path, ports: Ports, receiver: int, fax_pages: int) -> Path:
    """The default lanes and jobs settings; only what a benchmark must open is opened: no
    rate limits on the form, a fax limit that lets the fax in, a webhook endpoint."""
    departments = "".join(
        f"    - {{code: d{n}, name: {name}城管局}}\n" for n, name in enumerate(DISTRICTS)
    )
    rules = "".join(
        f"    - {{department: d{n}, districts: [{name}]}}\n" for n, name in enumerate(DISTRICTS)
    )
    sip = "  sip:\n    enabled: false\n"
    ivr = ""
    if ports.sip is not None:
        prompts = short_prompts(root / "prompts")
        sip = f"  sip:\n    port: {ports.sip}\n    prompts_dir: {prompts}\n"
        ivr = (
            "ivr:\n  menu_timeout_seconds: 1\n  no_input_repeats: 1\n"
            "  voicemail: {silence_seconds: 3, min_seconds: 1, max_seconds: 30}\n"
        )
    text = (
        f"http:\n  port: {ports.http}\n"
        "channels:\n"
        f"  smtp:\n    port: {ports.smtp}\n"
        f"    fax:\n      limits: {{max_pages: {max(fax_pages, 100)}}}\n"
        f"  gsm:\n    simulator_control: 127.0.0.1:{ports.modem_control}\n"
        "  web:\n    min_fill_seconds: 0\n"
        "    letters_per_ip_per_hour: 1000000\n    letters_per_phone_per_day: 1000000\n"
        f"{sip}"
        "stt:\n  workers: 0\n"
        "routing:\n"
        f"  districts: [{', '.join(DISTRICTS)}]\n"
        f"  departments:\n{departments}    - {{code: centre, name: 市12345热线}}\n"
        f"  rules:\n{rules}    - {{department: centre}}\n"
        "webhooks:\n  allowed_hosts: [127.0.0.1]\n"
        f"  endpoints:\n    - name: {ENDPOINT}\n"
        f"      url: http://127.0.0.1:{receiver}/hook\n      secrets: [{SECRET}]\n"
        f"{ivr}"
    )
    path = root / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def short_prompts(directory: Path) -> Path:
    """A short tone per prompt (sox), so that a call leaves its voicemail in seconds."""
    from ivr.menu import Prompts

    directory.mkdir(parents=True, exist_ok=True)
    for name in [*Prompts.model_fields, "beep"]:
        subprocess.run(
            ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(directory / f"{name}.wav"),
             "synth", str(PROMPT_SECONDS), "sine", "600"],
            check=True,
        )  # fmt: skip
    return directory


def choose_ports(calls: bool) -> Ports:
    return Ports(free_port(), free_port(), free_port(), free_port() if calls else None)


class SlowReceiver:
    """The integrator's webhook endpoint: 410 Gone while ``gone`` (the gateway disables the
    endpoint and owes it everything from then on), afterwards each request answered after
    ``delay`` seconds, every ``fail_every``-th with 503 instead of 204."""

    def __init__(self, delay: float = 1.0, fail_every: int = 5) -> None:
        self.gone = True
        self.delay, self.fail_every = delay, fail_every
        self.answers: Counter[int] = Counter()
        self.delivered: set[str] = set()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = outer.answer(self.headers.get("webhook-id", ""))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, webhook_id: str) -> int:
        if self.gone:
            status = 410
        else:
            time.sleep(self.delay)  # the slow integrator, on this request's own thread
            with self.lock:
                n = sum(self.answers.values()) + 1
            status = 503 if self.fail_every and n % self.fail_every == 0 else 204
        with self.lock:
            self.answers[status] += 1
            if status == 204:
                self.delivered.add(webhook_id)
        return status

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class ModemControl:
    """The simulated modem's JSON-lines control socket (simulators/modem/control.py)."""

    def __init__(self, port: int) -> None:
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.replies = self.socket.makefile("r", encoding="utf-8")
        self.lock = threading.Lock()

    def __call__(self, op: str, **fields: Any) -> dict[str, Any]:
        with self.lock:
            self.socket.sendall((json.dumps({"op": op, **fields}) + "\n").encode())
            reply: dict[str, Any] = json.loads(self.replies.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"modem simulator refused {op}: {reply.get('error')}")
        return reply

    def close(self) -> None:
        self.replies.close()
        self.socket.close()


@dataclass
class Sample:
    at: float  # seconds since the run began
    phase: str
    jobs: dict[tuple[str, str], float]  # (lane, status) -> count
    oldest: dict[str, float]  # lane -> seconds the oldest due job has waited


@dataclass
class MetricsPoller:
    """Reads /metrics every ``interval`` seconds on its own thread until stopped."""

    url: str
    interval: float
    began: float
    phase: str = "start"
    samples: list[Sample] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while True:
                self.read(client)
                if self.stop.wait(self.interval):
                    return

    def read(self, client: httpx.Client) -> Sample | None:
        try:
            page = client.get(self.url).text
        except httpx.HTTPError as exc:
            self.errors[type(exc).__name__] += 1
            return None
        sample = Sample(time.monotonic() - self.began, self.phase, {}, {})
        for family in text_string_to_metric_families(page):
            for s in family.samples:
                if s.name == "hotline_jobs":
                    sample.jobs[s.labels["lane"], s.labels["status"]] = s.value
                elif s.name == "hotline_jobs_oldest_due_seconds":
                    sample.oldest[s.labels["lane"]] = s.value
        self.samples.append(sample)
        return sample

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(timeout=30)
