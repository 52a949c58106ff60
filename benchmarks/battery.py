"""The fault battery of issue 15, rerun against a real `hotline serve` on PostgreSQL.

    .venv/bin/python -m benchmarks.battery [--only kill,cut,forged,unplug]
        [--kills 20] [--cut-seconds 120] [--forged 10000] [--unplugs 5] [--seed 15] [--keep]

Each part starts its own gateway on its own schema of the `battery` database:

1. kill: mail (smtplib), web forms and API letters (httpx), signed Twilio SMS webhooks and
   SMS through the modem simulator arrive together while the gateway is killed with SIGKILL
   at random moments and started again. Every acknowledged contact must be stored once and
   whole (text, sender, attachment digest); SMS still on the SIM are counted, not lost.
2. cut: the line to PostgreSQL is cut (a TCP proxy) under steady load: when /healthz turns
   degraded and back, when the spool is empty again, and nothing acknowledged lost while
   mail refused with 451 and forms refused with 503 are sent again until stored.
3. forged: forged and malformed Twilio webhooks among good signed ones: none may store
   anything or get a 5xx; the rate of refusals beside the rate of good requests.
4. unplug: the modem's pty is closed under the gateway at a random moment: seconds until
   /healthz says 503 with the modem down, and 200 once it is plugged back.

The figures are counts checked against the store and seconds measured in this run; the one
rate (part 3) is printed beside its baseline from the same run, as a ratio. Not a test: it
does not run in CI; it prints what failed beside the figures and exits 1 if anything did.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.battery_check import Check, check, letters_by_tag, table
from benchmarks.battery_forge import forged
from benchmarks.battery_load import ApiLetter, Client, Load, Mail, ModemSms, TwilioSms, WebForm
from benchmarks.battery_rig import (
    Modem,
    Rig,
    Sample,
    Watcher,
    counts,
    metric,
    rig,
    say,
    secs,
)
from channels.gsm.pdu import parse_pdu

MODEM = "gsm:modem-1"


def citizens(label: str, r: Rig) -> list[Client]:
    """Two mail servers, two browsers, an integrator, Twilio on two connections, a phone."""
    assert r.modem is not None and r.twilio is not None
    token = r.gateway.cli("tokens", "create", f"battery-{label}", "--scope", "write").strip()
    smtp = r.gateway.settings.ports.smtp
    return [
        Mail(label, smtp),
        Mail(label, smtp),
        WebForm(label, r.base),
        WebForm(label, r.base),
        ApiLetter(label, r.base, token),
        TwilioSms(label, r.base, r.twilio),
        TwilioSms(label, r.base, r.twilio),
        ModemSms(label, r.modem),
    ]


def on_sim(modem: Modem) -> Callable[[], set[str]]:
    def texts() -> set[str]:
        return {parse_pdu(pdu).text for pdu in modem("stored")["stored"].values()}

    return texts


def settle(load: Load, modem: Modem, timeout: float) -> tuple[float, float | None]:
    """Resend until every contact is acknowledged, then wait for the SIM to be read empty;
    (seconds until all were acknowledged, seconds more until the SIM was empty or None)."""
    began = time.monotonic()
    load.drain(timeout)
    acked = time.monotonic() - began
    load.stop()
    began = time.monotonic()
    while modem.stored():
        if time.monotonic() - began > timeout:
            return acked, None
        time.sleep(0.1)
    return acked, time.monotonic() - began


def deaths_seen(samples: list[Sample], lives: list[tuple[float, float]]) -> list[str]:
    """Parts /healthz said were down within a life after they had been up in it (a part
    still coming up after a start is not a death)."""
    found = []
    for began, ended in lives:
        up: set[str] = set()
        for s in samples:
            if not began <= s.at < ended or s.status == 0:
                continue
            for part, state in s.body.get("parts", {}).items():
                if state == "ok":
                    up.add(part)
                elif part in up:
                    found.append(f"/healthz: {part} down {s.at - began:.1f} s into a life")
                    up.discard(part)
    return found


def outcome(
    part: str, load: Load, total: Check, deaths: list[str], sim_empty: float | None
) -> list[str]:
    """Print what went wrong beside the figures; the problems, one line each."""
    for line in deaths[:10]:
        say(f"  ! {line[:240]}")
    # The same answer again and again (a client resends) is one line with its count.
    unexpected = Counter(line.split(": ", 1)[-1] for line in load.unexpected())
    for line, n in unexpected.most_common(5):
        say(f"  ! {n}× {line[:240]}")
    for line in load.failures()[:10]:
        say(f"  ! refused: {line[:240]}")
    problems = []
    if total.lost or total.doubled or total.altered:
        problems.append(
            f"{part}: {total.lost} lost, {total.doubled} doubled, {total.altered} altered"
        )
    if load.pending() or load.failures():
        problems.append(
            f"{part}: {load.pending()} never acknowledged, {len(load.failures())} refused"
        )
    if load.unexpected():
        problems.append(f"{part}: {len(load.unexpected())} answers 5xx where the docs promise 503")
    if deaths:
        problems.append(f"{part}: {len(deaths)} channel deaths")
    if sim_empty is None:
        problems.append(f"{part}: SMS left unread on the SIM ({total.on_sim})")
    return problems


# -- 1. kill -9 under mixed load -------------------------------------------------------------


def kills(args: argparse.Namespace, workdir: Path, rng: random.Random) -> list[str]:
    say(f"1. kill -9 ×{args.kills} at random moments under mixed load (PostgreSQL)")
    with rig("kill", workdir, modem=True, smtp=True, twilio=True) as r:
        assert r.modem is not None
        load = Load(citizens("K", r), {"gsm": 0.25}, args.seed)
        starts = [r.gateway.start()]
        ready = time.monotonic()
        lives: list[tuple[float, float]] = []
        in_flight = fresh = worst = stored = 0
        with Watcher(r.base, args.poll) as watcher:
            load.start()
            for _ in range(args.kills):
                time.sleep(rng.uniform(args.min_up, args.max_up))
                in_flight += load.in_flight() > 0
                r.gateway.kill()
                lives.append((ready, time.monotonic()))
                fresh += r.letters() > stored
                stored = r.letters()
                with load.lock:
                    items = list(load.items)
                # Between two lives: what was acknowledged so far is stored, once.
                midway = check(r.schema.engine, items, final=False, on_sim=on_sim(r.modem))
                worst = max(worst, sum(c.lost + c.doubled + c.altered for c in midway.values()))
                starts.append(r.gateway.start())
                ready = time.monotonic()
            acked, sim_empty = settle(load, r.modem, args.settle)
            lives.append((ready, time.monotonic()))
            deaths = deaths_seen(watcher.samples, lives) + r.gateway.deaths()
        total = table(check(r.schema.engine, load.items, True, on_sim(r.modem)), load.answers())
    say(
        f"  kills with requests on the wire: {in_flight}/{args.kills}; lives that stored new "
        f"letters: {fresh}/{args.kills}; start to serving: median {statistics.median(starts):.1f} s"
    )
    say(
        f"  lost, doubled or altered after any one kill: {worst}; all acknowledged "
        f"{acked:.0f} s after the load, SIM read empty {secs(sim_empty)} later"
    )
    say(f"  channel deaths (/healthz parts and log): {len(deaths)}")
    return outcome("kill", load, total, deaths, sim_empty)


# -- 2. PostgreSQL cut -------------------------------------------------------------------------


def cut(args: argparse.Namespace, workdir: Path) -> list[str]:
    say(f"2. PostgreSQL cut for {args.cut_seconds:.0f} s under steady load")
    with rig("cut", workdir, modem=True, smtp=True, twilio=True, cut=True) as r:
        assert r.modem is not None and r.line is not None
        pace = dict.fromkeys(("email", "web", "api", "twilio", "gsm"), args.steady)
        load = Load(citizens("C", r), pace, args.seed)
        r.gateway.start()
        with Watcher(r.base, args.poll) as watcher:
            load.start()
            time.sleep(args.warm)
            before = load.answers()
            r.line.down()
            cut_at = time.monotonic()
            red = watcher.wait_for(
                lambda s: s.status != 200 or s.body.get("database") != "ok",
                cut_at,
                args.cut_seconds,
            )
            time.sleep(max(0.0, cut_at + args.cut_seconds - time.monotonic()))
            spooled = metric(r.base, "hotline_contacts_spooled_total")
            during = [s for s in watcher.samples if s.at >= cut_at]
            r.line.up()
            mended = time.monotonic()
            green = watcher.wait_for(
                lambda s: s.status == 200 and s.body.get("status") == "ok", mended, 120
            )
            drained = watcher.wait_for(
                lambda s: s.body.get("database") == "ok" and s.body.get("spool_depth") == 0,
                mended,
                120,
            )
            acked, sim_empty = settle(load, r.modem, args.settle)
            deaths = deaths_seen(watcher.samples, [(cut_at - args.warm, time.monotonic())])
        answers = load.answers()
        total = table(check(r.schema.engine, load.items, True, on_sim(r.modem)), answers)
        deaths += r.gateway.deaths()
        s = r.gateway.settings
    refused = Counter(
        {
            f"{ch} {code}": answers[ch][code] - before.get(ch, Counter())[code]
            for ch in answers
            for code in answers[ch]
            if code[0] in "45"
        }
    )
    statuses = Counter(str(x.body.get("status", "no answer")) for x in during)
    down = sorted({p for x in during for p in x.down})
    say(
        f"  /healthz not ok {secs(red.at - cut_at if red else None)} after the cut (polled every "
        f"{args.poll} s; the database is tried on each request, connect timeout "
        f"{s.connect_timeout_seconds:.0f} s); while cut: {counts(statuses)}"
        + (f", parts down: {', '.join(down)}" if down else "")
    )
    say(
        f"  /healthz ok {secs(green.at - mended if green else None)} after the line came back; "
        f"spool empty {secs(drained.at - mended if drained else None)} after (drain interval "
        f"{s.spool_drain_seconds:.0f} s); contacts spooled while cut: {spooled:.0f}"
    )
    say(f"  refused while cut, sent again until stored: {counts(refused)}")
    say(f"  all acknowledged {acked:.0f} s after the load, SIM read empty {secs(sim_empty)} later")
    say(f"  channel deaths (/healthz parts and log): {len(deaths)}")
    problems = outcome("cut", load, total, deaths, sim_empty)
    if red is None or green is None or drained is None:
        problems.append("cut: /healthz never told the outage, or the recovery")
    return problems


# -- 4. a channel down --------------------------------------------------------------------------


def unplug(args: argparse.Namespace, workdir: Path, rng: random.Random) -> list[str]:
    say(
        f"4. the modem unplugged ×{args.unplugs} at random moments, "
        f"{args.unplug_seconds:.0f} s each"
    )
    with rig("unplug", workdir, modem=True, smtp=False, twilio=False) as r:
        assert r.modem is not None
        s = r.gateway.settings
        r.gateway.start()
        reds: list[float | None] = []
        greens: list[float | None] = []
        with Watcher(r.base, 0.1) as watcher:
            whole_ = watcher.wait_for(lambda x: x.body.get("status") == "ok", 0, 60)
            assert whole_ is not None, "the gateway never came up whole"
            for n in range(args.unplugs):
                time.sleep(rng.uniform(0, s.gsm_sweep_seconds * 2))  # anywhere in a sweep
                r.modem("disconnect")
                out = time.monotonic()
                red = watcher.wait_for(lambda x: x.status == 503 and MODEM in x.down, out, 60)
                reds.append(red.at - out if red else None)
                r.modem("deliver_text", sender=f"+8613900{n:06d}", text=f"〔U{n}〕拔出期间的短信")
                time.sleep(max(0.0, out + args.unplug_seconds - time.monotonic()))
                r.modem("reconnect")
                back = time.monotonic()
                green = watcher.wait_for(lambda x: x.status == 200 and not x.down, back, 120)
                greens.append(green.at - back if green else None)
                deadline = time.monotonic() + 60
                while r.modem.stored() and time.monotonic() < deadline:
                    time.sleep(0.1)
            answers = Counter(x.status for x in watcher.samples)
        found, _ = letters_by_tag(r.schema.engine)
        failed = len(r.gateway.log_lines("gsm.modem_failed"))
        deaths = [d for d in r.gateway.deaths() if "gsm.modem_failed" not in d]
    stored = sum(1 for n in range(args.unplugs) if f"U{n}" in found)
    limit = s.gsm_sweep_seconds + 0.1  # one sweep, and the poll's resolution
    timely = sum(1 for red in reds if red is not None and red <= limit)
    say(
        f"  /healthz 503 with {MODEM} down after: {', '.join(secs(x) for x in reds)}; within one "
        f"sweep interval ({s.gsm_sweep_seconds} s, +0.1 s polling): {timely}/{args.unplugs}"
    )
    say(
        f"  /healthz 200 after plugging back: {', '.join(secs(x) for x in greens)} (reconnects "
        f"back off from {s.reconnect_min_seconds:.0f} s, doubling to "
        f"{s.reconnect_max_seconds:.0f} s)"
    )
    say(
        f"  SMS sent while unplugged and stored after: {stored}/{args.unplugs}; /healthz "
        f"answers: {counts(answers)}; gsm.modem_failed lines (expected): {failed}; other "
        f"deaths: {len(deaths)}"
    )
    problems = []
    if timely != args.unplugs or None in greens:
        problems.append(
            f"unplug: /healthz red later than one sweep interval {args.unplugs - timely}×"
        )
    if stored != args.unplugs or deaths:
        problems.append(f"unplug: {args.unplugs - stored} SMS lost, {len(deaths)} deaths")
    return problems


PARTS: dict[str, Callable[[argparse.Namespace, Path, random.Random], list[str]]] = {
    "kill": kills,
    "cut": lambda args, workdir, _: cut(args, workdir),
    "forged": forged,
    "unplug": unplug,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(PARTS), help="parts to run, comma separated")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument(
        "--min-up", type=float, default=1.0, help="seconds of load before a kill, at least"
    )
    parser.add_argument("--max-up", type=float, default=6.0, help="... and at most")
    parser.add_argument("--cut-seconds", type=float, default=120)
    parser.add_argument("--warm", type=float, default=5.0, help="seconds of load before the cut")
    parser.add_argument(
        "--steady",
        type=float,
        default=0.5,
        help="seconds between a client's contacts during the cut",
    )
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between /healthz polls")
    parser.add_argument("--forged", type=int, default=10_000)
    parser.add_argument("--good", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--unplugs", type=int, default=5)
    parser.add_argument("--unplug-seconds", type=float, default=5.0)
    parser.add_argument(
        "--settle", type=float, default=60, help="most seconds to wait for the rest after the load"
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the gateways' configs and logs")
    args = parser.parse_args()
    chosen = [p.strip() for p in args.only.split(",") if p.strip()]
    if set(chosen) - set(PARTS):
        parser.error(
            f"unknown parts: {sorted(set(chosen) - set(PARTS))}; known: {', '.join(PARTS)}"
        )
    rng = random.Random(args.seed)
    problems: list[str] = []
    began = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="battery-"))
    if args.keep:
        say(f"(configs and logs kept in {workdir})")
    try:
        for name in chosen:
            started = time.monotonic()
            problems += PARTS[name](args, workdir, rng)
            say(f"  ({time.monotonic() - started:.0f} s)")
            say()
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    say(f"battery: {len(problems)} problem(s) in {time.monotonic() - began:.0f} s")
    for problem in problems:
        say(f"  ! {problem}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
