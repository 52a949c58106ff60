"""The citizens of benchmarks/mixed.py: mail (smtplib), SMS (the modem simulator), the web
form (httpx) and calls (SIPp leaving a voicemail), each at a steady rate whatever the
gateway's answers take (open loop), and the one 200-page fax."""

from __future__ import annotations

import random
import re
import smtplib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx

from benchmarks.mixed_rig import DISTRICTS, ModemControl
from tests.support.faxes import fax_tiff
from tests.support.sipp import SippResult, run_sipp, scenario

PHASE_DIGIT = {"preload": "0", "baseline": "1", "mixed": "2"}
ISSUES = (
    "路灯坏了三天，晚上很黑",
    "下水道堵塞，污水漫到路面",
    "夜间施工噪音很大，影响休息",
    "人行道上的井盖缺失，很危险",
    "垃圾清运不及时，气味难闻",
    "公交站牌被撞倒了无人处理",
    "小区门口占道经营严重",
    "自来水发黄，不能饮用",
    "共享单车乱停放堵住盲道",
    "餐馆油烟直排进居民楼",
    "红绿灯故障，路口拥堵",
    "物业擅自提高停车费",
)
STREETS = (
    "人民路",
    "南岸东路",
    "长江大道",
    "金沙江路",
    "蜀南大道",
    "莲花池街",
    "北大街",
    "冠英街",
    "大观楼街",
    "五粮液大道",
    "酒都路",
    "白沙湾路",
    "临港大道",
    "翠柏大道",
)
DETAILS = (
    "请尽快派人处理。",
    "已经反映过一次，还没有解决。",
    "老人孩子出行很不方便。",
    "希望有关部门重视。",
    "附近居民意见很大。",
    "麻烦尽快给个答复。",
    "昨天晚上开始出现的。",
    "周边商户也受到影响。",
)
PLACES = (
    "超市门口",
    "小学旁边",
    "菜市场后面",
    "公交站对面",
    "医院东门",
    "加油站附近",
    "桥下",
    "银行旁边",
    "公园北门",
    "地铁口",
)
TOKEN = re.compile(r'name="token" value="([^"]+)"')
TRACKING = re.compile(r'id="tracking-number">(\w+)<')
CALL_KEYS = {"menu_wait": "300", "record_wait": "1000"}
CALL_SCENARIO = "call_numbered_voicemail_hangup"
CALLS_AT_ONCE = 4  # one SIP worker holds 4 calls (pjsua2-python's PJSUA_MAX_CALLS)


@dataclass
class Sent:
    """One contact a citizen made, and what the gateway answered (wall-clock seconds)."""

    channel: str  # email, sms, web, phone, fax
    phase: str
    key: str  # Message-ID, sender number, tracking number or caller number
    text: str
    sent: float
    acked: float | None = None
    error: str | None = None


def letter_text(phase: str, n: int, channel: str) -> str:
    """Distinct letters of a busy morning, about a third alike enough (same district,
    similar words) to be linked as duplicates."""
    pick = random.Random(f"{phase}-{channel}-{n}")
    place = f"{pick.choice(DISTRICTS)}{pick.choice(STREETS)}{pick.choice(PLACES)}"
    return f"{place}{pick.choice(ISSUES)}。{pick.choice(DETAILS)}"


def number(prefix: str, phase: str, n: int) -> str:
    return f"{prefix}{PHASE_DIGIT[phase]}{n:07d}"


def send_mail(port: int, phase: str, n: int) -> Sent:
    ident = f"mixed-{phase}-{n}-{uuid.uuid4().hex[:8]}@bench.example.cn"
    text = letter_text(phase, n, "m")
    mail = EmailMessage()
    mail["From"] = f"市民{n} <citizen-{phase}-{n}@example.cn>"
    mail["To"], mail["Subject"] = "12345@hotline.local", "反映问题"
    mail["Message-ID"] = f"<{ident}>"
    mail.set_content(text)
    sent = Sent("email", phase, ident, text, time.time())
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
            client.send_message(mail)
        sent.acked = time.time()
    except (OSError, smtplib.SMTPException) as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:160]
    return sent


def send_sms(modem: ModemControl, phase: str, n: int) -> Sent:
    sender = "+86" + number("138", phase, n)
    text = letter_text(phase, n, "s")
    sent = Sent("sms", phase, sender, text, time.time())
    try:
        modem("deliver_text", sender=sender, text=text)
        sent.acked = time.time()  # on the SIM: the gateway's own answer is the AT+CMGD
    except (OSError, RuntimeError, ValueError) as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:160]
    return sent


def send_form(base: str, phase: str, n: int) -> Sent:
    text = letter_text(phase, n, "w")
    sent = Sent("web", phase, "", text, time.time())
    try:
        # A browser of its own: the form's token is bound to its cookie.
        with httpx.Client(base_url=base, timeout=120) as client:
            token = TOKEN.search(client.get("/").text)
            if token is None:
                raise ValueError("the form page has no token")
            sent.sent = time.time()  # the citizen presses "submit"
            page = client.post(
                "/letters",
                data={
                    "token": token.group(1),
                    "category": "complaint",
                    "subject": "反映问题",
                    "text": text,
                    "name": f"市民{n}",
                    "phone": number("139", phase, n),
                },
            )
        tracking = TRACKING.search(page.text)
        if page.status_code != 200 or tracking is None:
            raise ValueError(f"HTTP {page.status_code}: {page.text[:80]!r}")
        sent.key, sent.acked = tracking.group(1), time.time()
    except (httpx.HTTPError, ValueError) as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:160]
    return sent


def send_fax(port: int, pages: int) -> Sent:
    """One fax-to-email mail, a 1-bit 204x196 dpi multi-page TIFF, to the fax address."""
    texts = [f"第{p + 1}页：翠屏区人民路{p + 1}号的路灯坏了，请尽快修理。" for p in range(pages)]
    ident = f"fax-{uuid.uuid4().hex[:8]}@fax.example.cn"
    mail = EmailMessage()
    mail["From"], mail["To"] = "传真服务器 <fax@fax.example.cn>", "fax@hotline.local"
    mail["Subject"], mail["Message-ID"] = f"Fax from 0831-1234567, {pages} pages", f"<{ident}>"
    mail.set_content(f"Fax received: {pages} pages.")
    mail.add_attachment(fax_tiff(texts), maintype="image", subtype="tiff", filename="fax.tif")
    sent = Sent("fax", "mixed", ident, "", time.time())
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
            client.send_message(mail)
        sent.acked = time.time()
    except (OSError, smtplib.SMTPException) as exc:
        sent.error = f"{type(exc).__name__}: {exc}"[:160]
    return sent


@dataclass
class Rates:
    mail: float
    sms: float
    web: float
    calls: float  # 0: no calls

    def per_phase(self, seconds: float) -> dict[str, int]:
        counts = {"email": self.mail, "sms": self.sms, "web": self.web, "phone": self.calls}
        return {channel: round(rate * seconds) for channel, rate in counts.items()}


@dataclass
class Calls:
    """The phase's calls: one SIPp run at the call rate, each call from a number of its own."""

    numbers: list[str]
    result: SippResult | None = None
    error: str | None = None


@dataclass
class SteadyLoad:
    smtp_port: int
    web_base: str
    modem: ModemControl
    sip_target: str | None
    logs: Path
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, phase: str, rates: Rates, seconds: float) -> Calls:
        """Every channel at its rate for ``seconds``; returns once every answer is in."""
        counts = rates.per_phase(seconds)
        senders: dict[str, Callable[[int], Sent]] = {
            "email": lambda n: send_mail(self.smtp_port, phase, n),
            "sms": lambda n: send_sms(self.modem, phase, n),
            "web": lambda n: send_form(self.web_base, phase, n),
        }
        calls = Calls([number("137", phase, n) for n in range(counts["phone"])])
        caller = None
        if self.sip_target and calls.numbers:
            caller = threading.Thread(target=self._call, args=(phase, calls, rates.calls))
            caller.start()
        pacers = [
            threading.Thread(target=self._pace, args=(send, counts[channel], seconds))
            for channel, send in senders.items()
            if counts[channel]
        ]
        for t in pacers:
            t.start()
        for t in pacers:
            t.join()
        if caller is not None:
            caller.join()
        return calls

    def _pace(self, send: Callable[[int], Sent], count: int, seconds: float) -> None:
        # Open loop: the n-th contact starts at n * seconds / count whatever the earlier
        # ones are still waiting for, on a pool wide enough never to hold one back.
        with ThreadPoolExecutor(max_workers=32) as pool:
            began = time.monotonic()
            for n in range(count):
                time.sleep(max(0.0, began + n * seconds / count - time.monotonic()))
                pool.submit(self._keep, send, n)

    def _keep(self, send: Callable[[int], Sent], n: int) -> None:
        outcome = send(n)
        with self.lock:
            self.sent.append(outcome)

    def _call(self, phase: str, calls: Calls, rate: float) -> None:
        assert self.sip_target is not None
        logs = self.logs / f"sipp-{phase}"
        logs.mkdir(parents=True, exist_ok=True)
        callers = logs / "callers.csv"
        callers.write_text("SEQUENTIAL\n" + "".join(f"{n};\n" for n in calls.numbers))
        try:
            calls.result = run_sipp(
                scenario(CALL_SCENARIO), self.sip_target, calls=len(calls.numbers), rate=rate,
                concurrency=CALLS_AT_ONCE, keys=CALL_KEYS,
                timeout=len(calls.numbers) / rate + 90, log_dir=logs,
                extra_args=["-inf", str(callers)],
            )  # fmt: skip
        except (OSError, ValueError) as exc:
            calls.error = f"{type(exc).__name__}: {exc}"[:200]
