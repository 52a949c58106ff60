"""The operator's softphone: a seat answers from the call desk in the browser. Two Debian
chromiums, each with its own espeak-ng microphone: the operator signs in and opens the desk
(its page registers the seat over Kamailio's WebSocket), a citizen calls from the site's
page and presses 9, the queue rings the desk, the operator answers there, and each page
hears the other: the loudness of what each page plays is measured."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from sqlalchemy import Engine, select

from gateway.contract.config import load_config
from store.db import make_sessionmaker
from store.models import Letter, QueuedCall
from tests.channels.sip.test_queue_calls import add_seats, open_store, queue_config
from tests.channels.sip.test_serve import wait_until
from tests.channels.sip.test_webcall import speech
from tests.conftest import require_tool
from tests.support.browser import FLAGS, screenshot
from tests.support.processes import free_port, gateway

OPERATOR_PASSWORD = "Pw-long-enough-1"  # add_seats' console users
WAIT_MS = 20_000
# What a page hears, as WebAudio measures it: the RMS of the played stream over 3 s.
HEARD = """async (selector) => {
  const stream = document.querySelector(selector).srcObject;
  const context = new AudioContext();
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  context.createMediaStreamSource(stream).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  let loudest = 0, total = 0, count = 0;
  const until = performance.now() + 3000;
  while (performance.now() < until) {
    await new Promise((done) => setTimeout(done, 50));
    analyser.getFloatTimeDomainData(samples);
    let energy = 0;
    for (const v of samples) energy += v * v;
    const rms = Math.sqrt(energy / samples.length);
    total += rms; count += 1; loudest = Math.max(loudest, rms);
  }
  await context.close();
  return { mean: total / count, loudest: loudest };
}"""
# Speech at the level espeak-ng speaks, through G.711 and back: well above -40 dBFS.
SPEECH_RMS = 0.01


def seat_config(root: Path) -> Path:
    config = queue_config(root)
    text = config.read_text(encoding="utf-8")
    old = "    kamailio: {ping_interval_seconds: 1}\n"
    assert old in text
    webcall = (
        f"    webcall: {{enabled: true, ws_port: {free_port()},"
        f" rtpengine_ng_port: {free_port()}, rtp_port_min: 41000, rtp_port_max: 41999}}\n"
    )
    config.write_text(text.replace(old, old + webcall), encoding="utf-8")
    return config


def browser_speaking(playwright: Playwright, voice: Path) -> Browser:
    return playwright.chromium.launch(
        executable_path=require_tool("chromium"),
        args=[
            *FLAGS,
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={voice}",
            "--autoplay-policy=no-user-gesture-required",
        ],
    )


def state(page: Page) -> str:
    return page.inner_text("#softphone-state")


@pytest.mark.realtime  # the audio measured: alone, as the other audio tests (Makefile)
@pytest.mark.timeout(300)
def test_an_operator_answers_a_web_caller_on_the_desks_softphone_and_both_hear_each_other(
    tmp_path: Path, engine_of: list[Engine]
) -> None:
    require_tool("kamailio")
    require_tool("rtpengine")
    citizen_voice, operator_voice = tmp_path / "citizen.wav", tmp_path / "operator.wav"
    speech(citizen_voice, "我想反映一下小区噪音的问题。")
    speech(operator_voice, "您好，这里是一二三四五热线，请讲。")
    path = seat_config(tmp_path)
    site = f"http://127.0.0.1:{load_config(path).http.port}"
    with gateway(path) as serve, sync_playwright() as playwright:
        serve.wait_for_line("sip.front", timeout=60)
        wait_until(lambda: sum("worker up" in line for line in serve.lines) >= 2, 60)
        engine = open_store(path, engine_of)
        add_seats(engine, "zhang")  # seat 1001, signed in

        operator_browser = browser_speaking(playwright, operator_voice)
        citizen_browser = browser_speaking(playwright, citizen_voice)
        try:
            desk = operator_browser.new_page(locale="zh-CN")
            desk.goto(f"{site}/console/")
            desk.fill("input[name=username]", "zhang")
            desk.fill("input[name=password]", OPERATOR_PASSWORD)
            desk.click("button[type=submit]")
            desk.wait_for_selector("form.who")
            desk.goto(f"{site}/console/desk")
            desk.wait_for_selector("#softphone[data-state='话机已注册，等待来电']", timeout=WAIT_MS)
            # Kamailio's own word, as the desk's stream brings it.
            desk.wait_for_selector("#seat-phone:text-is('已注册')", timeout=WAIT_MS)

            caller = citizen_browser.new_page(locale="zh-CN")
            caller.goto(f"{site}/call")
            caller.fill("#phone", "13912345678")
            caller.click("#call")
            caller.wait_for_selector("#keypad:not([hidden])", timeout=WAIT_MS)
            time.sleep(1.0)
            caller.click("#keypad button[data-key='9']")

            desk.wait_for_selector("#softphone[data-state='来电振铃，请接听']", timeout=WAIT_MS)
            desk.click("#softphone-answer")
            desk.wait_for_selector("#softphone[data-state='通话中']", timeout=WAIT_MS)
            desk.wait_for_selector("#call.talking", timeout=WAIT_MS)  # the screen pop
            time.sleep(1.0)
            operator_heard = desk.evaluate(HEARD, "#softphone-audio")
            citizen_heard = caller.evaluate(HEARD, "#remote")
            screenshot(desk, "webcall-desk-talking")
            number = desk.inner_text("#call-letter")
            assert desk.inner_text("#caller") == "139****5678"
            print(f"\noperator heard {operator_heard}, citizen heard {citizen_heard}")
            assert operator_heard["mean"] > SPEECH_RMS, operator_heard
            assert citizen_heard["mean"] > SPEECH_RMS, citizen_heard

            caller.click("#hang-up")
            desk.wait_for_selector("#softphone[data-state='通话已结束，等待来电']", timeout=WAIT_MS)
        finally:
            citizen_browser.close()
            operator_browser.close()

        # The call's letter, stored when the seat answered, is the web call's and the queue's.
        with make_sessionmaker(engine)() as session:
            [letter] = session.scalars(select(Letter)).all()
            assert (letter.channel, letter.tracking_number) == ("webcall", number)
            assert letter.citizen is not None and letter.citizen.phone == "+8613912345678"
            key = letter.external_id
        wait_until(lambda: queued(engine).ended_at is not None)
        call = queued(engine)
        assert (call.call_id, call.seat, call.outcome) == (key, "1001", "answered")


def queued(engine: Engine) -> QueuedCall:
    with make_sessionmaker(engine)() as session:
        return session.scalars(select(QueuedCall)).one()
