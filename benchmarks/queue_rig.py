"""What benchmarks/queue_calls.py reads the run with: SIPp's message traces (who was
answered when, by which seat, through which worker) and the gateway's processes' CPU and
memory from /proc (psutil is not in the venv)."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# "----------------------------------------------- 2026-12-05 06:19:35.575961", then
# "UDP message sent (709 bytes):" or "UDP message received [709] bytes :", then the message.
_BLOCK = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n\w+ message (sent|received)[^\n]*\n\n"
    r"(.*?)(?=^-{20,} |\Z)",
    re.M | re.S,
)
_PORT = re.compile(r"\d+\.\d+\.\d+\.\d+:(\d+)")


@dataclass(frozen=True)
class Message:
    at: float  # POSIX seconds (SIPp writes the local wall clock)
    sent: bool
    start: str  # the request or status line
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name.lower()]

    @property
    def call_id(self) -> str:
        return (self.header("Call-ID") or [""])[0]


def messages(path: Path) -> list[Message]:
    """Every message of a SIPp ``-trace_msg`` file, in the order written."""
    found = []
    for stamp, direction, text in _BLOCK.findall(path.read_text(errors="replace")):
        lines = text.strip("\n").splitlines()
        headers = []
        for line in lines[1:]:
            if not line.strip():
                break
            name, _, value = line.partition(":")
            headers.append((name.strip(), value.strip()))
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
        found.append(Message(at, direction == "sent", lines[0].strip(), tuple(headers)))
    return found


def by_call(found: list[Message]) -> dict[str, list[Message]]:
    calls: dict[str, list[Message]] = {}
    for message in found:
        calls.setdefault(message.call_id, []).append(message)
    return calls


@dataclass(frozen=True)
class CallerSide:
    """One SIPp caller: when the gateway answered (its ACK), which worker holds the call
    (the 200's Contact), and whether the gateway hung up on it and was answered."""

    call_id: str
    acked_at: float | None
    worker_port: int | None
    hung_up_on: bool


def caller_side(call_id: str, trace: list[Message]) -> CallerSide:
    ack = next((m for m in trace if m.sent and m.start.startswith("ACK ")), None)
    ok = next((m for m in trace if not m.sent and m.start.startswith("SIP/2.0 200")), None)
    contact = ok.header("Contact") if ok else []
    port = _PORT.search(contact[0]) if contact else None
    bye = [n for n, m in enumerate(trace) if not m.sent and m.start.startswith("BYE ")]
    answered = bool(bye) and any(
        m.sent and m.start.startswith("SIP/2.0 200") for m in trace[bye[0] + 1 :]
    )
    return CallerSide(call_id, ack.at if ack else None, int(port[1]) if port else None, answered)


@dataclass(frozen=True)
class SeatLeg:
    """One call a worker put through to a seat's phone, as the phone (SIPp UAS) saw it."""

    call_id: str
    seat: str  # the Request-URI's user: the seat whose registered contact it is
    worker_port: int | None  # the worker's Via, below Kamailio's
    invited_at: float
    answered_at: float | None  # the phone's 200
    ended_at: float | None  # the operator's BYE
    hung_up: bool  # and it was answered


def seat_legs(trace: dict[str, list[Message]]) -> list[SeatLeg]:
    legs = []
    for call_id, found in trace.items():
        invite = next((m for m in found if not m.sent and m.start.startswith("INVITE ")), None)
        if invite is None:
            continue
        user = re.match(r"INVITE sips?:([^@;]+)@", invite.start)
        vias = invite.header("Via")
        port = _PORT.search(vias[-1]) if vias else None
        ok = next((m for m in found if m.sent and m.start.startswith("SIP/2.0 200")), None)
        bye = [n for n, m in enumerate(found) if m.sent and m.start.startswith("BYE ")]
        ended = found[bye[0]].at if bye else None
        done = bool(bye) and any(
            not m.sent and m.start.startswith("SIP/2.0 200") for m in found[bye[0] + 1 :]
        )
        legs.append(
            SeatLeg(
                call_id,
                user[1] if user else "",
                int(port[1]) if port else None,
                invite.at,
                ok.at if ok else None,
                ended,
                done,
            )
        )
    return sorted(legs, key=lambda leg: leg.invited_at)


# -- CPU and memory ----------------------------------------------------------------------


@dataclass
class Usage:
    """The CPU (in cores) and proportional memory (PSS, so shared pages count once) of a
    process and all its descendants, sampled every ``every`` seconds from /proc."""

    root: int
    every: float = 1.0
    cores: list[float] = field(default_factory=list)
    pss_mb: list[float] = field(default_factory=list)
    processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Usage:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        last, last_at = _cpu_ticks(_tree(self.root)), time.monotonic()
        while not self._stop.wait(self.every):
            pids = _tree(self.root)
            now, at = _cpu_ticks(pids), time.monotonic()
            used = sum(now[pid] - last[pid] for pid in now if pid in last)
            self.cores.append(used / tick / (at - last_at))
            self.pss_mb.append(sum(_pss_kb(pid) for pid in pids) / 1024)
            self.processes = max(self.processes, len(pids))
            last, last_at = now, at

    def summary(self) -> str:
        if not self.cores:
            return "no samples"
        mean = sum(self.cores) / len(self.cores)
        pss = sum(self.pss_mb) / len(self.pss_mb)
        return (
            f"CPU {mean:.2f} cores mean, {max(self.cores):.2f} peak (1 s); "
            f"memory (PSS) {pss:.0f} MB mean, {max(self.pss_mb):.0f} MB peak; "
            f"{self.processes} processes"
        )

    @property
    def mean_cores(self) -> float:
        return sum(self.cores) / len(self.cores) if self.cores else 0.0

    @property
    def peak_pss_mb(self) -> float:
        return max(self.pss_mb, default=0.0)


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        parent = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _cpu_ticks(pids: list[int]) -> dict[int, int]:
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks


def _pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    found = re.search(r"^Pss:\s+(\d+) kB", text, re.M)
    return int(found[1]) if found else 0
