"""网上呼叫 against phone calls: the gateway's CPU per call for N browsers calling at once
through Kamailio's WebSocket and rtpengine, against N SIPp callers at once on the same
gateway, in one run.

    .venv/bin/python -m benchmarks.webcall [--calls 8] [--seconds 8]

Both kinds of call do the same: the menu, key 1, a message of about ``seconds`` s, hang up.
SIPp is the baseline: its calls reach the workers as plain RTP, so it does without the
WebSocket, DTLS-SRTP, ICE and rtpengine's relay that a web call needs, and should cost less.
The CPU counted is the gateway's whole process tree (hotline serve, the SIP workers,
Kamailio, rtpengine), sampled from /proc every second; the browsers and SIPp are not in it.
A call counts only once verified in the store: one letter per call of its channel, filed
under key 1, with a recording of at least ``seconds`` - 3 s in which speech is found.
Not a timed test: run by hand; the figures go to docs/channels/webrtc.md.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from benchmarks.queue_rig import Usage
from gateway.contract.config import load_config
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.channels.sip.test_serve import serve_config, wait_until
from tests.channels.sip.test_webcall import speech
from tests.conftest import PII
from tests.support.audio import RATE, voiced_frames, wav_audio
from tests.support.browser import FLAGS
from tests.support.processes import free_port, gateway
from tests.support.sipp import run_sipp, scenario

WORKERS = 4  # 16 calls at once


def config_for(root: Path) -> Path:
    sip = (
        f"    port: {free_port()}\n    workers: {WORKERS}\n    worker_base_port: {free_port()}\n"
        "    transports: [udp]\n"
        f"    webcall: {{enabled: true, ws_port: {free_port()},"
        f" rtpengine_ng_port: {free_port()}, rtp_port_min: 42000, rtp_port_max: 42999}}\n"
    )
    config = serve_config(root, sip)
    # The menu waits as long as it does for callers (6 s): the browsers press 1 in turn.
    text = (
        config.read_text(encoding="utf-8")
        .replace(
            "  voicemail: {silence_seconds: 3, min_seconds: 1, max_seconds: 30}\n",
            "  voicemail: {silence_seconds: 10, min_seconds: 1, max_seconds: 60}\n",
        )
        .replace("menu_timeout_seconds: 1\n", "menu_timeout_seconds: 6\n")
    )
    config.write_text(text, encoding="utf-8")
    return config


def verified(root: Path, config: Path, channel: str, least: float) -> tuple[int, float, int]:
    """(calls verified, seconds of message among them, letters that failed) for a channel."""
    engine = make_engine(load_config(config).database.url, pii=PII)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.scalars(
                select(Letter)
                .where(Letter.channel == channel)
                .options(selectinload(Letter.attachments))
            ).all()
            good, seconds = 0, 0.0
            for letter in rows:
                [attachment] = letter.attachments
                [path] = root.rglob(attachment.sha256)
                audio = wav_audio(path.read_bytes())
                length = len(audio) / RATE
                if letter.category == "complaint" and length >= least and voiced_frames(audio):
                    good += 1
                    seconds += length
                else:
                    print(f"{channel}: {letter.category}, {length:.1f} s, not verified")
            return good, seconds, len(rows) - good
    finally:
        engine.dispose()


def sipp_phase(front: str, calls: int, logs: Path) -> None:
    result = run_sipp(
        scenario("call_menu_voicemail_hangup"), front, calls=calls, concurrency=calls,
        rate=calls, timeout=120, log_dir=logs,
    )  # fmt: skip
    if not result.ok:
        print(f"SIPp: {result}")


def web_phase(site: str, calls: int, seconds: float, voice: Path) -> None:
    flags = [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    chromium = subprocess.run(["which", "chromium"], capture_output=True, text=True).stdout
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium.strip(), args=flags)
        try:
            pages = [browser.new_page(locale="zh-CN") for _ in range(calls)]
            for page in pages:
                page.goto(f"{site}/call")
                page.click("#call")
            for page in pages:
                page.wait_for_selector("#keypad:not([hidden])", timeout=30_000)
            time.sleep(1.0)
            for page in pages:
                page.click("#keypad button[data-key='1']")
            time.sleep(seconds)
            for page in pages:
                page.click("#hang-up")
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = config_for(root)
        settings = load_config(config)
        voice = root / "voice.wav"
        speech(voice)
        with gateway(config) as serve:
            serve.wait_for_line("sip.front", timeout=60)
            wait_until(lambda: sum("worker up" in line for line in serve.lines) >= WORKERS, 90)
            time.sleep(2)
            phases = {}
            front = f"127.0.0.1:{settings.channels.sip.port}"
            site = f"http://127.0.0.1:{settings.http.port}"
            for channel, run in (
                ("phone", lambda: sipp_phase(front, args.calls, root / "sipp")),
                ("webcall", lambda: web_phase(site, args.calls, args.seconds, voice)),
            ):
                started = time.monotonic()
                with Usage(serve.pid) as usage:
                    run()
                    time.sleep(3)  # the last letters stored
                elapsed = time.monotonic() - started
                least = 7.0 if channel == "phone" else args.seconds - 3
                good, message, failed = verified(root, config, channel, least)
                cpu = sum(usage.cores)  # one-second samples: core-seconds
                phases[channel] = (good, message, failed, cpu, elapsed, usage)
        for channel, (good, message, failed, cpu, elapsed, usage) in phases.items():
            per_call = cpu / good if good else float("nan")
            per_second = 1000 * cpu / message if message else float("nan")
            print(
                f"{channel:8} {good}/{args.calls} verified ({failed} failed), "
                f"{message:.0f} s of messages in {elapsed:.0f} s; gateway CPU {cpu:.1f} core-s: "
                f"{per_call:.2f} core-s per call, {per_second:.0f} ms per message second; "
                f"{usage.summary()}"
            )
        web, phone = phases["webcall"], phases["phone"]
        if web[0] and phone[0] and web[1] and phone[1]:
            ratio = (web[3] / web[1]) / (phone[3] / phone[1])
            print(f"web call CPU per message second: x{ratio:.2f} the SIPp call's")


if __name__ == "__main__":
    main()
