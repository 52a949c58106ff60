"""网上呼叫 end to end: Debian's chromium, its microphone an espeak-ng recording, calls from the
site's page through Kamailio's WebSocket and rtpengine to a pjsua2 worker, presses 1 on the
page's keypad, speaks and hangs up; the letter's audio must hold what it said."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import sync_playwright
from sqlalchemy import Engine, select
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from gateway.contract import call_tokens
from gateway.contract.config import Config, load_config
from gateway.engine.keys import load_secret
from store.db import make_engine, make_sessionmaker
from store.models import Letter
from tests.channels.sip.test_serve import serve_config, wait_until
from tests.conftest import PII, require_tool
from tests.support.audio import FRAME, RATE, wav_audio
from tests.support.axe import severe_violations
from tests.support.browser import FLAGS, screenshot
from tests.support.processes import Child, free_port, gateway

SPOKEN = "楼下路灯坏了，请尽快修理。"
OTHER = "今天天气很好，我们去公园散步吧。"


def webcall_config(root: Path) -> Path:
    """Two workers behind Kamailio with web calls on; only the site's own pages may open
    the WebSocket (their Origin)."""
    sip = (
        f"    port: {free_port()}\n    workers: 2\n    worker_base_port: {free_port()}\n"
        "    transports: [udp]\n    kamailio: {ping_interval_seconds: 1}\n"
        f"    webcall: {{enabled: true, ws_port: {free_port()}, allowed_origins: [SITE],"
        f" rtpengine_ng_port: {free_port()}, rtp_port_min: 40000, rtp_port_max: 40999}}\n"
    )
    config = serve_config(root, sip)
    text = config.read_text(encoding="utf-8")
    port = re.search(r"http:\n  port: (\d+)", text)
    assert port is not None
    text = text.replace("[SITE]", f'["http://127.0.0.1:{port[1]}"]').replace(
        "  voicemail: {silence_seconds: 3, min_seconds: 1, max_seconds: 30}\n",
        "  voicemail: {silence_seconds: 10, min_seconds: 1, max_seconds: 30}\n",
    )
    config.write_text(text, encoding="utf-8")
    return config


def speech(path: Path, words: str = SPOKEN) -> np.ndarray:
    """The citizen's words, spoken by espeak-ng, 8 kHz mono, with a second of silence
    after them (chromium plays the file in a loop as its microphone)."""
    espeak, sox = require_tool("espeak-ng"), require_tool("sox")
    raw = path.with_suffix(".raw.wav")
    subprocess.run([espeak, "-v", "cmn", "-s", "200", "-w", str(raw), words], check=True)
    subprocess.run(
        [sox, str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(path), "pad", "0", "1"],
        check=True,
    )
    return wav_audio(path.read_bytes())


def envelope(audio: np.ndarray) -> np.ndarray:
    """Loudness per 20 ms frame, in dB."""
    frames = audio[: len(audio) // FRAME * FRAME].astype(np.float64).reshape(-1, FRAME)
    return 20 * np.log10(np.sqrt((frames**2).mean(axis=1)) + 1.0)


def best_match(recorded: np.ndarray, spoken: np.ndarray) -> float:
    """How well the recording's loudness follows the words: chromium loops the file from
    the call's start, so the recording is matched against the loop at every offset, and the
    best correlation is kept."""
    heard = envelope(recorded)
    looped = np.tile(envelope(spoken), 2 + len(heard) // len(envelope(spoken)))
    return max(
        float(np.corrcoef(heard, looped[shift : shift + len(heard)])[0, 1])
        for shift in range(len(envelope(spoken)))
    )


@dataclass
class WebCallGateway:
    serve: Child
    config: Config
    engine: Engine
    root: Path

    @property
    def site(self) -> str:
        return f"http://127.0.0.1:{self.config.http.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.config.channels.sip.webcall.ws_port}"


@pytest.fixture(scope="module")
def webcall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebCallGateway]:
    require_tool("kamailio")
    require_tool("rtpengine")
    root = tmp_path_factory.mktemp("webcall")
    path = webcall_config(root)
    config = load_config(path)
    with gateway(path) as serve:
        serve.wait_for_line("sip.front", timeout=60)
        try:
            wait_until(lambda: sum("worker up" in line for line in serve.lines) >= 2, 120)
        except AssertionError:
            raise AssertionError("workers not up:\n" + "".join(serve.lines[-80:])) from None
        engine = make_engine(config.database.url, pii=PII)
        try:
            yield WebCallGateway(serve, config, engine, root)
        finally:
            engine.dispose()


@pytest.mark.realtime  # the audio compared: alone, as the other audio tests (Makefile)
@pytest.mark.timeout(240)
def test_a_browser_calls_presses_1_speaks_and_hangs_up_and_its_words_are_the_letter(
    webcall: WebCallGateway, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    voice = tmp_path / "voice.wav"
    spoken = speech(voice)
    flags = [
        *FLAGS,
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={voice}",
        "--autoplay-policy=no-user-gesture-required",
    ]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=flags)
        try:
            page = browser.new_page(locale="zh-CN")
            page.goto(f"{webcall.site}/call")
            assert severe_violations(page) == []
            page.fill("#phone", "138 0013 8000")
            page.click("#call")
            page.wait_for_selector("#keypad:not([hidden])", timeout=20_000)
            time.sleep(1.5)  # the menu's first prompt
            page.click("#keypad button[data-key='1']")
            time.sleep(8)  # the beep, then the citizen speaks (the file loops)
            screenshot(page, "webcall-talking")
            page.click("#hang-up")
            page.wait_for_selector("#call:not([hidden])", timeout=10_000)
            assert page.text_content("#status") == "通话已结束"
        finally:
            browser.close()

    [letter] = wait_for_letters(webcall, 1)
    assert (letter.channel, letter.source, letter.category) == ("webcall", "webcall", "complaint")
    # The number typed on the page, from the site's token; not the browser's SIP From.
    assert letter.citizen is not None and letter.citizen.phone == "+8613800138000"
    [attachment] = letter.attachments
    [path] = webcall.root.rglob(attachment.sha256)
    recorded = wav_audio(path.read_bytes())
    seconds = len(recorded) / RATE
    # Eight seconds on the line after the key: the beep, then the words, looped.
    assert 4 < seconds < 12, seconds
    match = best_match(recorded, spoken)
    # Other words do not match it as well: the comparison can fail.
    other = best_match(recorded, speech(tmp_path / "other.wav", OTHER))
    print(f"web call: {seconds:.1f} s recorded, envelope correlation {match:.2f} ({other:.2f})")
    assert match > 0.7 and other < match - 0.15, (match, other)


def test_a_web_invite_without_the_sites_token_is_refused_and_stores_nothing(
    webcall: WebCallGateway,
) -> None:
    """Straight to Kamailio's WebSocket, as a script would: no token, or one signed with
    another secret, and the worker refuses the call; nothing is stored for either."""
    before = len(wait_for_letters(webcall, None))
    forged = call_tokens.issue(b"not the site's secret", "13900000000")
    for headers in ([], [f"{call_tokens.HEADER}: {forged}"]):
        with ws_connect(webcall.ws, subprotocols=["sip"], origin=webcall.site) as ws:
            ws.send(invite(headers))
            assert final_status(ws) == 403
    assert webcall.serve.wait_for_line("sip.webcall_refused reason='bad signature'")
    assert "sip.webcall_refused reason='no token'" in "".join(webcall.serve.lines)
    time.sleep(1)
    assert len(wait_for_letters(webcall, None)) == before


def test_only_the_sites_own_pages_may_open_the_websocket(webcall: WebCallGateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        ws_connect(webcall.ws, subprotocols=["sip"], origin="http://evil.example")
    assert refused.value.response.status_code == 403
    with ws_connect(webcall.ws, subprotocols=["sip"], origin=webcall.site) as ws:
        assert ws.subprotocol == "sip"


def test_the_token_is_given_only_to_the_sites_page_and_checks_the_number(
    webcall: WebCallGateway,
) -> None:
    with httpx.Client(base_url=webcall.site) as client:
        page = client.get("/call")
        assert page.status_code == 200 and "网上呼叫" in page.text
        assert "connect-src 'self' ws: wss:" in page.headers["content-security-policy"]
        form = re.search(r'name="token" value="([^"]+)"', page.text)
        assert form is not None
        given = client.post("/call/token", data={"token": form[1], "phone": ""})
        assert given.status_code == 200, given.text
        ticket = call_tokens.check(load_secret(None, webcall.root / "var" / "web.secret"),
                                   given.json()["token"], 60)  # fmt: skip
        assert ticket.phone is None
        wrong = client.post("/call/token", data={"token": form[1], "phone": "12345"})
        assert wrong.status_code == 400
        assert wrong.json()["problem"] == "请填写正确的手机号码或带区号的固定电话。"
    # Another browser (no cookie) cannot use this page's form token.
    stranger = httpx.post(f"{webcall.site}/call/token", data={"token": form[1]})
    assert stranger.status_code == 400


def invite(headers: list[str], via: str = "", contact: str = "") -> str:
    """A browser-like INVITE over WebSocket (RFC 7118), with an offer rtpengine takes; or,
    given ``via`` and ``contact``, a trunk's over UDP."""
    tag, call_id = secrets.token_hex(4), secrets.token_hex(8)
    via = via or f"SIP/2.0/WS {tag}.invalid"
    contact = contact or f"sip:web@{tag}.invalid;transport=ws"
    sdp = (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
    lines = [
        "INVITE sip:12345@127.0.0.1 SIP/2.0",
        f"Via: {via};branch=z9hG4bK{call_id}",
        "Max-Forwards: 70",
        f"From: <sip:web@anonymous.invalid>;tag={tag}",
        "To: <sip:12345@127.0.0.1>",
        f"Call-ID: {call_id}",
        "CSeq: 1 INVITE",
        f"Contact: <{contact}>",
        *headers,
        "Content-Type: application/sdp",
        f"Content-Length: {len(sdp)}",
    ]
    return "\r\n".join(lines) + "\r\n\r\n" + sdp


def final_status(ws: ClientConnection) -> int:
    return int(final_answer(ws).split(" ", 2)[1])


def final_answer(ws: ClientConnection) -> str:
    while True:
        reply = str(ws.recv(timeout=30))
        if reply.startswith("SIP/2.0 ") and int(reply.split(" ", 2)[1]) >= 200:
            return reply


def site_token(webcall: WebCallGateway, phone: str = "") -> str:
    """A call token as the page gets one: the form's token, then POST /call/token."""
    with httpx.Client(base_url=webcall.site) as client:
        page = client.get("/call")
        form = re.search(r'name="token" value="([^"]+)"', page.text)
        assert form is not None
        given = client.post("/call/token", data={"token": form[1], "phone": phone})
        assert given.status_code == 200, given.text
        return str(given.json()["token"])


def test_a_token_places_one_call_and_no_more(webcall: WebCallGateway) -> None:
    """The site's token used twice: the first INVITE is answered by a worker, the second is
    refused by Kamailio before any worker sees it. Were a token good for two minutes of
    calls, a script could place a stream of them past the site's per-address limit."""
    token = site_token(webcall)
    refused = sum("sip.webcall_refused" in line for line in webcall.serve.lines)
    calls = sum("sip.call " in line for line in webcall.serve.lines)
    request = invite([f"{call_tokens.HEADER}: {token}"])
    via = re.search(r"Via: (SIP/2.0/WS [^;]+)", request)
    assert via is not None
    with ws_connect(webcall.ws, subprotocols=["sip"], origin=webcall.site) as ws:
        ws.send(request)
        answer = final_answer(ws)
        assert answer.startswith("SIP/2.0 200 "), answer
        for method in ("ACK", "BYE"):
            ws.send(in_dialog(method, request, answer, via[1]))
        assert final_answer(ws).startswith("SIP/2.0 200 ")  # the BYE's
    with ws_connect(webcall.ws, subprotocols=["sip"], origin=webcall.site) as ws:
        ws.send(invite([f"{call_tokens.HEADER}: {token}"]))
        assert final_status(ws) == 403
    webcall.serve.wait_for_line("web call token used again")
    assert sum("sip.call " in line for line in webcall.serve.lines) == calls + 1
    assert sum("sip.webcall_refused" in line for line in webcall.serve.lines) == refused


def wait_for_letters(webcall: WebCallGateway, count: int | None) -> list[Letter]:
    """The letters stored, once there are ``count`` (None: as they are now)."""
    until = time.monotonic() + 30
    while True:
        with make_sessionmaker(webcall.engine)() as session:
            rows = list(session.scalars(select(Letter).order_by(Letter.id)))
            for row in rows:
                _ = row.attachments, row.citizen
        if count is None or len(rows) >= count or time.monotonic() > until:
            assert count is None or len(rows) == count, "".join(webcall.serve.lines[-60:])
            return rows
        time.sleep(0.3)


def test_a_trunk_cannot_pass_its_call_off_as_a_web_call(webcall: WebCallGateway) -> None:
    """X-Hotline-Web is Kamailio's word alone: a trunk's INVITE carrying it has it removed
    and is answered as the phone call it is (were it believed, the worker would refuse the
    call for want of a token)."""
    sip = webcall.config.channels.sip
    headers = ["X-Hotline-Web: 1"]
    refused = sum("sip.webcall_refused" in line for line in webcall.serve.lines)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(10)
        here = f"127.0.0.1:{udp.getsockname()[1]}"
        request = invite(headers, via=f"SIP/2.0/UDP {here};rport", contact=f"sip:trunk@{here}")
        udp.sendto(request.encode(), ("127.0.0.1", sip.port))
        answer = ""
        while not answer.startswith("SIP/2.0 2") and not answer.startswith("SIP/2.0 4"):
            answer = udp.recv(65535).decode()
        assert answer.startswith("SIP/2.0 200 "), answer
        via = f"SIP/2.0/UDP {here};rport"
        for method in ("ACK", "BYE"):  # the call ends at once, by its route set
            udp.sendto(in_dialog(method, request, answer, via).encode(), ("127.0.0.1", sip.port))
    assert sum("sip.webcall_refused" in line for line in webcall.serve.lines) == refused


def in_dialog(method: str, request: str, answer: str, via: str) -> str:
    """ACK or BYE of the call ``answer`` took, through Kamailio (RFC 3261 12.2.1.1)."""

    def header(message: str, name: str) -> list[str]:
        return [
            line.split(":", 1)[1].strip()
            for line in message.split("\r\n")
            if line.lower().startswith(name.lower() + ":")
        ]

    routes = [r for value in reversed(header(answer, "Record-Route")) for r in value.split(",")]
    [target] = header(answer, "Contact")
    cseq = "1 ACK" if method == "ACK" else "2 BYE"
    lines = [
        f"{method} {target.strip('<>')} SIP/2.0",
        f"Via: {via};branch=z9hG4bK{secrets.token_hex(6)}",
        "Max-Forwards: 70",
        f"From: {header(request, 'From')[0]}",
        f"To: {header(answer, 'To')[0]}",
        f"Call-ID: {header(request, 'Call-ID')[0]}",
        f"CSeq: {cseq}",
        *(f"Route: {route.strip()}" for route in routes),
        "Content-Length: 0",
    ]
    return "\r\n".join(lines) + "\r\n\r\n"


def test_an_address_asking_too_often_is_told_to_wait(webcall: WebCallGateway) -> None:
    """calls_per_ip_per_hour (20) tokens, then 429 with words for the citizen; another
    address is not held back by it."""
    asking = {"X-Forwarded-For": "203.0.113.7"}
    with httpx.Client(base_url=webcall.site, headers=asking) as client:
        page = client.get("/call")
        form = re.search(r'name="token" value="([^"]+)"', page.text)
        assert form is not None
        statuses = [
            client.post("/call/token", data={"token": form[1]}).status_code for _ in range(21)
        ]
        refused = client.post("/call/token", data={"token": form[1]})
        other = client.post(
            "/call/token", data={"token": form[1]}, headers={"X-Forwarded-For": "203.0.113.8"}
        )
    assert statuses == [200] * 20 + [429]
    assert refused.status_code == 429
    assert refused.json()["problem"] == "呼叫过于频繁，请稍后再试，或拨打12345热线电话。"
    assert other.status_code == 200


def test_without_rtpengine_serve_runs_without_web_calls_and_says_why(tmp_path: Path) -> None:
    require_tool("kamailio")
    config = webcall_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    missing = "webcall: {enabled: true, rtpengine_binary: no-such-rtpengine,"
    config.write_text(text.replace("webcall: {enabled: true,", missing), encoding="utf-8")
    settings = load_config(config)
    with gateway(config) as serve:
        said = serve.wait_for_line("sip.webcall.off", timeout=60)
        assert "missing Debian packages: rtpengine-daemon" in said
        serve.wait_for_line("sip.front", timeout=60)
        # Healthy once its workers answer: nothing is down for the missing part.
        healthz = f"http://127.0.0.1:{settings.http.port}/healthz"
        wait_until(lambda: httpx.get(healthz, timeout=10).status_code == 200, 60)
        assert "rtpengine" not in httpx.get(healthz, timeout=10).json()["parts"]
        # Kamailio listens for calls but not on the WebSocket.
        with pytest.raises(OSError):
            ws_connect(f"ws://127.0.0.1:{settings.channels.sip.webcall.ws_port}", open_timeout=3)


def test_a_killed_rtpengine_is_started_again_and_carries_the_next_call(
    webcall: WebCallGateway,
) -> None:
    def started() -> list[int]:
        return [
            int(found[1])
            for line in webcall.serve.lines
            if (found := re.search(r"rtpengine.started pid=(\d+)", line))
        ]

    os.kill(started()[-1], signal.SIGKILL)
    webcall.serve.wait_for_line("rtpengine.died")
    wait_until(lambda: len(set(started())) >= 2, 30)
    health = httpx.get(f"{webcall.site}/healthz", timeout=10).json()
    assert health["parts"]["rtpengine"] == "ok", health
    # Kamailio hands the next call's media to the new rtpengine: the worker answers it (403
    # for the forged token), where a missing relay would be Kamailio's 503.
    forged = call_tokens.issue(b"not the site's secret", None)
    with ws_connect(webcall.ws, subprotocols=["sip"], origin=webcall.site) as ws:
        ws.send(invite([f"{call_tokens.HEADER}: {forged}"]))
        assert final_status(ws) == 403
