"""Phone calls under load: SIPp callers through Kamailio into the SIP worker pool, each
call ~10 s through the menu (RFC 2833 key 1) into a voicemail (7 s of G.711 speech, then the
caller hangs up), with
the real letter storage and transcription job queueing.

    .venv/bin/python -m benchmarks.sip [--workers 25] [--levels 20,40,60,80,100] [--postgresql URL]

At each level SIPp keeps that many calls up at once (rate = level / call length) for two
rounds of calls. A level is held when every call succeeded, every key was heard (each
letter is a complaint) and every voicemail was stored with its audio. The baseline is the
same load against SIPp answering machines behind the same Kamailio in the same run: the
ratio says how much of the front door's own capacity the gateway's workers keep.
Prints the highest level held, CPU (share of one core) and memory of workers and Kamailio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from channels.sip.kamailio import Kamailio
from channels.sip.pool import options_ping
from gateway.config import SipConfig, load_config
from gateway.keys import pii_keyring
from store.db import make_engine, make_sessionmaker
from store.models import Attachment, Job, Letter
from tests.channels.sip.conftest import short_prompts
from tests.support.processes import free_port, gateway
from tests.support.sipp import SCENARIOS, SippUas, run_sipp, scenario

CALL_SECONDS = 10.0
KEYS = {"menu_wait": "300", "record_wait": "1000"}


def cpu_and_memory(pids: list[int]) -> tuple[float, float]:
    """Total CPU seconds and resident MB of these processes right now."""
    ticks, pages = 0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
            pages += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK"), pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def children_of(parent: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                found.append(int(stat.parent.name))
        except (OSError, ValueError):
            continue
    return found


def level_run(target: str, level: int) -> tuple[bool, str]:
    calls, rate = level * 2, level / CALL_SECONDS
    result = run_sipp(
        scenario("call_menu_voicemail_hangup"), target, calls=calls, rate=rate,
        concurrency=level, keys=KEYS, timeout=CALL_SECONDS * 2 + calls / rate + 30,
    )  # fmt: skip
    held = result.ok and result.successful == calls
    if not held:  # what went wrong, for the reader of the figures
        print(result.errors[:3000], file=sys.stderr)
    return held, f"{result.successful}/{calls} ok, {result.failed} failed"


def baseline(levels: list[int], workers: int, root: Path) -> int:
    """The same load against SIPp answering machines behind the same kind of Kamailio."""
    base = free_port()
    # Stand-in workers that answer the dispatcher's pings and hold each call until its BYE.
    uases = [SippUas(SCENARIOS / "kamailio_uas.xml", base + n) for n in range(workers)]
    for uas in uases:
        uas.start()
    port = free_port()
    settings = SipConfig(
        port=port, workers=workers, transports=["udp"],
        kamailio={"run_dir": root / "kamailio-baseline", "ping_interval_seconds": 1},  # type: ignore[arg-type]
    )  # fmt: skip
    best = 0
    try:
        with Kamailio(settings, [("127.0.0.1", u.port) for u in uases]) as kamailio:
            kamailio.wait_for_output("worker up", 15)
            time.sleep(2)
            for level in levels:
                held, said = level_run(f"127.0.0.1:{port}", level)
                print(f"  baseline {level:4d} calls at once: {said}", flush=True)
                if not held:
                    break
                best = level
    finally:
        for uas in uases:
            uas.stop()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=25)
    parser.add_argument("--levels", default="20,40,60,80,100")
    parser.add_argument("--postgresql", help="a PostgreSQL URL instead of SQLite")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port, base = free_port(), 20000 + free_port() % 20000
        prompts = short_prompts(root / "prompts")
        config = root / "config.yaml"
        config.write_text(
            f"http:\n  port: {free_port()}\n"
            "channels:\n  smtp: {enabled: false}\n  gsm: {enabled: false}\n"
            f"  sip:\n    port: {port}\n    workers: {args.workers}\n"
            f"    worker_base_port: {base}\n    transports: [udp]\n    prompts_dir: {prompts}\n"
            "stt: {workers: 0}\nrouting: {enabled: false}\n"
            "ivr:\n  voicemail: {silence_seconds: 3, min_seconds: 1}\n",
            encoding="utf-8",
        )
        env = {"HOTLINE_DATABASE_URL": args.postgresql} if args.postgresql else {}
        url = args.postgresql or load_config(config).database.url
        best, figures = 0, ""
        with gateway(config, **env) as serve:
            serve.wait_for_line("sip.front", timeout=120)
            until = time.monotonic() + 180
            waiting = {base + n for n in range(args.workers)}
            while waiting:  # every worker answers, then Kamailio's pings see them all
                assert time.monotonic() < until, f"workers on {sorted(waiting)} never came up"
                waiting = {p for p in waiting if not asyncio.run(options_ping("127.0.0.1", p))}
            time.sleep(3)
            # The gateway's own keys: HOTLINE_PII_KEYS, or the key file it made.
            engine = make_engine(url, pii=pii_keyring(load_config(config).pii))
            sessions = make_sessionmaker(engine)
            for level in levels:
                with sessions() as s:
                    before = s.scalar(select(func.count()).select_from(Letter)) or 0
                pids = [serve.pid, *children_of(serve.pid)]
                cpu0, _ = cpu_and_memory(pids)
                started = time.monotonic()
                held, said = level_run(f"127.0.0.1:{port}", level)
                cpu1, memory = cpu_and_memory(pids)
                wall = time.monotonic() - started
                time.sleep(3)
                with sessions() as s:
                    new = (
                        select(Letter)
                        .where(Letter.id > 0)
                        .order_by(Letter.id.desc())
                        .limit(level * 2)
                    )
                    stored = list(s.scalars(new))
                    total = s.scalar(select(func.count()).select_from(Letter)) or 0
                    complaints = sum(1 for letter in stored if letter.category == "complaint")
                    audio = s.scalar(
                        select(func.count())
                        .select_from(Attachment)
                        .where(
                            Attachment.letter_id.in_([letter.id for letter in stored]),
                            Attachment.size > 8000 * 2 * 5,
                        )
                    )
                    jobs = s.scalar(
                        select(func.count())
                        .select_from(Job)
                        .where(
                            Job.kind == "transcribe",
                            Job.letter_id.in_([letter.id for letter in stored]),
                        )
                    )
                calls = level * 2
                complete = total - before == calls and complaints == audio == jobs == calls
                crashes = sum("worker.exited" in line for line in serve.lines)
                print(
                    f"gateway {level:4d} calls at once: {said}; stored {total - before}, "
                    f"worker exits so far {crashes}, "
                    f"keys heard {complaints}, audio {audio}, jobs {jobs}; "
                    f"CPU {100 * (cpu1 - cpu0) / wall:.0f}% of a core, memory {memory:.0f} MB "
                    f"({len(pids)} processes)",
                    flush=True,
                )
                if not (held and complete):
                    break
                best = level
                figures = f"CPU {100 * (cpu1 - cpu0) / wall:.0f}% of a core, {memory:.0f} MB"
            engine.dispose()
        front = baseline(levels, args.workers, root)
    print(f"most calls held at once, all stored: gateway {best} ({figures}); baseline {front}")
    print(f"ratio gateway/baseline: {best / front if front else float('nan'):.2f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
