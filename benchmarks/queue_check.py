"""How benchmarks/queue_calls.py knows a call was what it counts: each caller answered by a
seat, that seat's phone having taken exactly that call, and the caller's letter stored."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from benchmarks.queue_rig import CallerSide, SeatLeg, Usage
from gateway.core.queue_figures import QueueFigures
from store.models import QueuedCall
from tests.channels.sip.test_sipp import FAST

MENU_WAIT_MS = int(FAST["menu_wait"])  # the caller's pause after the gateway's 200, then 9


@dataclass
class Phase:
    name: str
    callers: dict[str, CallerSide]  # by Call-ID
    numbers: dict[str, str]  # Call-ID -> the caller's number
    legs: list[SeatLeg]
    rows: list[QueuedCall]
    phones: dict[str, str]  # each letter's citizen's number, by the letter's external id
    figures: tuple[QueueFigures, QueueFigures] | None  # at 15 s, and at 15 s scaled
    idle: Usage
    usage: Usage
    sipp_failed: int
    # The machine's 1-min load average as the calls began and ended: other work on it
    # slows the gateway.
    machine_load: tuple[float, float]
    delays: list[float] = field(default_factory=list)  # verified: press 9 -> the seat's 200
    free_delays: list[float] = field(default_factory=list)  # who found a seat free (queue)
    failures: Counter[str] = field(default_factory=Counter)


def _letter_of(phase: Phase, call_id: str) -> bool:
    """Exactly one letter from the call, with the number the caller called from."""
    keys = [key for key in phase.phones if key.startswith(call_id)]
    return len(keys) == 1 and phase.phones[keys[0]] == phase.numbers.get(call_id)


def _pressed(side: CallerSide) -> float | None:
    return None if side.acked_at is None else side.acked_at + MENU_WAIT_MS / 1000


def verify_queue(phase: Phase, seats: int) -> None:
    used: set[str] = set()
    for call_id, side in phase.callers.items():
        pressed = _pressed(side)
        row = next((r for r in phase.rows if r.call_id.startswith(call_id)), None)
        if pressed is None or not side.hung_up_on:
            phase.failures["caller not answered and hung up on"] += 1
            continue
        if row is None or row.outcome != "answered" or row.answered_at is None:
            phase.failures[f"queue outcome {row.outcome if row else 'none'}"] += 1
            continue
        answered = row.answered_at.timestamp()
        near = [
            leg
            for leg in phase.legs
            if leg.seat == row.seat
            and leg.call_id not in used
            and leg.answered_at is not None
            and abs(leg.answered_at - answered) <= 3
        ]
        if not near:
            phase.failures["the seat's phone has no such call"] += 1
            continue
        leg = min(near, key=lambda leg: abs((leg.answered_at or 0) - answered))
        used.add(leg.call_id)
        if not leg.hung_up or row.talk_seconds is None:
            phase.failures["talk not ended by the operator"] += 1
            continue
        if not _letter_of(phase, call_id):
            phase.failures["no letter with the caller's number"] += 1
            continue
        assert leg.answered_at is not None
        phase.delays.append(leg.answered_at - pressed)
        if _found_a_seat_free(row, phase.rows, seats):
            phase.free_delays.append(leg.answered_at - pressed)
    if overlaps := _overlaps(phase.legs):
        phase.failures["a seat's phone rang while it talked"] += overlaps


def _overlaps(legs: list[SeatLeg]) -> int:
    """Calls that reached a seat's phone before its last call ended (never offer a busy
    seat, nor one seat two callers)."""
    last: dict[str, float] = {}
    count = 0
    for leg in legs:  # in the order they rang
        if leg.invited_at < last.get(leg.seat, -math.inf):
            count += 1
        last[leg.seat] = max(last.get(leg.seat, -math.inf), leg.ended_at or math.inf)
    return count


def _found_a_seat_free(row: QueuedCall, rows: list[QueuedCall], seats: int) -> bool:
    joined = row.joined_at
    talking = sum(
        1
        for r in rows
        if r.answered_at is not None
        and r.answered_at <= joined < (r.ended_at or datetime.max.replace(tzinfo=UTC))
    )
    ahead = sum(
        1
        for r in rows
        if r.joined_at < joined
        and joined < (r.answered_at or r.left_at or datetime.max.replace(tzinfo=UTC))
    )
    return talking + ahead < seats


def verify_direct(phase: Phase) -> None:
    """Without the queue a seat call does not say whose it is; each worker puts its
    callers through in the order they pressed 9, so they are paired in order, per worker."""
    legs: dict[int | None, list[SeatLeg]] = {}
    for leg in phase.legs:
        legs.setdefault(leg.worker_port, []).append(leg)
    ordered = sorted(phase.callers.values(), key=lambda side: _pressed(side) or math.inf)
    for side in ordered:
        pressed = _pressed(side)
        if pressed is None or not side.hung_up_on:
            phase.failures["caller not answered and hung up on"] += 1
            continue
        waiting = legs.get(side.worker_port, [])
        found = next(
            (leg for leg in waiting if pressed - 0.05 <= leg.invited_at <= pressed + 10), None
        )
        if found is None or found.answered_at is None or not found.hung_up:
            phase.failures["no seat call from its worker after the key"] += 1
            continue
        waiting.remove(found)
        if not _letter_of(phase, side.call_id):
            phase.failures["no letter with the caller's number"] += 1
            continue
        phase.delays.append(found.answered_at - pressed)
