"""Two `hotline serve` nodes on one PostgreSQL, one killed with -9 mid-load: nothing
acknowledged is lost, nothing is stored or routed twice, and the jobs the dead node held are
finished by the other once their leases end."""

from __future__ import annotations

import asyncio
import email
import hashlib
import mailbox
import os
import signal
import smtplib
import socket
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import httpx
import pytest
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import Envelope
from sqlalchemy import Engine, select

from gateway.contract.kinds import DELIVER, ROUTE
from store.models import Event, Job, Letter, OutboxMessage
from tests.support.processes import Child, free_port, gateway

MAILS = 80  # and as many letters through the API, half to each node to begin with
BOTH = 10  # mails delivered to both nodes at once (a sender trying its second MX too)
KILL_AFTER = 50  # node A dies once it has acknowledged this many contacts
LEASE = 5.0  # short, for a test; above any job here even on a loaded machine
TOKEN = "partner-token-for-two-nodes"
RECIPIENT_CHECK_SECONDS = 0.1
# Routing's outcomes (gateway/core/workflow/screening.py `process`); this config has no
# departments, so a letter is left in triage, or rejected, or linked as a duplicate: one
# event each.
OUTCOMES = ("triage", "rejected", "duplicate", "assigned")


class CheckingRelay(Mailbox):
    """The relay process's handler (``aiosmtpd -c``): each recipient takes a moment to
    check, as a relay's lookups do, so a node's notify workers are mid-send when it dies;
    every mail taken is kept in a Maildir."""

    async def handle_RCPT(
        self, server: object, session: object, envelope: Envelope, address: str, options: object
    ) -> str:
        await asyncio.sleep(RECIPIENT_CHECK_SECONDS)
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Relay:
    """The outgoing mail relay, a process of its own as a real one is."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        listen = ["-n", "-d", "-l", f"127.0.0.1:{self.port}"]  # -d: says when it listens
        keep = ["-c", f"{__name__}.{CheckingRelay.__name__}", str(folder)]
        self.child = Child([sys.executable, "-m", "aiosmtpd", *listen, *keep], dict(os.environ))
        self.child.wait_for_line("Server is listening")

    def received(self) -> list[tuple[str, str, str]]:
        """(Message-ID, To, body) of every mail it took."""
        box = mailbox.Maildir(self.folder, create=False)
        # A Maildir iterates over its messages; the bytes, parsed as they were sent, by key.
        keys = list(box.iterkeys())
        mails = [email.message_from_bytes(box.get_bytes(key), policy=default) for key in keys]
        return [(m["Message-ID"], m["To"], m.get_body(("plain",)).get_content()) for m in mails]

    def count(self) -> int:
        return len(mailbox.Maildir(self.folder, create=False))


@dataclass
class Node:
    """One `hotline serve` with its own listeners."""

    name: str
    http: int
    smtp: int
    child: Child | None = None

    @property
    def worker(self) -> str:
        """The name its job lanes claim under (gateway.engine.workers.JobRunner)."""
        assert self.child is not None
        return f"{socket.gethostname()}:{self.child.pid}"


def write_config(folder: Path, node: Node, relay: int, attachments: Path) -> Path:
    """A node as docs/operations.md "Several nodes" describes it: its own ports and spool
    (var/ beside its config), the attachments folder of all nodes, the database URL and the
    PII keys from the environment (HOTLINE_DATABASE_URL, HOTLINE_PII_KEYS). Leases short
    enough for a test; no job here runs for more than a fraction of one."""
    folder.mkdir()
    path = folder / "config.yaml"
    path.write_text(
        f"""
http: {{port: {node.http}}}
storage:
  attachments_dir: {attachments}
  spool_drain_interval_seconds: 0.5
logging: {{format: json}}
channels:
  smtp: {{port: {node.smtp}}}
  gsm: {{enabled: false}}
  sip: {{enabled: false}}
outgoing_mail: {{enabled: true, port: {relay}, timeout_seconds: 10}}
stt: {{enabled: false}}
ocr: {{enabled: false}}
jobs: {{lease_seconds: {LEASE}, poll_interval_seconds: 0.2, backoff_seconds: 0.5}}
api:
  tokens:
    - {{name: partner, sha256: {hashlib.sha256(TOKEN.encode()).hexdigest()}, scopes: [write]}}
""",
        encoding="utf-8",
    )
    return path


def mail_text(n: int) -> str:
    return f"第{n}封来信：人民路{n}号门前的井盖松动了，车一过就响，请派人来看看。"


def message(n: int) -> bytes:
    m = EmailMessage()
    m["From"] = f"市民{n} <citizen{n}@example.cn>"
    m["To"] = "12345@hotline.local"
    m["Subject"] = f"第{n}封来信"
    m["Message-ID"] = f"<nodes-{n}@example.cn>"
    m.set_content(mail_text(n))
    return m.as_bytes(policy=SMTP)


def api_text(n: int) -> str:
    return f"合作渠道第{n}件：幸福小区{n}栋楼下的垃圾三天没人清运。"


def stored_as(kind: str, n: int) -> tuple[str, str]:
    """The (source, external_id) a contact is stored under."""
    return ("smtp", f"nodes-{n}@example.cn") if kind == "mail" else ("api:partner", f"partner-{n}")


@dataclass
class Load:
    """Clients of both nodes: what each contact was acknowledged with, and by which node."""

    nodes: dict[str, Node]
    dead: set[str] = field(default_factory=set)
    acks: list[tuple[str, int, str, str]] = field(default_factory=list)  # kind, n, number, node
    changed: threading.Condition = field(default_factory=threading.Condition)

    def ack(self, kind: str, n: int, number: str, node: str) -> None:
        with self.changed:
            self.acks.append((kind, n, number, node))
            self.changed.notify_all()

    def acked_by(self, node: str) -> int:
        return sum(1 for *_, by in self.acks if by == node)

    def fail_over(self, node: str, error: Exception) -> str:
        """A sender whose node stopped answering turns to the other one (its second MX,
        the balancer's other backend); a failure of a live node fails the test."""
        if node not in self.dead:
            raise AssertionError(f"node {node} failed while alive") from error
        return next(other for other in self.nodes if other != node)

    def mails(self, numbers: list[int], node: str) -> None:
        pending = list(numbers)
        while pending:
            try:
                with smtplib.SMTP("127.0.0.1", self.nodes[node].smtp, timeout=30) as client:
                    client.ehlo()
                    while pending:
                        n = pending[0]
                        client.mail(f"citizen{n}@example.cn")
                        client.rcpt("12345@hotline.local")
                        code, reply = client.data(message(n))
                        assert code == 250, (code, reply)
                        self.ack("mail", n, reply.decode().split()[-1], node)
                        pending.pop(0)
            except (OSError, smtplib.SMTPException) as exc:
                node = self.fail_over(node, exc)

    def letters(self, numbers: list[int], node: str) -> None:
        auth = {"Authorization": f"Bearer {TOKEN}"}
        with httpx.Client(headers=auth, timeout=30) as client:
            for n in numbers:
                node = self.letter(client, n, node)

    def letter(self, client: httpx.Client, n: int, node: str) -> str:
        """Post letter n until a node takes it; the node that did."""
        body = {"idempotency_key": f"partner-{n}", "subject": "垃圾清运", "text": api_text(n)}
        while True:
            url = f"http://127.0.0.1:{self.nodes[node].http}/api/v1/letters"
            try:
                answer = client.post(url, json=body)
            except httpx.TransportError as exc:
                node = self.fail_over(node, exc)
                continue
            assert answer.status_code in (200, 201), answer.text
            self.ack("api", n, answer.json()["tracking_number"], node)
            return node

    def warm_up(self, node: Node) -> None:
        """A node's route lane claims only once the segmenter's dictionary is loaded
        (seconds): before that, the other node would route every letter, and a letter
        routed while loading it would hold its receipt past the short lease of this test."""
        assert node.child is not None
        node.child.wait_for_line('"kinds": "route"', timeout=60)


def failed(client: Future[None]) -> bool:
    return client.done() and client.exception() is not None


def eventually(check: Callable[[], bool], timeout: float, why: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, why()
        time.sleep(0.1)


def unfinished(engine: Engine) -> list[tuple[int, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Job.id, Job.kind, Job.status).where(Job.status != "done"))
        return [tuple(row) for row in rows]  # type: ignore[misc]


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    relay = Relay(tmp_path / "relay")
    yield relay
    relay.child.stop()


@pytest.mark.slow
@pytest.mark.alone  # kills a node while it holds jobs: beside other tests it once held none
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_node_killed_mid_load_loses_nothing_and_the_other_finishes_its_jobs(
    database_url: str, engine: Engine, relay: Relay, tmp_path: Path
) -> None:
    nodes = {name: Node(name, free_port(), free_port()) for name in ("a", "b")}
    a, b = nodes["a"], nodes["b"]
    shared = tmp_path / "attachments"  # every node reads the files any node stored
    load = Load(nodes)
    mails, both = list(range(MAILS)), list(range(MAILS, MAILS + BOTH))
    letters = list(range(MAILS))
    started = time.monotonic()
    with ExitStack() as stack:
        for node in nodes.values():
            config = write_config(tmp_path / node.name, node, relay.port, shared)
            node.child = stack.enter_context(gateway(config, HOTLINE_DATABASE_URL=database_url))
            load.warm_up(node)
        assert a.child is not None and b.child is not None
        a_worker = a.worker
        with ThreadPoolExecutor(max_workers=10) as pool:
            clients: list[Future[None]] = []
            for i, first in enumerate(["a", "b", "a", "b"]):
                clients.append(pool.submit(load.mails, mails[i::4], first))
                clients.append(pool.submit(load.letters, letters[i::4], first))
            clients += [pool.submit(load.mails, both, first) for first in ("a", "b")]

            with load.changed:
                load.changed.wait_for(
                    lambda: load.acked_by("a") >= KILL_AFTER or any(failed(c) for c in clients),
                    timeout=60,
                )
            assert load.acked_by("a") >= KILL_AFTER, [c.exception() for c in clients if failed(c)]
            load.dead.add("a")
            os.kill(a.child.pid, signal.SIGKILL)
            a.child.wait()
            killed_at = time.monotonic()
            with engine.connect() as conn:
                held = conn.execute(
                    select(Job.id, Job.kind, Job.locked_until, Job.payload).where(
                        Job.status == "running", Job.locked_by.startswith(f"{a_worker}/")
                    )
                ).all()
            for client in clients:
                client.result(timeout=120)  # each contact acknowledged, by B when A had died

        receipts = MAILS + BOTH

        def why() -> str:
            left = unfinished(engine)
            said = "".join(b.child.lines[-40:]) if b.child else ""
            return f"jobs left {left[:10]}, receipts {relay.count()}/{receipts}; B said:\n{said}"

        eventually(lambda: not unfinished(engine) and relay.count() >= receipts, 45, why)
        settled_after = time.monotonic() - killed_at
    assert held, "node A held no job when it died: the kill proved nothing"
    assert load.acked_by("b") > 0

    # Every contact was acknowledged, each time with the same tracking number...
    numbers: dict[tuple[str, int], set[str]] = defaultdict(set)
    for kind, n, number, _ in load.acks:
        numbers[(kind, n)].add(number)
    assert {n for kind, n in numbers if kind == "mail"} == set(mails) | set(both)
    assert {n for kind, n in numbers if kind == "api"} >= set(letters)
    assert [key for key, found in numbers.items() if len(found) != 1] == []

    # ...and stored exactly once, holding what was sent.
    with engine.connect() as conn:
        stored = conn.execute(
            select(
                Letter.id,
                Letter.source,
                Letter.external_id,
                Letter.tracking_number,
                Letter.text,
                Letter.status,
            )
        ).all()
    keys = Counter((row.source, row.external_id) for row in stored)
    assert [key for key, count in keys.items() if count > 1] == []
    assert len(stored) == len(numbers)
    by_key = {(row.source, row.external_id): row for row in stored}
    wrong = []
    for (kind, n), (number,) in numbers.items():
        row = by_key.get(stored_as(kind, n))
        text = mail_text(n) if kind == "mail" else api_text(n)
        if row is None or row.tracking_number != number or row.text.strip() != text:
            wrong.append((kind, n))
    assert wrong == [], "acknowledged, but not stored as sent"

    # Routed exactly once: one route job each, done, and one routing outcome in its history.
    with engine.connect() as conn:
        jobs = conn.execute(
            select(Job.id, Job.kind, Job.letter_id, Job.status, Job.locked_by, Job.finished_at)
        ).all()
        outcomes = (
            conn.execute(
                select(Event.letter_id).where(
                    Event.actor == "system:routing", Event.kind.in_(OUTCOMES)
                )
            )
            .scalars()
            .all()
        )
        outbox = conn.execute(
            select(OutboxMessage.id, OutboxMessage.letter_id).where(OutboxMessage.status == "sent")
        ).all()
        notices = conn.execute(select(Event.detail).where(Event.kind == "notified")).scalars()
        notified = Counter(detail["outbox"] for detail in notices)
    routes = Counter(job.letter_id for job in jobs if job.kind == ROUTE)
    assert {row.id: routes[row.id] for row in stored} == {row.id: 1 for row in stored}
    assert sum(routes.values()) == len(stored)
    routed = Counter(outcomes)
    assert [row.id for row in stored if routed[row.id] != 1] == []
    assert {row.status for row in stored} == {"triage"}

    # The jobs A held when it died were finished by B, once their lease had run out.
    by_id = {job.id: job for job in jobs}
    for claim in held:
        finished = by_id[claim.id]
        assert finished.status == "done" and finished.locked_by.startswith(f"{b.worker}/")
        assert finished.finished_at >= claim.locked_until, (finished, claim)

    # One receipt per mail, recorded sent once, reaching its citizen with its letter's number
    # (the outbox row keeps the address sealed once sent: docs/privacy.md).
    mailed = {row.id: row for row in stored if row.source == "smtp"}
    assert sorted(message.letter_id for message in outbox) == sorted(mailed)
    assert [m.id for m in outbox if notified[m.id] != 1] == []
    received: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for message_id, to, body in relay.received():
        received[message_id].append((to, body))
    for m in outbox:
        letter = mailed[m.letter_id]
        citizen = letter.external_id.replace("nodes-", "citizen")  # nodes-7@ -> citizen7@
        copies = received.get(f"<outbox-{m.id}@hotline.local>", [])
        assert copies, f"the receipt of {letter.external_id} never reached the relay"
        for to, body in copies:
            assert to == citizen and letter.tracking_number in body, (to, body)
    # Each sent once, except a receipt A was handing to the relay when it died: the relay
    # may have taken it before A could record it sent, so B sends it again, under the same
    # Message-ID so the relay can tell (SMTP cannot do better: RFC 1047).
    in_flight = {
        f"<outbox-{claim.payload['outbox_id']}@hotline.local>"
        for claim in held
        if claim.kind == DELIVER
    }
    twice = {message_id for message_id, copies in received.items() if len(copies) > 1}
    assert twice <= in_flight, f"sent twice, not in A's hands at the kill: {twice - in_flight}"
    print(
        f"\ntwo nodes: {time.monotonic() - started:.1f} s; A held {len(held)} jobs at the kill, "
        f"all done {settled_after:.1f} s after it; receipts sent twice: {len(twice)}"
    )
