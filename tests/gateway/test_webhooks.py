"""Webhooks: each event to each endpoint once, in order per letter, signed, retried, refused."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from gateway.contract.config import JobsConfig, WebhookEndpoint, WebhooksConfig
from gateway.contract.contact import Citizen
from gateway.contract.errors import ConfigurationError
from gateway.engine import webhooks
from gateway.engine.workers import JobRunner
from store.db import make_sessionmaker
from store.jobs import JobQueue
from store.models import Event, Job, Letter, OutboxMessage, WebhookCursor
from tests.conftest import Parts, make_contact

OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
NEW_SECRET = "whsec_" + base64.b64encode(b"n" * 32).decode()
PHONE = "+8613800138000"
# How long the receiver's deliberately slow answer hangs (the client gives up at 0.5 s).
SLOW_SECONDS = 3.0
HOUR = timedelta(hours=1)


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    answer: int | str

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An integrator's case system on loopback: records every request and answers as
    scripted (a status, or "hang" past the client's timeout), then 200."""

    port: int = 0
    script: list[int | str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[Request]:
        return [r for r in self.requests if r.answer == 200]

    def answer(self, headers: dict[str, str], body: bytes) -> int | str:
        with self.lock:
            answer = self.script.pop(0) if self.script else 200
            self.requests.append(Request(headers, body, answer))
        return answer


@contextmanager
def receiving() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            answer = state.answer({k.lower(): v for k, v in self.headers.items()}, body)
            if answer == "hang":
                state.released.wait(SLOW_SECONDS)  # the deliberate slow answer
                return
            assert isinstance(answer, int)
            self.send_response(answer)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as state:
        yield state


def settings_for(receiver: Receiver, **changes: Any) -> WebhooksConfig:
    endpoint = WebhookEndpoint(
        name="cases",
        url=f"http://127.0.0.1:{receiver.port}/hooks",
        secrets=[NEW_SECRET, OLD_SECRET],
        **changes.pop("endpoint", {}),
    )
    return WebhooksConfig(
        endpoints=[endpoint],
        allowed_hosts=["127.0.0.1"],
        timeout_seconds=0.5,
        public_url="https://hotline.example.gov.cn",
        **changes,
    )


class Clock:
    """The job queue's clock: real time plus however far the test has jumped ahead."""

    def __init__(self) -> None:
        self.ahead = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    def jump_to(self, moment: datetime) -> None:
        self.ahead = max(self.ahead, moment - datetime.now(UTC))


@dataclass
class Hooks:
    engine: Engine
    sessions: sessionmaker[Session]
    settings: WebhooksConfig
    sender: webhooks.WebhookSender
    runner: JobRunner
    clock: Clock

    def fan_out(self, **options: Any) -> int:
        return webhooks.fan_out(self.sessions, self.settings, datetime.now(UTC), **options)

    def deliver(self) -> int:
        """Run webhook jobs until none is left, jumping the clock to each retry."""
        ran = 0
        for _ in range(200):
            while self.runner.run_one([webhooks.KIND]):
                ran += 1
            with self.engine.connect() as conn:
                due = conn.execute(
                    select(func.min(Job.run_after)).where(
                        Job.status == "queued", Job.kind == webhooks.KIND
                    )
                ).scalar()
            if due is None:
                return ran
            self.clock.jump_to(due)
        raise AssertionError("the jobs never ran out")

    def outbox(self) -> list[tuple[str, str | None]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(OutboxMessage.status, OutboxMessage.last_error).order_by(OutboxMessage.id)
            )
            return [(status, error) for status, error in rows]


@pytest.fixture
def make_hooks(engine: Engine, receiver: Receiver) -> Iterator[Any]:
    made: list[Hooks] = []

    def make(settings: WebhooksConfig | None = None, batch: int = 1) -> Hooks:
        settings = settings or settings_for(receiver)
        sessions = make_sessionmaker(engine)
        clock = Clock()
        sender = webhooks.WebhookSender(sessions, settings)
        handler = webhooks.WebhookDelivery(sessions, sender, clock)
        runner = JobRunner(
            JobQueue(sessions, clock),
            {webhooks.KIND: handler},
            webhooks.runner_settings(settings, JobsConfig(backoff_seconds=0.001)),
            batch=batch,
        )
        hooks = Hooks(engine, sessions, settings, sender, runner, clock)
        hooks.fan_out()  # the endpoint starts here: what came before is not sent
        made.append(hooks)
        return hooks

    yield make
    for hooks in made:
        hooks.sender.close()


def letter_of(parts: Parts, n: int, **changes: Any) -> int:
    accepted = parts.intake.accept_sync(make_contact(n, **changes))
    with parts.intake.sessions() as session:
        return session.scalars(
            select(Letter.id).where(Letter.tracking_number == accepted.tracking_number)
        ).one()


def add_event(
    engine: Engine, letter_id: int, kind: str, status: str | None = None, **detail: Any
) -> None:
    with make_sessionmaker(engine).begin() as session:
        session.add(
            Event(
                letter_id=letter_id,
                at=datetime.now(UTC),
                actor="test",
                kind=kind,
                detail=detail,
            )
        )
        if status is not None:
            letter = session.get(Letter, letter_id)
            assert letter is not None
            letter.status = status


@pytest.mark.parametrize(
    ("kind", "detail", "status", "expected"),
    [
        ("received", {}, "received", "letter.created"),
        ("assigned", {"lead": True}, "assigned", "letter.assigned"),
        ("assigned", {"lead": False}, "assigned", None),
        ("replied", {"reply": "final"}, "replied", "letter.replied"),
        ("replied", {"reply": "interim"}, "promised", None),
        ("urged", {}, "signed", "letter.overdue"),
        ("visited", {"satisfied": True}, "closed", "letter.closed"),
        ("visited", {"satisfied": False}, "signed", None),
        ("rejected", {"reason": "advertising"}, "rejected", "letter.closed"),
        ("pii_read", {}, "received", None),
        ("notified", {}, "received", None),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_events_are_announced_as_these_webhook_types(
    kind: str, detail: dict[str, Any], status: str, expected: str | None
) -> None:
    assert webhooks.webhook_type(kind, detail, status) == expected


def test_every_event_arrives_once_in_order_and_signed_after_the_receiver_recovers(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks()
    first, second = letter_of(parts, 1), letter_of(parts, 2)
    add_event(engine, first, "assigned", "assigned", lead=True)
    add_event(engine, first, "assigned", None, lead=False)  # a co-department: not news
    add_event(engine, second, "urged", "assigned")
    add_event(engine, first, "replied", "promised", reply="interim")
    add_event(engine, first, "replied", "replied", reply="final")
    add_event(engine, first, "visited", "closed", satisfied=True)
    receiver.script = ["hang", 500, 503, 404]

    assert hooks.fan_out() == 6
    hooks.deliver()

    assert [status for status, _ in hooks.outbox()] == ["sent"] * 6
    with engine.connect() as conn:
        errors = " ".join(str(e) for e in conn.execute(select(Job.last_error)).scalars())
        kinds = list(conn.execute(select(Event.kind)).scalars())
    assert "notified" not in kinds  # deliveries to integrators stay out of letters' history
    assert "waiting for earlier event" in errors
    ids = [r.id for r in receiver.accepted]
    assert len(ids) == len(set(ids)) == 6
    by_letter: dict[str, list[str]] = {}
    for request in receiver.accepted:
        payload = request.json
        by_letter.setdefault(payload["data"]["tracking_number"], []).append(payload["type"])
    assert sorted(by_letter.values()) == [
        ["letter.created", "letter.assigned", "letter.replied", "letter.closed"],
        ["letter.created", "letter.overdue"],
    ]
    for request in receiver.requests:
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        for secret in (OLD_SECRET, NEW_SECRET):
            Webhook(secret).verify(request.body, request.headers)
        assert PHONE.encode() not in request.body and "张三".encode() not in request.body
    # Retries carry the id of their first try, so the receiver can tell them apart.
    assert {r.id for r in receiver.requests} == set(ids)
    assert receiver.requests[0].answer == "hang" and receiver.requests[0].id == ids[0]
    created = receiver.accepted[0].json
    assert created["data"]["letter_url"].startswith("https://hotline.example.gov.cn/api/v1/")
    assert set(created["data"]) == {
        "tracking_number",
        "letter_url",
        "status",
        "category",
        "channel",
        "department",
        "due_at",
    }


def test_the_citizen_is_included_only_where_allowed_and_every_read_is_recorded(
    engine: Engine, parts: Parts, make_hooks: Any, receiver: Receiver
) -> None:
    hooks: Hooks = make_hooks(settings_for(receiver, endpoint={"include_pii": True}))
    letter_of(parts, 1)
    reporter = letter_of(parts, 2, category="report")
    letter_of(parts, 3, citizen=Citizen(name="李四", phone="+8613900139000"), anonymous=True)
    letter_of(parts, 4, citizen=Citizen(name="王五", phone="+8613700137000"), confidential=True)

    assert hooks.fan_out() == 4

    with engine.connect() as conn:
        payloads = conn.execute(select(OutboxMessage.payload).order_by(OutboxMessage.id))
        citizens = [p["data"]["citizen"] for p in payloads.scalars()]
        reads = conn.execute(select(Event.letter_id, Event.actor).where(Event.kind == "pii_read"))
        audit = list(reads)
    assert citizens == [{"name": "张三", "phone": PHONE, "email": None}, None, None, None]
    assert len(audit) == 1 and audit[0].actor == "webhook:cases" and audit[0].letter_id != reporter


def test_a_410_disables_the_endpoint_until_it_is_enabled(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks()
    first = letter_of(parts, 1)
    add_event(engine, first, "assigned", "assigned", lead=True)
    receiver.script = [410]
    assert hooks.fan_out() == 2

    hooks.deliver()

    assert len(receiver.requests) == 1
    assert [status for status, _ in hooks.outbox()] == ["failed", "failed"]
    with engine.connect() as conn:
        cursor = conn.execute(select(WebhookCursor.disabled_at, WebhookCursor.disabled_reason))
        disabled_at, reason = cursor.one()
    assert disabled_at is not None and "410" in str(reason)
    letter_of(parts, 2)
    assert hooks.fan_out() == 0
    assert hooks.deliver() == 0 and len(receiver.requests) == 1

    assert webhooks.enable(hooks.sessions, "cases") == 2
    assert hooks.fan_out() == 1  # the letter that came while it was disabled
    hooks.deliver()

    assert [status for status, _ in hooks.outbox()] == ["sent"] * 3
    assert [r.json["type"] for r in receiver.accepted] == [
        "letter.created",
        "letter.assigned",
        "letter.created",
    ]


def test_a_message_is_dead_lettered_after_the_retry_window_and_replay_sends_it(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks()
    letter_of(parts, 1)
    receiver.script = [500] * webhooks.ATTEMPTS
    hooks.fan_out()

    hooks.deliver()

    assert len(receiver.requests) == webhooks.ATTEMPTS
    assert hooks.outbox() == [("failed", "TransientError: " + receiver_said(receiver, 500))]
    # The last try came retry_for_hours (24) after the first, not sooner.
    assert timedelta(hours=23.9) < hooks.clock.ahead < timedelta(hours=24.1)
    assert webhooks.replay(hooks.sessions, "other", None) == 0
    assert webhooks.replay(hooks.sessions, None, datetime.now(UTC) + timedelta(hours=1)) == 0

    assert webhooks.replay(hooks.sessions, "cases", None) == 1
    hooks.deliver()

    assert [status for status, _ in hooks.outbox()] == ["sent"]
    assert len(receiver.accepted) == 1 and receiver.accepted[0].id == receiver.requests[0].id


def receiver_said(receiver: Receiver, status: int) -> str:
    return f"http://127.0.0.1:{receiver.port}/hooks answered {status}"


def test_an_endpoint_whose_host_is_not_allowed_is_refused_and_never_contacted(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    # localhost reaches the receiver, but only 127.0.0.1 is allowed.
    sneaky = settings_for(receiver).model_copy(
        update={
            "endpoints": [
                WebhookEndpoint(
                    name="cases",
                    url=f"http://localhost:{receiver.port}/hooks",
                    secrets=[NEW_SECRET],
                )
            ]
        }
    )
    hooks: Hooks = make_hooks(sneaky)
    letter_of(parts, 1)
    hooks.fan_out()

    hooks.deliver()

    assert receiver.requests == []
    [(status, error)] = hooks.outbox()
    assert status == "failed" and error is not None and "allowed_hosts" in error


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://10.0.0.8/hooks", "not in webhooks.allowed_hosts"),
        ("ftp://cases.example.gov.cn/hooks", "scheme 'ftp'"),
        ("http://me:pw@cases.example.gov.cn/hooks", "user info"),
        ("http://cases.example.gov.cn.evil.test/hooks", "not in webhooks.allowed_hosts"),
        ("http://cases.example.gov.cn:99999/", "not a URL"),
    ],
    ids=["private address", "scheme", "user info", "suffix", "bad port"],
)
def test_a_refused_url_stops_the_start_naming_its_key(url: str, problem: str) -> None:
    good = WebhookEndpoint(name="a", url="https://cases.example.gov.cn/h", secrets=[NEW_SECRET])
    bad = WebhookEndpoint(name="b", url=url, secrets=[NEW_SECRET])
    settings = WebhooksConfig(endpoints=[good, bad], allowed_hosts=["cases.example.gov.cn"])

    with pytest.raises(ConfigurationError, match=r"webhooks\.endpoints\[1\]\.url") as raised:
        webhooks.check_endpoints(settings)

    assert problem in str(raised.value)


def test_secrets_come_from_the_environment_and_a_missing_one_stops_the_start() -> None:
    endpoint = WebhookEndpoint(name="city-cases", url="https://cases.example.gov.cn/h")
    settings = WebhooksConfig(endpoints=[endpoint], allowed_hosts=["cases.example.gov.cn"])
    environ = {"HOTLINE_WEBHOOK_SECRET_CITY_CASES": f"{NEW_SECRET}, {OLD_SECRET}"}

    assert webhooks.secrets_for(endpoint, environ) == [NEW_SECRET, OLD_SECRET]
    webhooks.check_endpoints(settings, environ)
    with pytest.raises(ConfigurationError, match=r"endpoints\[0\]\.secrets.*CITY_CASES"):
        webhooks.check_endpoints(settings, {})
    with pytest.raises(ConfigurationError, match="24 bytes"):
        webhooks.check_endpoints(settings, {"HOTLINE_WEBHOOK_SECRET_CITY_CASES": "whsec_c2hvcnQ="})


def test_a_new_endpoint_starts_after_the_events_already_there(
    engine: Engine, parts: Parts, receiver: Receiver
) -> None:
    letter_of(parts, 1)
    sessions = make_sessionmaker(engine)

    assert webhooks.fan_out(sessions, settings_for(receiver), datetime.now(UTC)) == 0
    letter_of(parts, 2)
    assert webhooks.fan_out(sessions, settings_for(receiver), datetime.now(UTC)) == 1


def test_two_nodes_fanning_out_at_once_write_each_event_once(
    engine: Engine, parts: Parts, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks()
    for n in range(12):
        letter_of(parts, n)
    start = threading.Barrier(2)

    def node(_: int) -> int:
        start.wait()
        return hooks.fan_out(batch=5)

    with ThreadPoolExecutor(2) as pool:
        written = sum(pool.map(node, range(2)))

    assert written == 12
    with engine.connect() as conn:
        letters = conn.execute(select(OutboxMessage.letter_id)).scalars().all()
        queued = conn.execute(
            select(func.count()).select_from(Job).where(Job.kind == "webhook")
        ).scalar_one()
    assert len(letters) == len(set(letters)) == 12 and queued == 12


def test_an_event_after_a_gap_waits_for_the_gap_to_settle(
    engine: Engine, parts: Parts, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks()
    letter = letter_of(parts, 1)
    with make_sessionmaker(engine).begin() as session:
        newest = session.scalars(select(func.max(Event.id))).one()
        # An id handed out to a transaction that has not committed yet is missing here.
        session.add(
            Event(
                id=newest + 2,
                letter_id=letter,
                at=datetime.now(UTC),
                actor="t",
                kind="urged",
                detail={},
            )
        )

    assert hooks.fan_out() == 1  # the letter's received event, not the one after the gap
    later = datetime.now(UTC) + webhooks.SETTLE + timedelta(seconds=1)
    assert webhooks.fan_out(hooks.sessions, hooks.settings, later) == 1


# -- batches ------------------------------------------------------------------------------


def claim_batch(hooks: Hooks) -> list[Job]:
    return hooks.runner.queue.claim_many([webhooks.KIND], "node", timedelta(minutes=5), 16)


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The SQL statements run on the engine meanwhile (not BEGIN, COMMIT or PRAGMA)."""
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if verb in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("letters", [2, 12])
def test_a_batch_is_read_in_two_statements_and_recorded_in_one_however_many_it_holds(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any, letters: int
) -> None:
    hooks: Hooks = make_hooks(batch=16)
    for n in range(letters):
        letter_of(parts, n)
    assert hooks.fan_out() == letters
    claimed = claim_batch(hooks)
    handler = hooks.runner.handlers[webhooks.KIND]

    with statements(engine) as seen:
        outcomes = handler.run_batch(claimed)

    assert outcomes == [None] * letters

    reads = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) == 2 and len(seen) == 3, seen
    assert len(receiver.accepted) == len({r.id for r in receiver.accepted}) == letters
    assert [status for status, _ in hooks.outbox()] == ["sent"] * letters


def test_a_receiver_that_does_not_answer_delays_the_batch_once_and_fails_none_of_the_others(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    with receiving() as dead:
        dead.script = ["hang"] * 10
        settings = settings_for(receiver)
        settings.endpoints.append(
            WebhookEndpoint(
                name="dead", url=f"http://127.0.0.1:{dead.port}/hooks", secrets=[NEW_SECRET]
            )
        )
        hooks: Hooks = make_hooks(settings, batch=16)
        for n in range(3):
            letter_of(parts, n)
        assert hooks.fan_out() == 6

        assert hooks.runner.run_one([webhooks.KIND])

        # One timeout for the dead endpoint's three, then its others were not tried.
        assert len(dead.requests) == 1
        assert len(receiver.accepted) == 3
        with engine.connect() as conn:
            rows = conn.execute(
                select(OutboxMessage.destination, OutboxMessage.status, Job.status)
                .join(Job, Job.payload["outbox_id"].as_integer() == OutboxMessage.id)
                .order_by(OutboxMessage.id)
            )
            outcomes = sorted(set(rows))
    assert outcomes == [("cases", "sent", "done"), ("dead", "pending", "queued")]


def test_in_a_batch_a_letter_whose_event_failed_holds_its_later_events_and_no_one_else(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks(batch=16)
    first, second = letter_of(parts, 1), letter_of(parts, 2)
    add_event(engine, first, "assigned", "assigned", lead=True)
    add_event(engine, first, "urged", "assigned")
    receiver.script = [500]  # the first letter's letter.created
    assert hooks.fan_out() == 4

    assert hooks.runner.run_one([webhooks.KIND])

    assert [(r.json["data"]["tracking_number"], r.answer) for r in receiver.requests] == [
        (tracking_number(engine, first), 500),
        (tracking_number(engine, second), 200),
    ]
    with engine.connect() as conn:
        errors = conn.execute(select(Job.last_error).order_by(Job.id)).scalars().all()
    assert sum("waiting for earlier event" in (e or "") for e in errors) == 2
    hooks.deliver()
    assert [status for status, _ in hooks.outbox()] == ["sent"] * 4
    assert [
        r.json["type"]
        for r in receiver.accepted
        if r.json["data"]["tracking_number"] == tracking_number(engine, first)
    ] == ["letter.created", "letter.assigned", "letter.overdue"]


def test_a_delivery_makes_the_next_event_of_its_letter_due_at_once(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any
) -> None:
    hooks: Hooks = make_hooks(batch=16)
    letter = letter_of(parts, 1)
    add_event(engine, letter, "assigned", "assigned", lead=True)
    receiver.script = [500]
    assert hooks.fan_out() == 2
    assert hooks.runner.run_one([webhooks.KIND])  # created: 500; assigned: waits behind it
    with engine.begin() as conn:
        first, second = conn.execute(select(Job.id, Job.run_after).order_by(Job.id)).all()
        # Backing off further than the first (a later attempt's longer wait).
        conn.execute(
            update(Job).where(Job.id == second.id).values(run_after=first.run_after + HOUR)
        )
    hooks.clock.jump_to(first.run_after)

    assert hooks.runner.run_one([webhooks.KIND])  # only the first is due: delivered

    with engine.connect() as conn:
        due = conn.execute(select(Job.run_after).where(Job.status == "queued")).scalar_one()
    assert due <= hooks.clock()
    assert [r.json["type"] for r in receiver.accepted] == ["letter.created"]


def test_a_batch_delivered_but_not_recorded_is_sent_again_with_the_same_ids(
    engine: Engine, parts: Parts, receiver: Receiver, make_hooks: Any, monkeypatch: Any
) -> None:
    hooks: Hooks = make_hooks(batch=16)
    for n in range(3):
        letter_of(parts, n)
    assert hooks.fan_out() == 3
    handler = hooks.runner.handlers[webhooks.KIND]

    def lost(*args: Any) -> None:
        raise OSError("the database went away")

    with monkeypatch.context() as patch:
        patch.setattr(handler, "_record", lost)
        assert hooks.runner.run_one([webhooks.KIND])

    assert [status for status, _ in hooks.outbox()] == ["pending"] * 3
    with engine.connect() as conn:
        jobs = conn.execute(select(Job.status, Job.last_error)).all()
    assert {(status, error) for status, error in jobs} == {
        ("queued", "TransientError: delivered but not recorded: OSError")
    }
    first = [r.id for r in receiver.requests]
    hooks.deliver()
    assert [status for status, _ in hooks.outbox()] == ["sent"] * 3
    assert [r.id for r in receiver.requests] == first + first


def tracking_number(engine: Engine, letter_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(
            select(Letter.tracking_number).where(Letter.id == letter_id)
        ).scalar_one()
