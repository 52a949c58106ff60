"""The fault battery's citizens: mail, web forms, API letters, signed Twilio SMS and SMS to the
modem, sent concurrently; each client remembers what the gateway acknowledged, and retries
the rest as its medium would (a mail server after 451, a citizen after 503, Twilio after 5xx).

Every contact carries a tag in its text, so a letter is matched to what was sent by its
words, not by the key the gateway chose: a second letter for one contact shows as a double
even under another key.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import re
import smtplib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from typing import Literal

import httpx
from PIL import Image
from twilio.request_validator import RequestValidator

from benchmarks.battery_rig import Modem
from simulators.twilio import TwilioApi, TwilioCaller

Outcome = Literal["ack", "later", "down", "failed"]
TAG = re.compile(r"〔(\w+)〕")
TOKEN = re.compile(r'name="token" value="([^"]+)"')
NUMBER = re.compile(r'id="tracking-number">(\w+)<')
HOTLINE = "+862887654321"


def photo(n: int) -> bytes:
    """A small PNG of its own for contact ``n``."""
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (n % 251, n // 251 % 251, 77)).save(out, "PNG")
    return out.getvalue()


@dataclass
class Item:
    """One contact: what was sent, and what became of it."""

    channel: str
    tag: str
    text: str
    sender: str
    n: int
    digest: str | None = None  # the attachment's SHA-256
    key: str = ""  # the medium's own id when the client chooses it
    token: str = ""  # web: the form's signed token (its key), kept for a resend
    acked: bool = False
    number: str | None = None
    tries: int = 0


@dataclass
class Tally:
    """What a client saw: answers by kind (451, 503, 5xx...) beside its acknowledgements."""

    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # refused for good: never stored
    unexpected: list[str] = field(default_factory=list)  # a 5xx the medium's docs do not name


class Client:
    """One sender; ``send`` makes one attempt and says how it went."""

    channel = ""

    def __init__(self, label: str, base: str) -> None:
        self.label = label
        self.base = base
        self.tally = Tally()
        self.busy = False  # a request is on the wire (for "did the kill land on work")

    def make(self, n: int) -> Item:
        raise NotImplementedError

    def send(self, item: Item) -> Outcome:
        raise NotImplementedError

    def reset(self) -> None:
        """Drop a connection the gateway's death broke."""

    def close(self) -> None:
        self.reset()

    def text(self, n: int, what: str) -> tuple[str, str]:
        tag = f"{self.label}{self.channel[0].upper()}{n:06d}"
        return tag, f"〔{tag}〕{what}"


class Mail(Client):
    channel = "email"

    def __init__(self, label: str, port: int) -> None:
        super().__init__(label, "")
        self.port = port
        self.smtp: smtplib.SMTP | None = None
        self.raw: dict[str, bytes] = {}

    def make(self, n: int) -> Item:
        tag, text = self.text(n, f"翠屏区人民路{n}号的路灯坏了三天，晚上很黑，请尽快修理。")
        sender = f"citizen{n}@{self.label.lower()}.example.cn"
        m = EmailMessage()
        m["From"] = f"市民{n} <{sender}>"
        m["To"] = "12345@hotline.local"
        m["Subject"] = f"人民路{n}号路灯不亮"
        m["Message-ID"] = f"<battery-{tag}@example.cn>"
        m.set_content(text)
        image = photo(n)
        m.add_attachment(image, maintype="image", subtype="png", filename=f"现场{n}.png")
        item = Item(self.channel, tag, text, sender, n, hashlib.sha256(image).hexdigest())
        item.key = f"battery-{tag}@example.cn"
        self.raw[tag] = m.as_bytes(policy=SMTP)
        return item

    def send(self, item: Item) -> Outcome:
        try:
            if self.smtp is None:
                self.smtp = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
            smtp = self.smtp
            smtp.ehlo_or_helo_if_needed()
            code, reply = smtp.mail(item.sender)
            if code == 250:
                code, reply = smtp.rcpt("12345@hotline.local")
            if code == 250:
                code, reply = smtp.data(self.raw[item.tag])
        except (OSError, smtplib.SMTPException):
            self.reset()
            return "down"
        self.tally.answers[str(code)] += 1
        if code == 250:
            item.number = reply.decode().rsplit(" ", 1)[-1]
            return "ack"
        smtp.rset()
        if code // 100 == 4:
            return "later"
        self.tally.failures.append(f"{item.tag}: {code} {reply!r}")
        return "failed"

    def reset(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(OSError):
                self.smtp.close()
        self.smtp = None


class Http(Client):
    def __init__(self, label: str, base: str) -> None:
        super().__init__(label, base)
        self.http = httpx.Client(base_url=base, timeout=30)

    def answer(self, item: Item, response: httpx.Response, good: tuple[int, ...]) -> Outcome:
        code = response.status_code
        self.tally.answers[str(code)] += 1
        if code in good:
            return "ack"
        if code >= 500:
            # Retried, as a citizen, an integrator and Twilio would; only 503 is the
            # documented "try again" of the form and the API (Twilio retries any 5xx).
            if code != 503 and self.channel != "twilio":
                where = response.request.method + " " + response.request.url.path
                self.tally.unexpected.append(f"{item.tag}: {where} {code} {response.text[:200]!r}")
            return "later"
        self.tally.failures.append(f"{item.tag}: {code} {response.text[:200]!r}")
        return "failed"

    def close(self) -> None:
        self.http.close()


class WebForm(Http):
    channel = "web"

    def make(self, n: int) -> Item:
        tag, text = self.text(n, f"南溪区长江路{n}号小区门口占道经营，噪音很大，请处理。")
        image = photo(n + 500_000)
        return Item(self.channel, tag, text, f"139{n:08d}", n, hashlib.sha256(image).hexdigest())

    def send(self, item: Item) -> Outcome:
        try:
            if not item.token:  # a fresh form, as the citizen's browser loads it
                page = self.http.get("/")
                found = TOKEN.search(page.text)
                if page.status_code != 200 or not found:
                    return self.answer(item, page, ())
                item.token = found.group(1)
            data = {
                "token": item.token,
                "category": "complaint",
                "subject": "占道经营",
                "text": item.text,
                "name": "王小明",
                "phone": item.sender,
            }
            files = [("attachments", ("现场.png", photo(item.n + 500_000), "image/png"))]
            response = self.http.post("/letters", data=data, files=files)
        except httpx.HTTPError:
            return "down"
        outcome = self.answer(item, response, (200,))
        if outcome == "ack":
            found = NUMBER.search(response.text)
            if not found:
                self.tally.failures.append(f"{item.tag}: 200 without a tracking number")
                return "failed"
            item.number = found.group(1)
        return outcome


class ApiLetter(Http):
    channel = "api"

    def __init__(self, label: str, base: str, token: str) -> None:
        super().__init__(label, base)
        self.http.headers["Authorization"] = f"Bearer {token}"

    def make(self, n: int) -> Item:
        tag, text = self.text(n, f"叙州区金沙江大道{n}号工地夜间施工噪声扰民。")
        item = Item(self.channel, tag, text, f"137{n:08d}", n)
        item.key = f"battery-{tag}"
        return item

    def send(self, item: Item) -> Outcome:
        body = {
            "idempotency_key": item.key,
            "text": item.text,
            "subject": "夜间施工",
            "category": "complaint",
            "citizen": {"name": "李四", "phone": item.sender},
        }
        try:
            response = self.http.post("/api/v1/letters", json=body)
        except httpx.HTTPError:
            return "down"
        outcome = self.answer(item, response, (200, 201))
        if outcome == "ack":
            item.number = response.json()["tracking_number"]
        return outcome


class TwilioSms(Http):
    channel = "twilio"

    def __init__(self, label: str, base: str, api: TwilioApi) -> None:
        super().__init__(label, base)
        self.caller = TwilioCaller(api, base)
        self.validator = RequestValidator(api.auth_token)
        self.params: dict[str, dict[str, str]] = {}

    def make(self, n: int) -> Item:
        tag, text = self.text(n, f"江安县{n}路公交车晚点一小时。")
        item = Item(self.channel, tag, text, f"+86136{n:08d}", n)
        params = self.caller.sms_params(item.sender, HOTLINE, text)
        item.key = params["MessageSid"]
        self.params[tag] = params
        return item

    def send(self, item: Item) -> Outcome:
        params = self.params[item.tag]
        url = self.base + "/twilio/sms"
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        try:
            response = self.http.post("/twilio/sms", data=params, headers=headers)
        except httpx.HTTPError:
            return "down"
        return self.answer(item, response, (200,))


class ModemSms(Client):
    """A citizen's phone: the network puts the SMS on the SIM; "acknowledged" is the network
    taking it (the gateway's acknowledgement is the SIM deletion, checked at the end)."""

    channel = "gsm"

    def __init__(self, label: str, modem: Modem) -> None:
        super().__init__(label, "")
        self.modem = modem

    def make(self, n: int) -> Item:
        tag, text = self.text(n, f"高县{n}号井盖丢了。")
        return Item(self.channel, tag, text, f"+86139{n:08d}", n)

    def send(self, item: Item) -> Outcome:
        reply = self.modem("deliver_text", sender=item.sender, text=item.text)
        if reply["indexes"] or reply["pending"]:
            self.tally.answers["on SIM" if reply["indexes"] else "held by the network"] += 1
            return "ack"
        self.tally.failures.append(f"{item.tag}: the network refused it: {reply}")
        return "failed"


class Load:
    """Runs clients in threads: each sends new contacts (``pace`` seconds apart) and resends
    those not acknowledged; ``drain`` stops new ones and resends until all are taken."""

    def __init__(self, clients: list[Client], pace: dict[str, float], seed: int) -> None:
        self.clients = clients
        self.pace = pace
        self.items: list[Item] = []
        self.lock = threading.Lock()
        self.fresh = threading.Event()
        self.fresh.set()
        self.stopping = threading.Event()
        self.rng = random.Random(seed)
        self.counter = 0
        self.threads = [threading.Thread(target=self._run, args=(c,), daemon=True) for c in clients]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def in_flight(self) -> int:
        return sum(c.busy for c in self.clients)

    def _next(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def _run(self, client: Client) -> None:
        mine: list[Item] = []
        waiting: list[Item] = []  # not acknowledged yet: resent first
        while not self.stopping.is_set():
            if waiting:
                item = waiting.pop(0)
            elif self.fresh.is_set():
                item = client.make(self._next())
                mine.append(item)
                with self.lock:
                    self.items.append(item)
            else:
                self.stopping.wait(0.1)
                continue
            item.tries += 1
            client.busy = True
            try:
                outcome = client.send(item)
            except Exception as exc:  # a client bug must show, not end the thread
                client.tally.failures.append(f"{item.tag}: {exc!r}")
                outcome = "failed"
            finally:
                client.busy = False
            if outcome == "ack":
                item.acked = True
            elif outcome != "failed":
                waiting.append(item)
                # A refused or dead server: back off a little, as senders do.
                self.stopping.wait(0.2 if outcome == "down" else 0.5)
                continue
            gap = self.pace.get(client.channel, 0.0)
            if gap:
                self.stopping.wait(self.rng.uniform(0.5, 1.5) * gap)

    def pending(self) -> int:
        with self.lock:
            return sum(not i.acked for i in self.items)

    def drain(self, timeout: float) -> None:
        """No new contacts; resend until every one is acknowledged (or ``timeout``)."""
        self.fresh.clear()
        deadline = time.monotonic() + timeout
        while self.pending() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        for client in self.clients:
            client.close()

    def answers(self) -> dict[str, Counter[str]]:
        found: dict[str, Counter[str]] = {}
        for client in self.clients:
            found.setdefault(client.channel, Counter()).update(client.tally.answers)
        return found

    def failures(self) -> list[str]:
        return [f for c in self.clients for f in c.tally.failures]

    def unexpected(self) -> list[str]:
        """``<tag>: <status> <body>`` for each 5xx the medium's docs do not name."""
        return [u for c in self.clients for u in c.tally.unexpected]
