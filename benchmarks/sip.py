"""Phone calls under load: SIPp callers, each from its own number, through Kamailio into the
SIP worker pool, with the real letter storage and routing, against a baseline of SIPp
answering machines behind the same kind of Kamailio with room for every call.

    .venv/bin/python -m benchmarks.sip --workers 25 --calls-per-worker 4 \\
        --levels 20,60,100,150,200,300 [--pools 25x4,20x4] [--postgresql URL]

A call is ~8.7 s: the menu key 1 by RFC 4733, 7.08 s of G.711 speech (SIPp's g711a.pcap),
then the caller hangs up. At each level SIPp keeps that many calls up at once (placing them
faster than they end) for 2 x level calls. A call counts only once verified in the store:
one letter per call (distinct dialog), the citizen's phone the number that call used, the
key heard (a complaint), a transcription job, and a WAV holding every voiced 20 ms frame the
caller sent (tests/support/audio.kept) with the speech spanning what SIPp played within
20 ms. Routing is on with no speech model: the voicemails are routed on what is known and
none may be linked as a duplicate (no transcript says so), although each level calls from
the numbers of the level before.

The baseline is the same calls to SIPp UASes behind Kamailio with 32 slots each and enough
of them for 1.25 x the highest level: the dispatcher's cap is not what stops it. Memory is
the resident set (RSS, and PSS, which shares Kamailio's shared memory and the libraries out
fairly) of the SIP workers and Kamailio at the level's peak, per call held at that peak.
Not a timed test: it is run by hand and its figures go to docs/channels/sip.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from channels.sip.kamailio import Kamailio
from channels.sip.pool import options_ping
from gateway.contract.config import SipConfig, load_config
from gateway.engine.keys import pii_keyring
from store.attachments import AttachmentStore
from store.db import make_engine, make_sessionmaker
from store.models import Job, Letter
from tests.channels.sip.conftest import short_prompts
from tests.support.audio import FRAME, RATE, Kept, kept, pcap_audio, voiced_frames, wav_audio
from tests.support.processes import Child, free_port, gateway
from tests.support.sipp import MESSAGE_PCAP, SCENARIOS, SippUas, run_sipp, scenario

CALL_SECONDS = 8.7  # key 0.5 s in, 1 s to the beep, 7.1 s of speech, the BYE
KEYS = {"menu_wait": "300", "record_wait": "1000"}
SCENARIO = "call_numbered_voicemail_hangup"
FIRST_NUMBER = 13900000000
SPAN_TOLERANCE = 0.020  # seconds
BASELINE_SLOTS = 32  # per SIPp UAS (no pjsua limit): the baseline is not capped by it
MESSAGE = pcap_audio(MESSAGE_PCAP)


# -- processes: CPU and memory from /proc ------------------------------------------------


def descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def sip_processes(gateway_pid: int) -> list[int]:
    """The SIP workers and Kamailio (with its children) under the gateway."""
    chosen = []
    for pid in descendants(gateway_pid):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if b"kamailio" in command or b"sip worker" in command:
            chosen.append(pid)
    return chosen


def cpu_seconds(pids: list[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def memory_mb(pids: list[int]) -> tuple[float, float]:
    """Resident and proportional set size (MB) of these processes together."""
    rss = pss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                name, _, value = line.partition(":")
                if name == "Rss":
                    rss += int(value.split()[0])
                elif name == "Pss":
                    pss += int(value.split()[0])
        except OSError:
            continue
    return rss / 1024, pss / 1024


@contextmanager
def peak_memory(pids: list[int], every: float = 0.5) -> Iterator[list[float]]:
    """Samples RSS and PSS while the block runs; yields [peak RSS, peak PSS] in MB."""
    peak = [0.0, 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            rss, pss = memory_mb(pids)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


# -- calls -------------------------------------------------------------------------------


def number(call: int) -> str:
    """The caller of SIPp's call ``call`` (1, 2, ...): the same numbers at every level."""
    return str(FIRST_NUMBER + call - 1)


@dataclass(frozen=True)
class Placed:
    calls: int
    successful: int
    failed: int
    held: int  # the most calls up at once (SIPp's CurrentCall)
    errors: str


def place(target: str, level: int, logs: Path) -> Placed:
    calls = level * 2
    logs.mkdir(parents=True, exist_ok=True)
    numbers = logs / "callers.csv"
    numbers.write_text("SEQUENTIAL\n" + "".join(f"{number(n)};\n" for n in range(1, calls + 1)))
    rate = 1.25 * level / CALL_SECONDS  # faster than calls end: -l keeps "level" up
    result = run_sipp(
        scenario(SCENARIO), target, calls=calls, rate=rate, concurrency=level, keys=KEYS,
        timeout=CALL_SECONDS * 3 + calls / rate + 30, log_dir=logs,
        extra_args=["-inf", str(numbers)],
    )  # fmt: skip
    held = 0
    rows = [line.split(";") for line in (logs / "stat.csv").read_text().splitlines() if line]
    if rows and "CurrentCall" in rows[0]:
        at = rows[0].index("CurrentCall")
        held = max((int(row[at]) for row in rows[1:] if row[at].isdigit()), default=0)
    return Placed(calls, result.successful, result.failed, held, result.errors)


# -- what the store holds ----------------------------------------------------------------


def speech_span(audio: np.ndarray) -> float | None:
    """Seconds from the message's first voiced frame to its last, as found in ``audio``."""
    frames = voiced_frames(MESSAGE)
    haystack = audio.astype("<i2").tobytes()

    def at(i: int) -> int | None:
        needle = MESSAGE[i * FRAME + FRAME // 4 : (i + 1) * FRAME - FRAME // 4]
        offset = haystack.find(needle.astype("<i2").tobytes())
        while offset >= 0 and offset % 2:
            offset = haystack.find(needle.astype("<i2").tobytes(), offset + 1)
        return None if offset < 0 else offset // 2

    first, last = at(frames[0]), at(frames[-1])
    if first is None or last is None:
        return None
    return (last - first) / RATE


def missing_frames(audio: np.ndarray) -> str:
    """Which of the message's voiced frames (in order, 0-based) the recording lacks."""
    haystack = audio.astype("<i2").tobytes()
    frames = voiced_frames(MESSAGE)
    gone = [
        n
        for n, i in enumerate(frames)
        if haystack.find(MESSAGE[i * FRAME + FRAME // 4 : (i + 1) * FRAME - FRAME // 4].tobytes())
        < 0
    ]
    shown = ",".join(map(str, gone[:8])) + (",..." if len(gone) > 8 else "")
    return f"{len(gone)} [{shown}]"


SENT_SPAN = (voiced_frames(MESSAGE)[-1] - voiced_frames(MESSAGE)[0]) * FRAME / RATE


@dataclass
class Checked:
    letters: int = 0
    verified: int = 0
    frames_missing: int = 0  # voiced frames of all calls together not found in the WAVs
    worst_missing: int = 0  # the most frames one call lost
    worst_span_error_ms: float = 0.0
    callers: int = 0  # distinct citizen phones
    dialogs: int = 0  # distinct external_id
    duplicates: int = 0  # letters linked as a duplicate
    unrouted: int = 0  # still "received" when checked
    problems: list[str] = field(default_factory=list)


def check(sessions: sessionmaker[Session], after_id: int, wavs: AttachmentStore) -> Checked:
    with sessions() as s:
        letters = list(
            s.scalars(
                select(Letter)
                .where(Letter.id > after_id)
                .options(selectinload(Letter.citizen), selectinload(Letter.attachments))
            )
        )
        jobs = set(
            s.scalars(
                select(Job.letter_id).where(Job.kind == "transcribe", Job.letter_id > after_id)
            )
        )
        out = Checked(letters=len(letters))
        phones: set[str] = set()
        dialogs = Counter(letter.external_id for letter in letters)
        for letter in letters:
            call_id = letter.external_id.split(";", 1)[0]
            head = call_id.split("-", 1)[0]
            expected = number(int(head)) if head.isdigit() else "?"
            phone = letter.citizen.phone if letter.citizen is not None else None
            if phone:
                phones.add(phone)
            wrong = []
            if letter.duplicate_of_id is not None and not letter.transcript:
                out.duplicates += 1
                wrong.append("linked as a duplicate with no transcript")
            if letter.status == "received":
                out.unrouted += 1
            if dialogs[letter.external_id] > 1:
                wrong.append("another letter of the same dialog")
            if phone != expected:
                wrong.append(f"phone {phone} for call {head} (expected {expected})")
            if letter.category != "complaint":
                wrong.append(f"category {letter.category}")
            if letter.id not in jobs:
                wrong.append("no transcription job")
            if len(letter.attachments) != 1:
                wrong.append(f"{len(letter.attachments)} attachments")
            else:
                audio = wav_audio(wavs.path_of(letter.attachments[0].sha256).read_bytes())
                got: Kept = kept(MESSAGE, audio)
                lost = got.sent - got.found
                out.frames_missing += lost
                out.worst_missing = max(out.worst_missing, lost)
                span = speech_span(audio)
                error = abs(span - SENT_SPAN) * 1000 if span is not None else math.inf
                out.worst_span_error_ms = max(out.worst_span_error_ms, error)
                if lost:
                    wrong.append(f"voiced frames missing: {missing_frames(audio)} of {got.sent}")
                if error > SPAN_TOLERANCE * 1000:
                    wrong.append(f"speech spans {span} s, sent {SENT_SPAN:.3f} s")
            if wrong:
                out.problems.append(f"{letter.tracking_number} ({call_id}): {', '.join(wrong)}")
            else:
                out.verified += 1
        out.callers = len(phones)
        out.dialogs = len(dialogs)
    return out


def settle(
    sessions: sessionmaker[Session], after_id: int, expected: int, timeout: float = 90
) -> None:
    """Until the level's letters are stored and routed, or nothing changes for a while."""
    until, last, quiet = time.monotonic() + timeout, (-1, -1), time.monotonic()
    while time.monotonic() < until:
        with sessions() as s:
            rows = list(s.execute(select(Letter.status).where(Letter.id > after_id)))
        now = (len(rows), sum(1 for (status,) in rows if status != "received"))
        if now[0] >= expected and now[1] == now[0]:
            return
        if now != last:
            last, quiet = now, time.monotonic()
        elif time.monotonic() - quiet > 20:
            return
        time.sleep(1)


# -- the levels --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    level: int
    placed: Placed
    checked: Checked | None = None
    cpu_share: float = 0.0  # of one core, the whole gateway
    rss: float = 0.0
    pss: float = 0.0


def gateway_levels(
    workers: int, per_worker: int, levels: list[int], root: Path, postgresql: str | None
) -> list[Row]:
    root.mkdir(parents=True)
    port, base = free_port(), 20000 + free_port() % 20000
    config = root / "config.yaml"
    config.write_text(
        f"http:\n  port: {free_port()}\n"
        "channels:\n  smtp: {enabled: false}\n  gsm: {enabled: false}\n"
        f"  sip:\n    port: {port}\n    workers: {workers}\n"
        f"    calls_per_worker: {per_worker}\n"
        f"    worker_base_port: {base}\n    transports: [udp]\n"
        f"    prompts_dir: {short_prompts(root / 'prompts')}\n"
        "stt: {workers: 0}\nrouting: {enabled: true}\njobs: {poll_interval_seconds: 0.5}\n"
        "ivr:\n  voicemail: {silence_seconds: 3, min_seconds: 1}\n",
        encoding="utf-8",
    )
    env = {"HOTLINE_DATABASE_URL": postgresql} if postgresql else {}
    loaded = load_config(config)
    rows: list[Row] = []
    with gateway(config, **env) as serve:
        try:
            ready(serve, base, workers)
            engine = make_engine(postgresql or loaded.database.url, pii=pii_keyring(loaded.pii))
            sessions = make_sessionmaker(engine)
            wavs = AttachmentStore(loaded.storage.attachments_dir)
            for level in levels:
                with sessions() as s:
                    after = s.scalar(select(Letter.id).order_by(Letter.id.desc()).limit(1)) or 0
                tree = [serve.pid, *descendants(serve.pid)]
                cpu0, started = cpu_seconds(tree), time.monotonic()
                with peak_memory(sip_processes(serve.pid)) as peak:
                    placed = place(f"127.0.0.1:{port}", level, root / f"sipp-{level}")
                share = (cpu_seconds(tree) - cpu0) / (time.monotonic() - started)
                settle(sessions, after, placed.calls)
                checked = check(sessions, after, wavs)
                exits = sum("worker.exited" in line for line in serve.lines)
                rows.append(Row(level, placed, checked, share, peak[0], peak[1]))
                print(
                    f"  {workers}x{per_worker} {describe(rows[-1])}; worker exits so far {exits}",
                    flush=True,
                )
                for problem in checked.problems[:5]:
                    print(f"    {problem}", flush=True)
                if placed.failed:
                    print(f"    sipp: {placed.errors[-1500:]}", flush=True)
                if len(rows) >= 2 and all(verified(r) < r.placed.calls / 2 for r in rows[-2:]):
                    break  # two levels past collapse: the rest says nothing new
            engine.dispose()
        finally:
            (root / "gateway.log").write_text("".join(serve.lines))
            serve.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):  # then killed on the way out
                serve.wait(60)
    return rows


def ready(serve: Child, base: int, workers: int) -> None:
    serve.wait_for_line("sip.front", timeout=120)
    until = time.monotonic() + 240
    waiting = {base + n for n in range(workers)}
    while waiting:  # every worker answers, then Kamailio's pings see them all
        assert time.monotonic() < until, f"workers on {sorted(waiting)} never came up"
        waiting = {p for p in waiting if not asyncio.run(options_ping("127.0.0.1", p))}
    time.sleep(3)


def baseline_levels(levels: list[int], root: Path) -> list[Row]:
    """The same calls to SIPp answering machines behind Kamailio, room for all of them."""
    count = max(4, math.ceil(max(levels) * 1.25 / BASELINE_SLOTS))
    start = free_port()
    uases = [SippUas(SCENARIOS / "kamailio_uas.xml", start + n) for n in range(count)]
    for uas in uases:
        uas.start()
    port = free_port()
    settings = SipConfig(
        port=port, workers=count, transports=["udp"],
        kamailio={"run_dir": root / "kamailio-baseline", "ping_interval_seconds": 1},
    ).model_copy(update={"calls_per_worker": BASELINE_SLOTS})  # fmt: skip
    print(f"baseline: {count} SIPp UASes x {BASELINE_SLOTS} slots behind Kamailio", flush=True)
    rows: list[Row] = []
    try:
        with Kamailio(settings, [("127.0.0.1", u.port) for u in uases]) as kamailio:
            kamailio.wait_for_output("worker up", 15)
            time.sleep(3)
            for level in levels:
                placed = place(f"127.0.0.1:{port}", level, root / f"baseline-{level}")
                rows.append(Row(level, placed))
                print(f"  baseline {describe(rows[-1])}", flush=True)
    finally:
        for uas in uases:
            uas.stop()
    return rows


def verified(row: Row) -> int:
    return row.checked.verified if row.checked is not None else row.placed.successful


def describe(row: Row) -> str:
    p = row.placed
    text = (
        f"{row.level:4d} at once: {p.calls} placed, {p.successful} ok by SIPp, {p.failed} failed,"
        f" {p.held} held at the peak"
    )
    if row.checked is not None:
        c = row.checked
        text += (
            f"; {c.letters} letters, {c.verified} verified, {c.frames_missing} frames missing,"
            f" {c.callers} callers, {c.duplicates} duplicates, {c.unrouted} unrouted"
        )
    return text


HEADER = (
    "| at once | placed | verified | failed | frames missing (worst call) | span error ms |"
    " distinct callers / dialogs | duplicates | baseline held (ok/placed) | ratio |"
    " CPU (cores) | RSS MB | RSS MB/call | PSS MB/call |"
)


def table(pool: str, rows: list[Row], base: dict[int, Row]) -> str:
    lines = [f"gateway {pool}:", HEADER, "|" + "---|" * (HEADER.count("|") - 1)]
    for row in rows:
        c, p, b = row.checked, row.placed, base.get(row.level)
        assert c is not None
        held = max(p.held, 1)
        failed = p.calls - c.verified
        if b is not None:
            against = f"{b.placed.held} ({b.placed.successful}/{b.placed.calls})"
            ratio = f"{c.verified / b.placed.successful:.2f}" if b.placed.successful else "-"
        else:
            against, ratio = "-", "-"
        lines.append(
            f"| {row.level} | {p.calls} | {c.verified} | {failed} |"
            f" {c.frames_missing} ({c.worst_missing}) | {c.worst_span_error_ms:.0f} |"
            f" {c.callers} / {c.dialogs} | {c.duplicates} | {against} | {ratio} |"
            f" {row.cpu_share:.2f} | {row.rss:.0f} | {row.rss / held:.1f} | {row.pss / held:.1f} |"
        )
    return "\n".join(lines)


def pools(args: argparse.Namespace) -> list[tuple[int, int]]:
    if not args.pools:
        return [(args.workers, args.calls_per_worker)]
    return [tuple(int(n) for n in pool.split("x")) for pool in args.pools.split(",")]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=25)
    parser.add_argument("--calls-per-worker", type=int, default=4)
    parser.add_argument("--pools", help="several pools, e.g. 25x4,5x32 (workers x calls each)")
    parser.add_argument("--levels", default="20,60,100,150,200,300")
    parser.add_argument("--postgresql", help="a PostgreSQL URL instead of SQLite")
    parser.add_argument("--keep", help="keep the logs, store and recordings in this new folder")
    parser.add_argument("--no-baseline", action="store_true", help="for a quick look only")
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        base = {} if args.no_baseline else {r.level: r for r in baseline_levels(levels, root)}
        tables = []
        for workers, per_worker in pools(args):
            rows = gateway_levels(
                workers, per_worker, levels, root / f"{workers}x{per_worker}", args.postgresql
            )
            tables.append(table(f"{workers} workers x {per_worker} calls", rows, base))
            print(tables[-1], flush=True)
    print("\n" + "\n\n".join(tables))
    best = {row.level for row in base.values() if row.placed.successful == row.placed.calls}
    print(f"baseline held every call at: {sorted(best)}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
