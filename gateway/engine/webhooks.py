"""Signed webhooks to integrators (Standard Webhooks): fan-out from events, delivery, replay."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Select, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload, sessionmaker
from standardwebhooks import Webhook

from gateway.contract.config import JobsConfig, WebhookEndpoint, WebhooksConfig
from gateway.contract.errors import ConfigurationError, TransientError
from gateway.contract.kinds import WEBHOOK
from gateway.contract.logs import log_event
from gateway.core.access import Sight, Viewer, citizen_view, lead_department, sight, visible_to
from gateway.core.messages import queue_message
from gateway.engine.outbox import DeliveryHandler
from gateway.engine.workers import GiveUp
from store import jobs
from store.db import reads_like
from store.letters import record_event
from store.models import Department, Event, Job, Letter, OutboxMessage, WebhookCursor
from store.outbox import purge, unseal
from store.pii import keyring_of

log = logging.getLogger(__name__)

KIND = WEBHOOK  # the outbox kind and the job kind of webhook deliveries
TYPES = ("letter.created", "letter.assigned", "letter.replied", "letter.overdue", "letter.closed")
BATCH = 500
# PostgreSQL hands out event ids before commit, so an id after a gap may be followed by an
# earlier id still uncommitted; a gap is waited on this long, then taken as a rollback.
SETTLE = timedelta(seconds=60)
# Tries per message: the first at once, then retries whose waits double and add up to
# retry_for_hours (runner_settings).
ATTEMPTS = 12
# The error of a message given up because its endpoint is gone: enable() sends them again.
GONE = "endpoint disabled: "
_DOMAIN = "webhooks"
_SECRET_PREFIX = "whsec_"
# The citizen in a payload, for an endpoint with include_pii.
CITIZEN = ("name", "phone", "email")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Waiting(TransientError):
    """An earlier message of the same letter to the same endpoint is not delivered yet."""


def webhook_type(kind: str, detail: Mapping[str, Any], status: str) -> str | None:
    """The webhook type an event is announced as, or None when integrators are not told."""
    if kind == "received":
        return "letter.created"
    if kind == "assigned":
        # A joint letter has one assigned event per department; the lead's is the news.
        return "letter.assigned" if detail.get("lead", True) else None
    if kind == "replied":
        return "letter.replied" if detail.get("reply") == "final" else None
    if kind == "urged":
        return "letter.overdue"
    if kind == "rejected" or (kind == "visited" and status in ("closed", "rejected")):
        return "letter.closed"
    return None


def secret_variable(name: str) -> str:
    return "HOTLINE_WEBHOOK_SECRET_" + name.upper().replace("-", "_")


def secrets_for(endpoint: WebhookEndpoint, environ: Mapping[str, str] | None = None) -> list[str]:
    """The endpoint's secrets from config, else from its environment variable (a comma
    between two while rotating)."""
    if endpoint.secrets:
        return list(endpoint.secrets)
    raw = (os.environ if environ is None else environ).get(secret_variable(endpoint.name), "")
    return [s.strip() for s in raw.split(",") if s.strip()]


def url_problem(url: str, allowed_hosts: Sequence[str]) -> str | None:
    """Why a request to ``url`` is refused, or None: only http(s), no user info, and an
    exact host from the allow list, so a webhook cannot reach into the city's network."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # .port raises on a port out of range
        theirs = httpx.URL(url).host
    except (ValueError, httpx.InvalidURL) as exc:
        return f"not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme!r} is not http or https"
    if "@" in parts.netloc:
        return "user info is not allowed in the URL"
    # Both parsers must name the same host: a URL read two ways is a known SSRF trick.
    if not host or host != theirs.lower():
        return "no host, or a host that does not parse the same way twice"
    if host not in {h.lower().strip("[]") for h in allowed_hosts}:
        return f"host {host!r} is not in webhooks.allowed_hosts"
    return None


def check_endpoints(settings: WebhooksConfig, environ: Mapping[str, str] | None = None) -> None:
    """Refuse to start on an endpoint that could never be sent to; names the key."""
    names: set[str] = set()
    for i, endpoint in enumerate(settings.endpoints):
        key = f"webhooks.endpoints[{i}]"
        if endpoint.name in names:
            raise ConfigurationError(f"{key}.name: {endpoint.name!r} is listed twice")
        names.add(endpoint.name)
        problem = url_problem(endpoint.url, settings.allowed_hosts)
        if problem:
            raise ConfigurationError(f"{key}.url: {problem}")
        unknown = sorted(set(endpoint.events) - set(TYPES))
        if unknown:
            raise ConfigurationError(f"{key}.events: unknown {unknown}; known {list(TYPES)}")
        _signers(endpoint, key, environ)


def _signers(
    endpoint: WebhookEndpoint, key: str, environ: Mapping[str, str] | None
) -> list[Webhook]:
    secrets = secrets_for(endpoint, environ)
    if not secrets:
        raise ConfigurationError(
            f"{key}.secrets: none given and {secret_variable(endpoint.name)} is not set"
        )
    for secret in secrets:
        body = secret.removeprefix(_SECRET_PREFIX)
        try:
            raw = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except binascii.Error as exc:
            raise ConfigurationError(f"{key}.secrets: not whsec_ and base64: {exc}") from exc
        # Standard Webhooks: secrets SHOULD be 24 to 64 random bytes.
        if len(raw) < 24:
            raise ConfigurationError(f"{key}.secrets: shorter than 24 bytes")
    return [Webhook(secret) for secret in secrets]


# -- fan-out ------------------------------------------------------------------------------


def fan_out(
    sessions: sessionmaker[Session],
    settings: WebhooksConfig,
    now: datetime,
    *,
    settle: timedelta = SETTLE,
    batch: int = BATCH,
) -> int:
    """Queue one message (and its delivery job) per new event and subscribed endpoint,
    advancing the endpoint's cursor in the same transaction; returns how many."""
    queued = 0
    for endpoint in settings.endpoints:
        more = True
        while more:
            with sessions.begin() as session:
                written, more = _fan_out_batch(session, endpoint, settings, now, settle, batch)
            queued += written
    return queued


def _fan_out_batch(
    session: Session,
    endpoint: WebhookEndpoint,
    settings: WebhooksConfig,
    now: datetime,
    settle: timedelta,
    batch: int,
) -> tuple[int, bool]:
    cursor = _cursor(session, endpoint.name)
    if cursor.disabled_at is not None:
        return 0, False
    rows = session.scalars(
        select(Event).where(Event.id > cursor.last_event_id).order_by(Event.id).limit(batch)
    ).all()
    events = _settled(rows, cursor.last_event_id, now - settle)
    if not events:
        return 0, False
    reader = Viewer.endpoint(endpoint.include_pii)
    letter_ids = {e.letter_id for e in events if e.letter_id is not None}
    query = select(Letter, lead_department().label("lead")).where(
        Letter.id.in_(letter_ids), visible_to(reader)
    )
    if endpoint.include_pii:
        query = query.options(selectinload(Letter.citizen))
    letters = {row.Letter.id: row for row in session.execute(query)}
    codes = {id_: code for id_, code in session.execute(select(Department.id, Department.code))}
    written = 0
    for event in events:
        row = letters.get(event.letter_id) if event.letter_id is not None else None
        if row is None:
            continue
        letter = row.Letter
        kind = webhook_type(event.kind, event.detail, letter.status)
        if kind is None or kind not in endpoint.events:
            continue
        # The department the event concerns (the one urged), else the letter's lead.
        department = codes.get(event.department_id or 0) or row.lead
        payload = _payload(kind, event.at, letter, department, settings.public_url)
        # Never a citizen no department may see either (a reporter, anonymous, confidential).
        seen = sight(letter, reader)
        share = seen is Sight.FULL
        if endpoint.include_pii:
            payload["data"]["citizen"] = citizen_view(letter.citizen, seen, CITIZEN)
        message = queue_message(session, KIND, letter.id, endpoint.name, payload, now, False)
        # A job kind of its own: the webhook runner retries for about a day (runner_settings).
        jobs.enqueue(session, KIND, letter_id=letter.id, payload={"outbox_id": message.id}, at=now)
        if share:
            record_event(
                session,
                at=now,
                actor=f"webhook:{endpoint.name}",
                kind="pii_read",
                letter=letter,
                reason="webhook",
                outbox=message.id,
            )
        written += 1
    cursor.last_event_id = events[-1].id
    return written, len(events) == len(rows) == batch


def _cursor(session: Session, endpoint: str) -> WebhookCursor:
    """The endpoint's cursor, locked until commit so two nodes never fan out one event
    twice. A new endpoint starts after the newest event: it gets no history."""
    locked = select(WebhookCursor).where(WebhookCursor.endpoint == endpoint).with_for_update()
    cursor = session.scalars(locked).one_or_none()
    if cursor is None:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        newest = select(func.coalesce(func.max(Event.id), 0)).scalar_subquery()
        session.execute(
            insert(WebhookCursor)
            .values(endpoint=endpoint, last_event_id=newest)
            .on_conflict_do_nothing(index_elements=["endpoint"])
        )
        cursor = session.scalars(locked).one()
    return cursor


def _settled(events: Sequence[Event], after: int, horizon: datetime) -> list[Event]:
    """The events that no uncommitted event can still precede: those right after the last
    one taken, or after a gap older than the horizon (a rolled-back insert)."""
    taken: list[Event] = []
    expected = after + 1
    for event in events:
        if event.id != expected and event.at > horizon:
            break
        taken.append(event)
        expected = event.id + 1
    return taken


def _payload(
    kind: str, at: datetime, letter: Letter, department: str | None, public_url: str
) -> dict[str, Any]:
    """Thin: ids and a link, never the citizen; the letter as it is when fanned out."""
    return {
        "type": kind,
        "timestamp": _iso(at),
        "data": {
            "tracking_number": letter.tracking_number,
            "letter_url": f"{public_url.rstrip('/')}/api/v1/letters/{letter.tracking_number}",
            "status": letter.status,
            "category": letter.category,
            "channel": letter.channel,
            "department": department,
            "due_at": _iso(letter.due_at) if letter.due_at else None,
        },
    }


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def fan_out_forever(
    sessions: sessionmaker[Session],
    settings: WebhooksConfig,
    clock: Callable[[], datetime],
    stop: asyncio.Event,
    queued: Callable[[], None] | None = None,
) -> None:
    """Fan out every ``fanout_interval_seconds``; ``queued`` wakes the webhook runner."""
    while not stop.is_set():
        try:
            if await asyncio.to_thread(fan_out, sessions, settings, clock()) and queued:
                queued()
        except Exception:  # a failed fan-out is retried at the next interval
            log.exception("webhooks.fan_out_failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=settings.fanout_interval_seconds)


# -- delivery -----------------------------------------------------------------------------


def runner_settings(settings: WebhooksConfig, base: JobsConfig) -> JobsConfig:
    """The webhook runner's schedule: ATTEMPTS tries whose doubling waits add up to
    retry_for_hours (24 h: waits of 42 s, 84 s, 3 min, ... 6 h, 12 h), then dead-lettered."""
    window = settings.retry_for_hours * 3600
    return base.model_copy(
        update={
            "max_attempts": ATTEMPTS,
            "backoff_seconds": window / (2 ** (ATTEMPTS - 1) - 1),
            # A lease shorter than a request would let a second worker send it again.
            "lease_seconds": max(base.lease_seconds, 3 * settings.timeout_seconds),
        }
    )


class WebhookSender:
    """Signs and POSTs webhook messages over one pooled HTTP client (keep-alive per
    receiver), shared by the lane's workers.

    2xx is delivered; 410 Gone disables the endpoint; anything else, a timeout or a lost
    connection raises for a retry. The body of the answer is never read.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: WebhooksConfig,
        clock: Callable[[], datetime] = utcnow,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.endpoints = {e.name: e for e in settings.endpoints}
        # The allow list is fixed at start: each endpoint is judged once, not per request.
        self.refusals = {
            e.name: problem
            for e in settings.endpoints
            if (problem := url_problem(e.url, settings.allowed_hosts))
        }
        self.signers = {
            e.name: _signers(e, f"webhooks.endpoints[{i}]", environ)
            for i, e in enumerate(settings.endpoints)
        }
        # No proxies or .netrc from the environment: the allow list is the whole story.
        self.client = httpx.Client(
            timeout=settings.timeout_seconds, follow_redirects=False, trust_env=False
        )

    def close(self) -> None:
        self.client.close()

    def url_of(self, destination: str) -> str:
        """The endpoint's URL; GiveUp when it is not configured or not allowed."""
        endpoint = self.endpoints.get(destination)
        if endpoint is None:
            raise GiveUp(f"no endpoint {destination!r} in webhooks.endpoints")
        problem = self.refusals.get(destination)
        if problem:
            raise GiveUp(f"refused {endpoint.url}: {problem}")
        return endpoint.url

    def post(self, destination: str, outbox_id: int, payload: Mapping[str, Any]) -> None:
        """Sign and POST one outbox row's payload; returns once the receiver took it."""
        url = self.url_of(destination)
        body = json.dumps(
            {k: v for k, v in payload.items() if k != "sent"},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        # Stable per outbox row: a retry carries the same id and the receiver can dedupe.
        webhook_id, now = f"msg_{outbox_id}", self.clock().astimezone(UTC)
        headers = {
            "content-type": "application/json",
            "user-agent": "hotline-webhooks",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            # Every secret signs while one is rotated in (spec: space-separated signatures).
            "webhook-signature": " ".join(
                s.sign(webhook_id, now, body) for s in self.signers[destination]
            ),
        }
        try:
            with self.client.stream("POST", url, content=body.encode(), headers=headers) as answer:
                status = answer.status_code
        except httpx.HTTPError as exc:
            raise Unreachable(f"{url}: {type(exc).__name__}: {exc}") from exc
        if 200 <= status < 300:
            return
        if status == 410:
            reason = f"{url} answered 410 Gone"
            self._disable(destination, reason)
            raise GiveUp(GONE + reason)
        raise TransientError(f"{url} answered {status}")

    def _disable(self, destination: str, reason: str) -> None:
        with self.sessions.begin() as session:
            cursor = session.get(WebhookCursor, destination, with_for_update=True)
            if cursor is None:
                cursor = WebhookCursor(endpoint=destination, last_event_id=0)
                session.add(cursor)
            cursor.disabled_at, cursor.disabled_reason = self.clock(), reason
        log_event(log, "webhook.disabled", logging.WARNING, endpoint=destination, reason=reason)


class Unreachable(TransientError):
    """No answer from the receiver (a timeout, a refused or lost connection)."""


@dataclass(frozen=True)
class Claimed:
    """A claimed webhook job and the outbox row it delivers."""

    job: int
    attempts: int
    outbox_id: int
    letter_id: int | None
    destination: str
    status: str
    payload: dict[str, Any]
    disabled: str | None  # why its endpoint is disabled (a 410), if it is

    @property
    def line(self) -> tuple[str, int | None]:
        """Each letter's messages reach an endpoint in order: one line per pair."""
        return self.destination, self.letter_id


# A job's outcome: None when delivered (or nothing was left to deliver), else its error.
Outcome = Exception | None


class WebhookDelivery(DeliveryHandler):
    """Delivers webhook outbox rows on the job kind "webhook", with a schedule of its own
    (``runner_settings()``: a day of retries), so that its retries never follow the SMS
    and e-mail schedule.

    The lane claims jobs in batches and hands each batch over at once (``run_batch``):
    one read for the batch's rows, the endpoints' state and their letters' lines; the
    POSTs in outbox order; one write recording what was delivered; each job's outcome. Nothing is
    answered as delivered before it is recorded, so a crash anywhere means a resend with
    the same webhook-id (at least once), never a loss.
    """

    kind = KIND
    history = False  # one delivery per endpoint per event: the outbox row says enough

    def __init__(
        self,
        sessions: sessionmaker[Session],
        sender: WebhookSender,
        clock: Callable[[], datetime],
        schedule: JobsConfig | None = None,
    ) -> None:
        super().__init__(sessions, {}, clock, _DOMAIN)
        self.sender = sender
        self.schedule = schedule
        # The batch's checks only read: never SQLite's one write lock for them.
        self.reads = reads_like(sessions)

    def run(self, job: Job) -> None:
        [outcome] = self.run_batch([job])
        if outcome is not None:
            raise outcome

    def run_batch(self, jobs: list[Job]) -> list[Exception | None]:
        """Deliver the jobs claimed together; each one's outcome (None too when its
        outbox row is gone)."""
        outcomes = self.deliver_batch(jobs)
        return [outcomes.get(job.id) for job in jobs]

    def deliver_batch(self, jobs: list[Job]) -> dict[int, Outcome]:
        """Each job's outcome, by job id."""
        with self.reads() as session:
            batch = claimed_with(session, jobs)
            lines = pending_lines(session, {m.line for m in batch})
        disabled = {m.destination: m.disabled for m in batch if m.disabled is not None}
        outcomes: dict[int, Outcome] = {}
        delivered: list[Claimed] = []
        done: set[int] = set()  # outbox rows delivered in this batch
        down: set[str] = set()  # endpoints that did not answer in this batch
        for message in batch:
            try:
                posted = self._deliver(message, lines.get(message.line, []), done, disabled, down)
            except Exception as exc:  # this message's failure is its own job's, not the batch's
                outcomes[message.job] = exc
            else:
                outcomes[message.job] = None
                if posted:
                    delivered.append(message)
                    done.add(message.outbox_id)
        if delivered:
            try:
                self._record(delivered, next_waiting(lines, delivered, batch))
            except Exception as exc:  # answered as failed, so each is sent again (same id)
                error = TransientError(f"delivered but not recorded: {type(exc).__name__}")
                for message in delivered:
                    outcomes[message.job] = error
        return outcomes

    def _deliver(
        self,
        message: Claimed,
        line: list[int],
        done: set[int],
        disabled: dict[str, str],
        down: set[str],
    ) -> bool:
        """Whether it was POSTed now (False: sent before); raises when it was not taken."""
        if message.status == "sent":
            return False
        url = self.sender.url_of(message.destination)
        if message.destination in disabled:
            raise GiveUp(GONE + disabled[message.destination])
        earlier = next((i for i in line if i < message.outbox_id and i not in done), None)
        if earlier is not None:
            raise Waiting(f"waiting for earlier event msg_{earlier}")
        if message.destination in down:
            # One timeout per batch, not one per message: the batch's other receivers wait
            # for a dead one at most once.
            raise Unreachable(f"{url}: not tried, it did not answer just now")
        try:
            self.sender.post(message.destination, message.outbox_id, message.payload)
        except Unreachable:
            down.add(message.destination)
            raise
        except GiveUp as exc:
            if str(exc).startswith(GONE):
                disabled[message.destination] = str(exc).removeprefix(GONE)
            raise
        return True

    def _record(self, delivered: Sequence[Claimed], waiting: Sequence[int]) -> None:
        """One transaction: the delivered rows sent and purged, and the next message of
        each of their lines, if it backs off behind one of them, due now."""
        now = self.clock()
        with self.sessions.begin() as session:
            keyring = keyring_of(session.get_bind().dialect)
            rows = []
            for message in delivered:
                row = _Sent(KIND, message.destination, dict(message.payload))
                purge(row, keyring)  # docs/privacy.md
                rows.append(
                    {
                        "id": message.outbox_id,
                        "status": "sent",
                        "sent_at": now,
                        "attempts": message.attempts,
                        "payload": row.payload,
                        "destination": row.destination,
                    }
                )
            session.execute(update(OutboxMessage), rows)  # one UPDATE, many rows
            if waiting:
                session.execute(
                    update(Job)
                    .where(
                        Job.kind == KIND,
                        Job.status == jobs.QUEUED,
                        Job.run_after > now,
                        Job.letter_id.in_({m.letter_id for m in delivered}),
                        Job.payload["outbox_id"].as_integer().in_(waiting),
                    )
                    .values(run_after=now)
                    .execution_options(synchronize_session=False)
                )


@dataclass
class _Sent:
    """An outbox row's parts that store.outbox.purge reads and rewrites."""

    kind: str
    destination: str
    payload: dict[str, Any]


def claimed_with(session: Session, jobs: list[Job]) -> list[Claimed]:
    """These claimed webhook jobs with their outbox rows and whether their endpoints are
    disabled, oldest row first."""
    ours = {job.id: job for job in jobs}
    rows = session.execute(
        select(
            Job.id,
            Job.attempts,
            OutboxMessage.id,
            OutboxMessage.letter_id,
            OutboxMessage.destination,
            OutboxMessage.status,
            OutboxMessage.payload,
            case(
                (
                    WebhookCursor.disabled_at.is_not(None),
                    func.coalesce(WebhookCursor.disabled_reason, "disabled"),
                ),
                else_=None,
            ),
        )
        .join(OutboxMessage, OutboxMessage.id == Job.payload["outbox_id"].as_integer())
        .outerjoin(WebhookCursor, WebhookCursor.endpoint == OutboxMessage.destination)
        .where(Job.id.in_(ours))
        .order_by(OutboxMessage.id)
    )
    # Each job answers to its own claim, whatever the table says now.
    return [replace(m, attempts=ours[m.job].attempts) for m in (Claimed(*row) for row in rows)]


def pending_lines(
    session: Session, lines: set[tuple[str, int | None]]
) -> dict[tuple[str, int | None], list[int]]:
    """The pending webhook rows of these (endpoint, letter) lines, in order."""
    found: dict[tuple[str, int | None], list[int]] = {}
    if not lines:
        return found
    rows = session.execute(
        select(OutboxMessage.id, OutboxMessage.destination, OutboxMessage.letter_id)
        .where(
            OutboxMessage.kind == KIND,
            OutboxMessage.status == "pending",
            OutboxMessage.destination.in_({d for d, _ in lines}),
            OutboxMessage.letter_id.in_({letter for _, letter in lines}),
        )
        .order_by(OutboxMessage.id)
    )
    for id_, destination, letter_id in rows:
        if (destination, letter_id) in lines:
            found.setdefault((destination, letter_id), []).append(id_)
    return found


def next_waiting(
    lines: Mapping[tuple[str, int | None], list[int]],
    delivered: Sequence[Claimed],
    batch: Sequence[Claimed],
) -> list[int]:
    """The next pending row of each line a delivery moved on, when it is not in this
    batch: it may be backing off behind the delivered one (its job is due now)."""
    ours = {m.outbox_id for m in batch}
    last: dict[tuple[str, int | None], int] = {}
    for message in delivered:
        last[message.line] = max(last.get(message.line, 0), message.outbox_id)
    waiting = []
    for line, after in last.items():
        following = next((i for i in lines.get(line, []) if i > after), None)
        if following is not None and following not in ours:
            waiting.append(following)
    return waiting


# -- operators ----------------------------------------------------------------------------


def replay(
    sessions: sessionmaker[Session],
    endpoint: str | None,
    since: datetime | None,
    now: datetime | None = None,
) -> int:
    """Send dead-lettered webhook messages again (all, one endpoint's, those fanned out
    since a time), oldest first so each letter's order holds; returns how many."""
    query = select(OutboxMessage).where(
        OutboxMessage.kind == KIND, OutboxMessage.status == "failed"
    )
    if endpoint is not None:
        query = query.where(OutboxMessage.destination == endpoint)
    if since is not None:
        query = query.where(OutboxMessage.created_at >= since)
    with sessions.begin() as session:
        return _requeue(session, query, now or utcnow())


def enable(sessions: sessionmaker[Session], endpoint: str, now: datetime | None = None) -> int:
    """Re-enable an endpoint disabled by a 410 and send again, in order, what was given up
    because of it; fan-out resumes where it stopped. Returns how many were re-queued."""
    with sessions.begin() as session:
        cursor = session.get(WebhookCursor, endpoint, with_for_update=True)
        if cursor is None:
            raise LookupError(f"no webhook endpoint {endpoint!r} has been fanned out to")
        cursor.disabled_at = cursor.disabled_reason = None
        gone = select(OutboxMessage).where(
            OutboxMessage.kind == KIND,
            OutboxMessage.status == "failed",
            OutboxMessage.destination == endpoint,
            OutboxMessage.last_error.startswith(GONE),
        )
        return _requeue(session, gone, now or utcnow())


def _requeue(session: Session, query: Select[OutboxMessage], now: datetime) -> int:
    # Locked: two operators replaying at once queue each message once.
    messages = session.scalars(query.order_by(OutboxMessage.id).with_for_update()).all()
    keyring = keyring_of(session.get_bind().dialect)
    for message in messages:
        unseal(message, keyring)  # sealed when it was given up (store/outbox.py)
        message.status, message.next_attempt_at = "pending", now
        payload = {"outbox_id": message.id}
        jobs.enqueue(session, KIND, letter_id=message.letter_id, payload=payload, at=now)
    return len(messages)
