"""Intake to routed under a mixed load (issue 16): mail, SMS, web form posts and (with
--calls) voicemails at a steady rate into a real `hotline serve`, first with nothing else
queued (phase 1, the baseline), then while a 200-page fax is being OCR'd and 1,000
webhooks are owed to a receiver that answers each after about a second, some with 503
(phase 2). The aim: p99 of intake to routed <= 5 s in phase 2.

    .venv/bin/python -m benchmarks.mixed                       # 60 s a phase, SQLite
    .venv/bin/python -m benchmarks.mixed --quick               # 20 s, 20 pages, 100 webhooks
    .venv/bin/python -m benchmarks.mixed --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test
    .venv/bin/python -m benchmarks.mixed --calls               # SIPp voicemails too

Intake to routed is read from the store, per letter: from its "received" event (written in
the transaction that stored it) to its routing outcome (assigned, triage, duplicate or
rejected, written in the routing job's transaction). Only verified letters count: every
acknowledged contact (SMTP 250, the form's tracking number, an SMS on the SIM, a call SIPp
completed) must be stored once, with its text, and routed once; every one that is not is
printed as a failure beside the figures, and the run exits 1. Queue depths per lane come
from /metrics (``hotline_jobs``, ``hotline_jobs_oldest_due_seconds``) every few seconds.

The 1,000 webhooks are owed the way an integrator's outage owes them: the receiver answers
410 Gone to the first one (the gateway disables the endpoint), enough letters are sent before
phase 1 that, with phase 1's own, about 1,000 webhooks are waiting, and phase 2 begins with
`hotline webhooks enable`: all of them are due at once, to a receiver that takes a second.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, distinct, func, select

from benchmarks.common import percentile, postgres_schema
from benchmarks.mixed_check import (
    OUTCOMES,
    Matcher,
    Stored,
    Verdict,
    outbox_pending,
    owed_once_enabled,
    read_store,
    receipts,
    verify,
    verify_calls,
    webhooks_owed,
)
from benchmarks.mixed_load import Calls, Rates, Sent, SteadyLoad, send_fax, send_mail
from benchmarks.mixed_rig import (
    ENDPOINT,
    LANES,
    MetricsPoller,
    ModemControl,
    SlowReceiver,
    choose_ports,
    write_config,
)
from store.db import make_engine
from store.models import Event, Letter
from tests.conftest import PII
from tests.support.processes import ROOT, Child, gateway

AIM_P99 = 5.0
NO_PROGRESS_SECONDS = 120  # a wait for routing gives up when nothing was routed this long


@dataclass
class Phase:
    name: str
    sent: list[Sent]
    calls: Calls
    verdict: Verdict | None = None


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="of steady load per phase")
    parser.add_argument("--fax-pages", type=int, default=200)
    parser.add_argument("--webhooks", type=int, default=1000, help="owed as phase 2 begins")
    parser.add_argument(
        "--quick", action="store_true", help="--seconds 20 --fax-pages 20 --webhooks 100"
    )
    parser.add_argument("--mail-rate", type=float, default=2.0, help="mails a second")
    parser.add_argument("--sms-rate", type=float, default=1.0)
    parser.add_argument("--web-rate", type=float, default=1.0)
    parser.add_argument("--calls", action="store_true", help="voicemails by SIPp (needs sipp, sox)")
    parser.add_argument("--call-rate", type=float, default=0.2)
    parser.add_argument("--webhook-delay", type=float, default=1.0, help="the receiver's answer")
    parser.add_argument("--poll", type=float, default=3.0, help="seconds between /metrics reads")
    parser.add_argument("--fax-wait", type=float, default=900, help="for the fax to be routed")
    parser.add_argument("--database-url", help="a PostgreSQL server (a schema of its own is made)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.fax_pages, args.webhooks = 20, 20, 100
    calls = args.calls and bool(shutil.which("sipp")) and bool(shutil.which("sox"))
    if args.calls and not calls:
        print("--calls: sipp or sox is not installed; running without calls")
    rates = Rates(args.mail_rate, args.sms_rate, args.web_rate, args.call_rate if calls else 0)
    root = Path(tempfile.mkdtemp(prefix="hotline-mixed-"))
    try:
        return run(args, rates, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, rates: Rates, root: Path) -> int:
    ports = choose_ports(rates.calls > 0)
    receiver = SlowReceiver(delay=args.webhook_delay)
    config = write_config(root, ports, receiver.port, args.fax_pages)
    env: dict[str, str] = {}
    drop: Callable[[], None] | None = None
    url = f"sqlite:///{root / 'var' / 'hotline.db'}"
    if args.database_url:
        url, drop = postgres_schema(args.database_url)
        env["HOTLINE_DATABASE_URL"] = url
    database = "PostgreSQL" if args.database_url else "SQLite"
    began = time.monotonic()
    poller = MetricsPoller(f"http://127.0.0.1:{ports.http}/metrics", args.poll, began)
    engine: Engine | None = None
    try:
        with gateway(config, **env) as serve:
            serve.wait_for_line("gsm.connected", 60)
            if rates.calls:
                serve.wait_for_line("sip.worker.ready", 60)
            engine = make_engine(url, pii=PII)
            modem = ModemControl(ports.modem_control)
            poller.start()
            sip = f"127.0.0.1:{ports.sip}" if ports.sip else None
            load = SteadyLoad(ports.smtp, f"http://127.0.0.1:{ports.http}", modem, sip, root)
            report = drive(args, rates, serve, config, env, engine, load, receiver, poller)
            left = modem("stored")["stored"]
            report.sms_sent = len(modem("sent")["sent"])
            report.owed_after = outbox_pending(engine)
            modem.close()
            poller.finish()
        stored = read_store(engine)
        return print_report(args, rates, database, report, stored, engine, poller, receiver, left)
    finally:
        poller.stop.set()
        receiver.close()
        if engine is not None:
            engine.dispose()
        if drop is not None:
            drop()


@dataclass
class Drive:
    preload: list[Sent]
    phases: list[Phase]
    fax: Sent
    owed_at_start: int
    owed_at_end: int
    ocr_running_at_start: bool
    fax_wait: float
    sms_sent: int = 0  # receipts the modem sent, the whole run
    owed_after: dict[str, int] = field(default_factory=dict)  # outbox pending at the end


def drive(
    args: argparse.Namespace,
    rates: Rates,
    serve: Child,
    config: Path,
    env: dict[str, str],
    engine: Engine,
    load: SteadyLoad,
    receiver: SlowReceiver,
    poller: MetricsPoller,
) -> Drive:
    per_phase = sum(rates.per_phase(args.seconds).values())
    # Each letter owes the endpoint letter.created and letter.assigned (or .closed).
    poller.phase = "preload"
    count = max(1, math.ceil(args.webhooks / 2) - per_phase)
    with ThreadPoolExecutor(max_workers=8) as pool:
        preload = list(pool.map(lambda n: send_mail(load.smtp_port, "preload", n), range(count)))
    serve.wait_for_line("webhook.disabled", 120)
    settle(engine, acknowledged(preload, []))

    poller.phase = "baseline"
    baseline = Phase("baseline", [], load.run("baseline", rates, args.seconds))
    baseline.sent, load.sent = load.sent, []
    poller.phase = "baseline: routing what is left"
    settle(engine, acknowledged(preload + baseline.sent, [baseline.calls]))

    poller.phase = "webhooks to owe"
    for _ in range(3):  # duplicates owe one webhook, not two: top up until enough are owed
        short = args.webhooks - owed_once_enabled(engine, ENDPOINT)
        if short <= 0:
            break
        more = range(len(preload), len(preload) + math.ceil(short / 2))
        with ThreadPoolExecutor(max_workers=8) as pool:
            preload += pool.map(lambda n: send_mail(load.smtp_port, "preload", n), more)
        settle(engine, acknowledged(preload + baseline.sent, [baseline.calls]))

    poller.phase = "fax and webhooks"
    receiver.gone = False
    expected = owed_once_enabled(engine, ENDPOINT)
    fax = send_fax(load.smtp_port, args.fax_pages)
    subprocess.run(
        [sys.executable, "-m", "gateway.cli", "--config", str(config), "webhooks", "enable",
         ENDPOINT],
        cwd=ROOT, env={**os.environ, **env}, check=True, capture_output=True,
    )  # fmt: skip
    # What enable requeues at once, then what the next fan-out queues.
    owed_at_start = wait_for(lambda: at_least(webhooks_owed(engine), expected), 30)
    ocr_running = bool(wait_for(lambda: ocr_running_now(poller), 60))

    poller.phase = "mixed"
    mixed = Phase("mixed", [], load.run("mixed", rates, args.seconds))
    mixed.sent, load.sent = load.sent, []
    owed_at_end = webhooks_owed(engine)
    poller.phase = "mixed: routing what is left"
    settle(
        engine, acknowledged(preload + baseline.sent + mixed.sent, [baseline.calls, mixed.calls])
    )
    poller.phase = "fax"
    waited = time.monotonic()
    wait_for(lambda: fax_routed(engine, fax), args.fax_wait)
    return Drive(
        preload, [baseline, mixed], fax, owed_at_start, owed_at_end, ocr_running,
        time.monotonic() - waited,
    )  # fmt: skip


def acknowledged(sent: list[Sent], calls: list[Calls]) -> int:
    answered = sum(c.result.successful for c in calls if c.result is not None)
    return sum(1 for s in sent if s.error is None) + answered


def settle(engine: Engine, expected: int) -> None:
    """Until ``expected`` letters (the fax aside) are routed, or nothing more is routed for
    NO_PROGRESS_SECONDS: the store is another process's work, read every half second."""
    routed = (
        select(func.count(distinct(Event.letter_id)))
        .join(Letter, Letter.id == Event.letter_id)
        .where(Event.kind.in_(OUTCOMES), Letter.channel != "fax")
    )
    seen, grew = -1, time.monotonic()
    while True:
        with engine.connect() as conn:
            now = int(conn.execute(routed).scalar_one())
        if now >= expected:
            return
        if now != seen:
            seen, grew = now, time.monotonic()
        elif time.monotonic() - grew > NO_PROGRESS_SECONDS:
            return
        time.sleep(0.5)


def wait_for(value: Callable[[], int], timeout: float) -> int:
    until = time.monotonic() + timeout
    while not (found := value()) and time.monotonic() < until:
        time.sleep(0.5)
    return found


def at_least(found: int, wanted: int) -> int:
    return found if found >= wanted else 0


def ocr_running_now(poller: MetricsPoller) -> int:
    last = poller.samples[-1] if poller.samples else None
    return int(last.jobs.get(("ocr", "running"), 0)) if last else 0


def fax_routed(engine: Engine, fax: Sent) -> int:
    query = (
        select(func.count())
        .select_from(Event)
        .join(Letter, Letter.id == Event.letter_id)
        .where(Letter.external_id == fax.key, Event.kind.in_(OUTCOMES))
    )
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# -- the report ---------------------------------------------------------------------------


def figures(samples: list[float]) -> str:
    if not samples:
        return "no letters"
    return (
        f"n={len(samples)} p50 {percentile(samples, 50):.2f} s, p99 {percentile(samples, 99):.2f}"
        f" s, max {max(samples):.2f} s"
    )


def print_report(
    args: argparse.Namespace,
    rates: Rates,
    database: str,
    drive: Drive,
    stored: list[Stored],
    engine: Engine,
    poller: MetricsPoller,
    receiver: SlowReceiver,
    left_on_sim: dict[str, str],
) -> int:
    matcher = Matcher(stored)
    preload = verify(drive.preload, matcher)
    for phase in drive.phases:
        phase.verdict = verify(phase.sent, matcher)
        if phase.calls.numbers:
            answered = phase.calls.result.successful if phase.calls.result else 0
            called = verify_calls(phase.calls.numbers, answered, matcher)
            merge(phase.verdict, called)
            result = phase.calls.result
            failed = result.failed if result else len(phase.calls.numbers)
            if failed:
                why = phase.calls.error or "SIPp counted them failed"
                phase.verdict.failures[f"phone: calls not completed ({why})"] += failed
    fax = matcher.letters_of(drive.fax)
    matcher.claimed.update(s.id for s in fax)
    strangers = [s for s in stored if s.id not in matcher.claimed]

    print(
        f"\nmixed load ({database}, {os.cpu_count()} CPUs): {args.seconds:g} s a phase of mail "
        f"{rates.mail:g}/s, SMS {rates.sms:g}/s, web form {rates.web:g}/s"
        + (f", calls {rates.calls:g}/s" if rates.calls else ", no calls")
        + f"; {len(drive.preload)} more mails, before and after phase 1, for webhooks to owe"
    )
    print(f"preload: {preload.acknowledged} acknowledged; {problems(preload)}")
    base, mixed = (p.verdict for p in drive.phases)
    assert base is not None and mixed is not None
    print(
        f"phase 2 load: a {args.fax_pages}-page fax "
        f"({'OCR running' if drive.ocr_running_at_start else 'OCR NOT seen running'} as it "
        f"began), {drive.owed_at_start} webhooks owed as it began, {drive.owed_at_end} at its "
        f"end, to a receiver answering after {args.webhook_delay:g} s (1 in "
        f"{receiver.fail_every} with 503)"
    )
    print("\nintake -> routed (the letter's received event to its routing outcome):")
    for phase in drive.phases:
        v = phase.verdict
        assert v is not None
        print(f"  {phase.name:8} all    {figures(v.all_seconds())}; {v.acknowledged} acknowledged;"
              f" {problems(v)}")  # fmt: skip
        for channel, seconds in sorted(v.seconds.items()):
            print(f"  {'':8} {channel:6} {figures(seconds)}")
        print(f"  {'':8} client's acknowledgement -> routed: {figures(v.end_to_end)}")
        print(f"  {'':8} outcomes: {dict(v.outcomes)}")
        waited, unsent = receipts(engine, v.letters["sms"])
        print(f"  {'':8} their SMS receipts, queued -> sent: {figures(waited)}; {unsent} unsent")
    b, m = base.all_seconds(), mixed.all_seconds()
    for p in (50, 99):
        low, high = percentile(b, p), percentile(m, p)
        ratio = f"{high / low:.2f}" if low > 0 else "n/a"
        print(f"  p{p} mixed/baseline = {high:.2f} s / {low:.2f} s = {ratio}")
    p99 = percentile(m, 99)
    met = "met" if m and p99 <= AIM_P99 else "NOT met"
    print(f"  aim p99 <= {AIM_P99:g} s under the mixed load: {met} ({p99:.2f} s)")

    print_fax(drive, fax)
    print(
        f"\nwebhooks: receiver answered {dict(receiver.answers)}, {len(receiver.delivered)} "
        f"distinct delivered by the end; SMS receipts sent by the modem: {drive.sms_sent}; "
        f"outbox still pending at the end: {drive.owed_after}"
    )
    print_depths(poller)
    failures = sum(sum(v.failures.values()) for v in (preload, base, mixed))
    if strangers:
        print(f"\nFAILURE: {len(strangers)} letters nobody sent (or stored twice under other keys)")
    if left_on_sim:
        print(f"FAILURE: {len(left_on_sim)} SMS left on the SIM at the end")
    if not fax or not fax[0].outcomes:
        print("FAILURE: the fax was not stored and routed")
    ok = not (failures or strangers or left_on_sim) and bool(fax and fax[0].outcomes)
    print("\nnothing lost, nothing doubled" if ok else "\nFAILURES above")
    return 0 if ok else 1


def merge(into: Verdict, other: Verdict) -> None:
    into.acknowledged += other.acknowledged
    for channel, seconds in other.seconds.items():
        into.seconds[channel].extend(seconds)
    into.outcomes.update(other.outcomes)
    into.failures.update(other.failures)


def problems(v: Verdict) -> str:
    if not v.failures:
        return "no failures"
    return "FAILURES: " + "; ".join(f"{n}x {why}" for why, n in v.failures.most_common())


def print_fax(drive: Drive, fax: list[Stored]) -> None:
    if drive.fax.error:
        print(f"\nfax: refused: {drive.fax.error}")
        return
    if not fax:
        print("\nfax: acknowledged, never stored")
        return
    letter = fax[0]
    ocr = "; ".join(f"{kind} {detail}" for kind, _, detail in letter.ocr) or "no OCR outcome"
    read = ""
    if letter.received and letter.ocr:
        read = f", read {(letter.ocr[-1][1] - letter.received).total_seconds():.0f} s after intake"
    seconds = letter.seconds
    routed = "not routed" if seconds is None else f"routed {seconds:.0f} s after intake"
    print(f"\nfax: {ocr}{read}; {routed} (waited {drive.fax_wait:.0f} s after phase 2)")


def print_depths(poller: MetricsPoller) -> None:
    print(f"\nqueues from /metrics every {poller.interval:g} s (queued/running, oldest due s):")
    busy = {lane for s in poller.samples for (lane, _), n in s.jobs.items() if n}
    lanes = [lane for lane in LANES if lane in busy or lane == "route"]
    print("  " + f"{'t s':>6}  {'phase':30}" + "".join(f"{lane:>22}" for lane in lanes))
    for s in poller.samples:
        cells = "".join(
            f"{int(s.jobs.get((lane, 'queued'), 0)):>8}/{int(s.jobs.get((lane, 'running'), 0)):<3}"
            f"{s.oldest.get(lane, 0):>9.1f}s"
            for lane in lanes
        )
        print(f"  {s.at:>6.0f}  {s.phase:30}{cells}")
    if poller.errors:
        print(f"  /metrics unanswered: {dict(poller.errors)}")


if __name__ == "__main__":
    sys.exit(main())
