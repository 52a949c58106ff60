"""Callers through the seats' call queue against the same callers put straight through to a
seat's phone, in one run (issue 20): service level, the queue's added delay, CPU and memory.

    .venv/bin/python -m benchmarks.queue_calls [--callers 60] [--seats 20] [--talk 5-20]
        [--load 0.9] [--seed 1] [--workers N] [--quick] [--keep DIR]

Each phase is a real `hotline serve` (SQLite) with its pjsua2 workers behind Kamailio, the
seats' phones registered there with their digest passwords, and the same schedule:

- callers arrive as a Poisson stream, at the rate that offers the seats ``--load`` of their
  time (0.9: a busy hour), one SIPp process placing them all (each call waits its drawn
  arrival, then dials 12345, presses 9 and stays until the gateway hangs up); each caller
  has a number of their own, so their letter is known to be theirs;
- the operators are one SIPp UAS where every seat's phone registered (SIPp answers any
  Request-URI; the seat is its user part): each call rings 3-12 s and is talked 1-4 min
  (log-normal, median 2 min), both scaled by ``--talk``'s top over 240 s (5-20 s: 1/12),
  the seat hanging up as an operator would. A 12345 day in minutes, not hours: every wait
  the run measures stands for 12 times as long, so the service level is given at 15 s (GB/T
  33358, unscaled, as queue_figures computes it) and at 15 s scaled (1.25 s).

Phase 1, the baseline: no queue. `ivr.agent.uri` is seat 1001's address at Kamailio, so a
worker rings a seat's phone exactly as the queue's offers do (worker, Kamailio, the seat's
registered contact), but every caller is put through at once, as if a seat were always
free. Phase 2: `ivr.agent.queue` with the seats. The figure is press 9 -> a seat's phone
answered (the phone's 200), on the machine's one clock, in each phase; the queue's added
delay is phase 2's less phase 1's (median and p95, and their ratio), also for the callers
who joined while a seat was free (no one waiting ahead, fewer seats talking than signed in),
which is the queue's own cost without waiting for a seat.

A call counts only verified. Phase 2: SIPp was hung up on after the talk, its
``queued_calls`` row says answered with a seat and a talk time, that seat's phone got an
INVITE answered within 3 s of the row's answer and its operator's BYE was answered, and the
letter with the call's Call-ID has the caller's number; and no seat's phone rang while it
was still talking (each an extra failure). Phase 1: hung up on after the talk,
a seat call from the caller's own worker (the 200's Contact; the worker's Via at the phone)
after the key, in order, and the letter. Every other call is printed as a failure.

CPU and memory: `hotline serve` and every process under it (the workers, Kamailio), from
/proc each second (CPU in cores; memory as PSS, so pages the processes share count once),
while the callers call and for 5 s before, seats registered and no caller (the idle cost).
The machine's load average is printed beside them: other work on the machine slows the
gateway, so compare runs made at like loads.

Workers: a caller put through holds two of a worker's four pjsua2 calls (the wheel's
PJSUA_MAX_CALLS), so a worker takes 2 callers in both phases: with the queue by its own rule
(`calls_per_worker: 4`, two calls a caller, docs/acd.md's Capacity), without it by
`calls_per_worker: 2` (the transfer's worker counts callers only). By default there are
workers enough for the busiest moment of the schedule (callers talking or waiting, a FIFO of
the seats played over the drawn times) and a quarter more: a caller past them would get 486.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from benchmarks.common import percentile, ratio
from benchmarks.queue_check import Phase, verify_direct, verify_queue
from benchmarks.queue_rig import (
    Usage,
    by_call,
    caller_side,
    messages,
    seat_legs,
)
from gateway.contract.config import load_config
from gateway.core.queue_figures import SERVICE_SECONDS, QueueFigures, queue_figures
from store.db import make_sessionmaker
from store.models import Letter, QueuedCall
from tests.channels.sip.test_queue_calls import REALM, add_seats, open_store, register
from tests.channels.sip.test_serve import serve_config, wait_until
from tests.channels.sip.test_sipp import FAST
from tests.support.processes import free_port, gateway
from tests.support.sipp import SippUas, run_sipp, scenario

REAL_TALK_SECONDS = (60.0, 240.0)  # a 12345 call: 1-4 minutes with the operator
REAL_RING_SECONDS = (3.0, 12.0)  # the operator picks up after one to three rings
FIRST_SEAT = 1001  # add_seats names seats from here
SEATS_SCENARIO = Path(__file__).with_name("queue_seats.xml")  # the operators' phones
# A worker's callers, each with the call to a seat's phone beside theirs: 4 pjsua2 calls.
CALLERS_PER_WORKER = 2
IDLE_SECONDS = 5.0  # the gateway measured with its seats registered and no caller


@dataclass(frozen=True)
class Schedule:
    arrivals: list[float]  # seconds from the start, one a caller
    rings: list[float]  # seconds, one an answer, in the order the phone is rung
    talks: list[float]
    scale: float  # run seconds per real second
    rate: float  # callers per second

    def numbers(self) -> list[str]:
        return [f"139{n + 1:08d}" for n in range(len(self.arrivals))]


def schedule(
    callers: int, seats: int, talk: tuple[float, float], load: float, seed: int
) -> Schedule:
    rnd = random.Random(seed)
    low, high = talk
    scale = high / REAL_TALK_SECONDS[1]
    median = math.sqrt(low * high)  # 2 min on the real scale
    talks = [min(high, max(low, rnd.lognormvariate(math.log(median), 0.5))) for _ in range(callers)]
    rings = [rnd.uniform(*REAL_RING_SECONDS) * scale for _ in range(callers)]
    rate = load * seats / statistics.mean(t + r for t, r in zip(talks, rings, strict=True))
    at, arrivals = 0.0, []
    for _ in range(callers):
        at += rnd.expovariate(rate)
        arrivals.append(at)
    return Schedule(arrivals, rings, talks, scale, rate)


def busiest(plan: Schedule, seats: int) -> int:
    """Callers in the gateway at the busiest moment, seats served first come first."""
    free = [0.0] * seats
    spans = []
    for arrives, ring, talk in zip(plan.arrivals, plan.rings, plan.talks, strict=True):
        seat = min(range(seats), key=free.__getitem__)
        ends = max(arrives, free[seat]) + ring + talk
        free[seat] = ends
        spans.append((arrives, ends))
    return max(sum(a <= t < e for a, e in spans) for t, _ in spans)


# -- one phase ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    workers: int
    callers: int = CALLERS_PER_WORKER


def phase_config(root: Path, pool: Pool, *, queue: bool) -> Path:
    port, base = free_port(), free_port()
    # With the queue a worker counts two calls a caller (channels/sip/worker.py).
    calls = pool.callers * 2 if queue else pool.callers
    sip = (
        f"    port: {port}\n    workers: {pool.workers}\n    calls_per_worker: {calls}\n"
        f"    worker_base_port: {base}\n    transports: [udp]\n"
    )
    config = serve_config(root, sip)
    always = "working_hours: {start: '00:00', end: '00:00'}"
    agent = "queue: true" if queue else f"uri: 'sip:{FIRST_SEAT}@127.0.0.1:{port}'"
    text = config.read_text(encoding="utf-8").replace(
        "ivr:\n", f"ivr:\n  agent: {{{agent}, {always}}}\n"
    )
    # No caller reaches the maximum wait here: the figure is how long they wait.
    text += (
        "acd: {ring_timeout_seconds: 10, max_wait_seconds: 600,"
        " announce_every_seconds: 30, owner_timeout_seconds: 5}\n"
        f"seats: {{realm: {REALM}}}\n"
    )
    config.write_text(text, encoding="utf-8")
    return config


def callers_scenario(folder: Path) -> Path:
    """call_agent, each call first waiting its arrival ([field0] ms) and calling from its
    own number ([field1])."""
    text = scenario("call_agent").read_text(encoding="ascii")
    for key in ("[caller]", "[display]", "[asserted]"):
        text = text.replace(key, "[field1]")
    arrive = (
        "  <nop>\n    <action>\n"
        '      <assignstr assign_to="arrive_text" value="[field0]"/>\n'
        '      <todouble assign_to="arrive" variable="arrive_text"/>\n'
        '    </action>\n  </nop>\n  <pause variable="arrive"/>\n'
    )
    text = text.replace('<scenario name="call_agent">\n', f'<scenario name="callers">\n{arrive}')
    path = folder / "callers.xml"
    path.write_text(text, encoding="ascii")
    return path


def run_phase(name: str, root: Path, plan: Schedule, seats: int, pool: Pool) -> Phase:
    queue = name == "queue"
    root.mkdir(parents=True)
    config = phase_config(root, pool, queue=queue)
    target = f"127.0.0.1:{load_config(config).channels.sip.port}"
    engines: list[Engine] = []
    with gateway(config) as serve:
        serve.wait_for_line("sip.front")
        wait_until(lambda: sum("worker up" in line for line in serve.lines) >= pool.workers, 120)
        engine = open_store(config, engines)
        passwords = add_seats(engine, *(f"seat{n:02}" for n in range(seats)))
        phone = free_port()
        for seat, password in passwords.items():
            register(target, seat, password, phone)
        answers = root / "answers.csv"
        times = [
            f"{r * 1000:.0f};{t * 1000:.0f}" for r, t in zip(plan.rings, plan.talks, strict=True)
        ]
        answers.write_text("SEQUENTIAL\n" + "\n".join(times) + "\n", encoding="ascii")
        calling = root / "callers"
        calling.mkdir()
        numbers = plan.numbers()
        book = [f"{a * 1000:.0f};{n}" for a, n in zip(plan.arrivals, numbers, strict=True)]
        (calling / "book.csv").write_text("SEQUENTIAL\n" + "\n".join(book) + "\n", "ascii")
        with Usage(serve.pid) as idle:  # the workers ticking, no call yet
            time.sleep(IDLE_SECONDS)
        desk_logs = root / "phones"
        desk = SippUas(SEATS_SCENARIO, phone, log_dir=desk_logs, extra_args=["-inf", str(answers)])
        before = os.getloadavg()[0]
        with desk, Usage(serve.pid) as usage:
            result = run_sipp(
                callers_scenario(calling),
                target,
                calls=len(numbers),
                rate=200,
                concurrency=len(numbers),
                keys=FAST,
                timeout=plan.arrivals[-1] + 180,
                log_dir=calling,
                extra_args=[
                    *("-inf", str(calling / "book.csv")),
                    *("-trace_msg", "-message_file", str(calling / "messages.log")),
                ],
            )
            desk.stop()
            if queue:
                # A caller the queue never settles shows below as a failure, not a crash.
                with contextlib.suppress(AssertionError):
                    wait_until(lambda: _settled(engine), 60)
        after = os.getloadavg()[0]
        history, phones, figures = _read_store(engine, plan.scale if queue else None)
        for one in engines:
            one.dispose()
        (root / "serve.log").write_text("".join(serve.lines), encoding="utf-8")
    traces = by_call(messages(calling / "messages.log"))
    sides = {cid: caller_side(cid, trace) for cid, trace in traces.items()}
    # SIPp gives call k (its Call-ID "k-<pid>@<address>") the book's line k.
    own = {cid: numbers[int(cid.split("-")[0]) - 1] for cid in sides}
    legs = seat_legs(by_call(messages(desk_logs / "messages.log")))
    phase = Phase(
        name=name,
        callers=sides,
        numbers=own,
        legs=legs,
        rows=history,
        phones=phones,
        figures=figures,
        idle=idle,
        usage=usage,
        sipp_failed=result.failed,
        machine_load=(before, after),
    )
    if len(sides) < len(numbers):
        phase.failures["never dialled"] += len(numbers) - len(sides)
    if queue:
        verify_queue(phase, seats)
    else:
        verify_direct(phase)
    shutil.rmtree(root / "prompts", ignore_errors=True)
    return phase


def _read_store(
    engine: Engine, scale: float | None
) -> tuple[list[QueuedCall], dict[str, str], tuple[QueueFigures, QueueFigures] | None]:
    """The queue's history, each letter's caller's number, and with ``scale`` the queue's
    figures at 15 s and at 15 s scaled."""
    with make_sessionmaker(engine)() as session:
        history = list(session.scalars(select(QueuedCall).order_by(QueuedCall.id)))
        phones = {
            letter.external_id: letter.citizen.phone or ""
            for letter in session.scalars(select(Letter))
            if letter.citizen is not None
        }
        figures = None
        if scale is not None:
            ever = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
            figures = (
                queue_figures(session, *ever),
                queue_figures(session, *ever, SERVICE_SECONDS * scale),
            )
        session.expunge_all()
    return history, phones, figures


def _settled(engine: Engine) -> bool:
    """Every caller has left the queue, and every answered call has its talk time."""
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(QueuedCall)).all()
    return bool(rows) and all(
        row.outcome and (row.outcome != "answered" or row.talk_seconds is not None) for row in rows
    )


# -- the report --------------------------------------------------------------------------


def _rate(share: float | None) -> str:
    return "n/a" if share is None else f"{share:.0%}"


def _spread(values: list[float]) -> str:
    if not values:
        return "no calls"
    return (
        f"median {percentile(values, 50):.2f} s, p95 {percentile(values, 95):.2f} s, "
        f"max {max(values):.2f} s ({len(values)} calls)"
    )


def report(plan: Schedule, seats: int, pool: Pool, direct: Phase, queued: Phase) -> bool:
    callers = len(plan.arrivals)
    print(
        f"{callers} callers (Poisson, {plan.rate:.2f}/s over {plan.arrivals[-1]:.0f} s), "
        f"{seats} seats, talk {min(plan.talks):.1f}-{max(plan.talks):.1f} s "
        f"(median {statistics.median(plan.talks):.1f} s), ring "
        f"{min(plan.rings):.2f}-{max(plan.rings):.2f} s; time scale 1/{1 / plan.scale:.0f}; "
        f"{pool.workers} workers x {pool.callers} callers"
    )
    for phase in (direct, queued):
        problems = "; ".join(f"{n} {why}" for why, n in phase.failures.most_common())
        print(
            f"{phase.name}: {len(phase.delays)} of {callers} calls verified"
            f" ({problems or 'no failures'}; SIPp counted {phase.sipp_failed} failed)"
        )
        print(f"  press 9 -> seat answered: {_spread(phase.delays)}")
        print(f"  gateway (serve, workers, Kamailio): {phase.usage.summary()}")
        print(f"    idle before the callers: {phase.idle.summary()}")
        print(
            "  machine load average (1 min), calls starting/ended: "
            f"{phase.machine_load[0]:.1f}/{phase.machine_load[1]:.1f} on {os.cpu_count()} cores"
        )
    assert queued.figures is not None
    at_15, scaled = queued.figures
    print(
        f"queue figures (queued_calls): answered {_rate(at_15.answer_rate)}, abandoned "
        f"{_rate(at_15.abandon_rate)}, answered within 15 s {_rate(at_15.answered_within_rate)},"
        f" within {SERVICE_SECONDS * plan.scale:.2f} s (15 s scaled) "
        f"{_rate(scaled.answered_within_rate)}; wait average "
        f"{at_15.average_wait_seconds or 0:.2f} s, longest {at_15.longest_wait_seconds or 0:.2f}"
        f" s; most in the queue at once (waiting or ringing) {_most_waiting(queued.rows)}"
    )
    print(f"  queue, callers who found a seat free: {_spread(queued.free_delays)}")
    for label, p in (("median", 50), ("p95", 95)):
        q, d = percentile(queued.delays, p), percentile(direct.delays, p)
        print(f"queue's added delay, {label}: {q - d:+.2f} s (queue/baseline {ratio(q, d)})")
    q, d = percentile(queued.free_delays, 50), percentile(direct.delays, 50)
    print(
        f"queue's added delay with a seat free, median: {q - d:+.2f} s "
        f"(queue/baseline {ratio(q, d)})"
    )
    print(
        f"CPU queue/baseline: {ratio(queued.usage.mean_cores, direct.usage.mean_cores)}; "
        f"peak memory queue/baseline: "
        f"{ratio(queued.usage.peak_pss_mb, direct.usage.peak_pss_mb)}"
    )
    return not direct.failures and not queued.failures


def _most_waiting(rows: list[QueuedCall]) -> int:
    never = datetime.max.replace(tzinfo=UTC)
    return max(
        (
            sum(
                1
                for r in rows
                if r.joined_at <= row.joined_at < (r.answered_at or r.left_at or never)
            )
            for row in rows
        ),
        default=0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--callers", type=int, default=60)
    parser.add_argument("--seats", type=int, default=20)
    parser.add_argument("--talk", default="5-20", help="talk time range, seconds (low-high)")
    parser.add_argument("--load", type=float, default=0.9, help="share of the seats' time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, help="SIP workers (default: see the docstring)")
    parser.add_argument("--quick", action="store_true", help="12 callers, 4 seats, talk 3-8 s")
    parser.add_argument("--keep", type=Path, help="keep the SIPp traces and stores here")
    args = parser.parse_args()
    if args.quick:
        args.callers, args.seats, args.talk = 12, 4, "3-8"
    low, high = (float(x) for x in args.talk.split("-"))
    plan = schedule(args.callers, args.seats, (low, high), args.load, args.seed)
    pool = Pool(
        args.workers or max(2, math.ceil(busiest(plan, args.seats) * 1.25 / CALLERS_PER_WORKER))
    )
    root = args.keep or Path(tempfile.mkdtemp(prefix="queue-calls-"))
    root.mkdir(parents=True, exist_ok=True)
    direct = run_phase("baseline", root / "baseline", plan, args.seats, pool)
    queued = run_phase("queue", root / "queue", plan, args.seats, pool)
    ok = report(plan, args.seats, pool, direct, queued)
    print(f"files: {root}")
    if args.keep is None:
        shutil.rmtree(root, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
