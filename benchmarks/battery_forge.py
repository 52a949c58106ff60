"""Forged Twilio webhooks for the fault battery: each kind is a request Twilio never sends,
built from a captured good one, and each must be refused (4xx) and store nothing.

The kinds follow what an attacker can do without the auth token: sign nothing, sign
wrongly, sign for another address or account, replay a captured request with its
parameters changed (which breaks the signature) or rearranged so that the signature holds
(Twilio signs names and values run together, so a value can swallow the next parameter:
channels/twilio/sids.py); and what a broken client sends: SIDs not of Twilio's shape and
bodies that are not a form.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

from benchmarks.battery_check import letters_by_tag, whole
from benchmarks.battery_load import TwilioSms
from benchmarks.battery_rig import counts, rig, say
from benchmarks.common import ratio

Params = dict[str, str]
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Request:
    kind: str
    method: str
    path: str
    body: bytes
    headers: dict[str, str]
    signature_holds: bool = False  # a rearrangement the signature cannot tell apart


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


class Forger:
    """Makes forged requests from captured good ones (``params`` as Twilio signed them)."""

    def __init__(self, base: str, token: str, rng: random.Random) -> None:
        self.base = base
        self.token = token
        self.validator = RequestValidator(token)
        self.rng = rng

    def sign(
        self, path: str, params: Params, url: str | None = None, token: str | None = None
    ) -> str:
        validator = RequestValidator(token) if token else self.validator
        signature: str = validator.compute_signature(url or self.base + path, params)
        return signature

    def form(
        self,
        kind: str,
        params: Params,
        signature: str | None,
        path: str = "/twilio/sms",
        **kw: bool,
    ) -> Request:
        headers = {"Content-Type": FORM}
        if signature is not None:
            headers["X-Twilio-Signature"] = signature
        return Request(kind, "POST", path, urlencode(params).encode(), headers, **kw)

    # -- signatures that are not ours ------------------------------------------------------

    def bad_signature(self, p: Params) -> Request:
        return self.form("bad-signature", p, base64.b64encode(secrets.token_bytes(20)).decode())

    def no_signature(self, p: Params) -> Request:
        return self.form("no-signature", p, None if self.rng.random() < 0.5 else "")

    def other_url(self, p: Params) -> Request:
        url = self.rng.choice(["https://attacker.example", "http://127.0.0.1:1"]) + "/twilio/sms"
        return self.form("other-url", p, self.sign("/twilio/sms", p, url=url))

    def other_token(self, p: Params) -> Request:
        return self.form("other-token", p, self.sign("/twilio/sms", p, token=secrets.token_hex(16)))

    def other_endpoint(self, p: Params) -> Request:
        """A good SMS request's signature presented to the voice or status webhook."""
        path = self.rng.choice(["/twilio/voice", "/twilio/status", "/twilio/voice/recorded"])
        return self.form("other-endpoint", p, self.sign("/twilio/sms", p), path=path)

    # -- a captured request, changed -------------------------------------------------------

    def altered(self, p: Params) -> Request:
        signature = self.sign("/twilio/sms", p)
        changed = dict(p)
        name = self.rng.choice(["Body", "From", "To", "NumMedia", "MediaUrl0"])
        changed[name] = {"NumMedia": "1", "MediaUrl0": "http://evil.example/x.jpg"}.get(
            name, p.get(name, "") + "。转账到6222020200112233445"
        )
        return self.form(f"altered-{name}", changed, signature)

    def new_sid(self, p: Params) -> Request:
        """Replayed as a new message: a fresh MessageSid under the captured signature."""
        signature = self.sign("/twilio/sms", p)
        sid = _sid("SM")
        return self.form(
            "replayed-new-sid",
            p | {"MessageSid": sid, "SmsSid": sid, "SmsMessageSid": sid},
            signature,
        )

    def wrong_account(self, p: Params) -> Request:
        return self.form(
            "wrong-account", p | {"AccountSid": _sid("AC")}, self.sign("/twilio/sms", p)
        )

    def swallowed(self, p: Params) -> Request:
        """A value swallows the next parameter: the signature holds, the SID is misshapen."""
        signature = self.sign("/twilio/sms", p)
        changed = dict(p)
        owner, eaten = self.rng.choice(
            [("MessageSid", "NumMedia"), ("AccountSid", "ApiVersion"), ("SmsSid", "SmsStatus")]
        )
        # Only a parameter that follows its swallower in the signed order can be eaten.
        order = sorted(changed)
        if order[order.index(owner) + 1] != eaten:
            owner, eaten = "MessageSid", "NumMedia"
        changed[owner] += eaten + changed.pop(eaten)
        return self.form(f"swallowed-into-{owner}", changed, signature, signature_holds=True)

    # -- what a broken client sends, signed with the true token ----------------------------

    def misshapen_sid(self, p: Params) -> Request:
        name, value = self.rng.choice(
            [
                ("MessageSid", "SM1"),
                ("MessageSid", _sid("CA")),
                ("MessageSid", _sid("SM")[:-1]),
                ("MessageSid", _sid("SM")[:-1] + "g"),
                ("MessageSid", _sid("SM") + "0"),
                ("MessageSid", "SM" + "../" * 10 + "etc/passwd"),
                ("MessageSid", _sid("SM") + "\x00"),
                ("AccountSid", ""),
                ("AccountSid", "AC" + "0" * 31),
                ("SmsSid", _sid("MG")),
                ("MessagingServiceSid", "MG" + "x" * 32),
            ]
        )
        changed = p | {name: value}
        return self.form(f"misshapen-{name}", changed, self.sign("/twilio/sms", changed))

    def missing(self, p: Params) -> Request:
        changed = dict(p)
        del changed[self.rng.choice(["From", "MessageSid", "AccountSid"])]
        return self.form("missing-parameter", changed, self.sign("/twilio/sms", changed))

    # -- not a form ------------------------------------------------------------------------

    def garbage(self, p: Params) -> Request:
        shape = self.rng.choice(["bytes", "json", "percent", "utf8", "fields", "huge", "multipart"])
        signature = base64.b64encode(secrets.token_bytes(20)).decode()
        headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
        body: bytes
        if shape == "bytes":
            body = secrets.token_bytes(self.rng.randint(1, 4096))
        elif shape == "json":
            body = json.dumps(p).encode()
            headers["Content-Type"] = "application/json"
        elif shape == "percent":
            body = b"Body=%ZZ%&From=%+86&MessageSid=%%" + b"&" * 50
        elif shape == "utf8":
            body = b"Body=\xff\xfe\xc3\x28&From=%2B8613800138000&MessageSid=" + _sid("SM").encode()
        elif shape == "fields":
            body = urlencode({f"f{i}": "x" for i in range(1000)}).encode()
        elif shape == "huge":
            body = urlencode(p | {"Body": "长" * 200_000}).encode()
        else:
            body = b'--x\r\nContent-Disposition: form-data; name="Body"\r\n\r\nhi\r\n--x'
            headers["Content-Type"] = "multipart/form-data; boundary=x"
        return Request(f"garbage-{shape}", "POST", "/twilio/sms", body, headers)

    def kinds(self) -> list[Callable[[Params], Request]]:
        return [
            self.bad_signature,
            self.no_signature,
            self.other_url,
            self.other_token,
            self.other_endpoint,
            self.altered,
            self.new_sid,
            self.wrong_account,
            self.swallowed,
            self.misshapen_sid,
            self.missing,
            self.foreign_account,
            self.garbage,
        ]

    def forge(self, captured: list[Params], count: int) -> list[Request]:
        kinds = self.kinds()
        return [kinds[i % len(kinds)](self.rng.choice(captured)) for i in range(count)]

    def good(self, params: Params) -> Request:
        return self.form("good", params, self.sign("/twilio/sms", params))

    def rearranged(self, p: Params) -> Request:
        """A value swallows the next parameter while every SID keeps its shape: the signature
        holds and nothing tells it from Twilio's retry of the captured message."""
        signature = self.sign("/twilio/sms", p)
        changed = dict(p)
        changed["ApiVersion"] += "Body" + changed.pop("Body")
        return self.form("rearranged", changed, signature, signature_holds=True)

    def foreign_account(self, p: Params) -> Request:
        """Signed with our token but naming another account (a subaccount's number, or one
        moved to another account still pointing here): refused with 403."""
        sid = _sid("SM")
        changed = p | {
            "AccountSid": _sid("AC"),
            "MessageSid": sid,
            "SmsSid": sid,
            "SmsMessageSid": sid,
        }
        return self.form("foreign-account", changed, self.sign("/twilio/sms", changed))


# -- 3. forged Twilio requests ----------------------------------------------------------------


def send_all(
    base: str, requests: list[Request], concurrency: int
) -> list[tuple[Request, int, float]]:
    """Each request once, over ``concurrency`` connections: (request, status, seconds);
    status 0 when no answer came."""
    results: list[tuple[Request, int, float]] = []
    lock = threading.Lock()
    queue = iter(requests)

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while True:
                with lock:
                    request = next(queue, None)
                if request is None:
                    return
                began = time.perf_counter()
                try:
                    code = client.request(
                        request.method, request.path, content=request.body, headers=request.headers
                    ).status_code
                except httpx.HTTPError:
                    code = 0
                spent = time.perf_counter() - began
                with lock:
                    results.append((request, code, spent))

    with ThreadPoolExecutor(concurrency) as pool:
        for _ in range(concurrency):
            pool.submit(worker)
    return results


def forged(args: argparse.Namespace, workdir: Path, rng: random.Random) -> list[str]:
    say(f"3. {args.forged:,} forged Twilio requests among {args.good} good ones")
    with rig("forged", workdir, modem=False, smtp=False, twilio=True) as r:
        assert r.twilio is not None
        sms = TwilioSms("F", r.base, r.twilio)
        goods = [sms.make(n) for n in range(args.good)]
        captured = [sms.params[item.tag] for item in goods]
        forger = Forger(r.base, r.twilio.auth_token, rng)
        requests = forger.forge(captured, args.forged) + [forger.good(p) for p in captured]
        rng.shuffle(requests)
        r.gateway.start()
        results = send_all(r.base, requests, args.concurrency)
        # Once the good ones are stored: captured requests rearranged so the signature holds.
        rearranged = send_all(r.base, [forger.rearranged(p) for p in captured], args.concurrency)
        found, _ = letters_by_tag(r.schema.engine)
        letters = r.letters()
        deaths = r.gateway.deaths()
        logged = len(r.gateway.log_lines("twilio.bad_")) + len(r.gateway.log_lines("twilio.other_"))
    sent_forged = [(q, code, t) for q, code, t in results if q.kind != "good"]
    sent_good = [(q, code, t) for q, code, t in results if q.kind == "good"]
    accepted = sum(1 for _, code, _ in sent_forged if 200 <= code < 300)
    fives = sum(1 for _, code, _ in results + rearranged if code >= 500 or code == 0)
    whole_goods = sum(1 for i in goods if i.tag in found and not whole(i, found[i.tag][0]))
    kinds: dict[str, Counter[int]] = {}
    for q, code, _ in sent_forged + rearranged:
        kinds.setdefault(q.kind, Counter())[code] += 1
    forged_rate = len(sent_forged) / sum(t for *_, t in sent_forged)
    good_rate = len(sent_good) / sum(t for *_, t in sent_good)
    say(
        f"  forged accepted: {accepted} (must be 0); letters beyond the good ones: "
        f"{letters - whole_goods}; 5xx or no answer: {fives}"
    )
    say(
        f"  good stored whole: {whole_goods} / {args.good} (answered 200: "
        f"{sum(1 for _, c, _ in sent_good if c == 200)}); refusals logged: {logged}; "
        f"channel deaths (log): {len(deaths)}"
    )
    say(
        f"  per connection, {args.concurrency} at once, interleaved: forged refused "
        f"{forged_rate:.0f}/s, good stored {good_rate:.0f}/s; refused/good = "
        f"{ratio(forged_rate, good_rate)}"
    )
    for kind, codes in sorted(kinds.items()):
        say(f"    {kind:32} {counts(codes)}")
    say(
        "    (rearranged: Body swallowed by ApiVersion, the signature holds and every SID keeps "
        "its shape: nothing tells it from Twilio's retry, 200 and no new letter)"
    )
    problems = []
    if accepted or letters != whole_goods:
        problems.append(f"forged: {accepted} accepted, {letters - whole_goods} stray letters")
    if fives or whole_goods != args.good or deaths:
        problems.append(
            f"forged: {fives} 5xx, {args.good - whole_goods} good lost, {len(deaths)} deaths"
        )
    return problems
