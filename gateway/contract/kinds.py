"""The names of background jobs and the lanes they run in, apart from the work they name: a
channel that queues a job need not import (and load) what runs it.

Each lane has its own claim loops (``jobs.lanes`` in config), so a slow or failing kind
never holds up another lane: a 200-page fax being read never delays the routing of the
next letter, and a webhook receiver that times out never delays a citizen's receipt.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

ROUTE = "route"  # gateway.engine.dispatch: classify, screen, link, assign
TRANSCRIBE = "transcribe"  # ivr.transcription: a voicemail's words (STT worker processes)
OCR = "ocr"  # gateway.engine.ocr: a fax's words
DELIVER = "deliver"  # gateway.engine.outbox: receipts, replies and urge notices by e-mail
DELIVER_SMS = "deliver_sms"  # gateway.engine.outbox: the same by SMS, at the modems' send rate
WEBHOOK = "webhook"  # gateway.engine.webhooks: events to integrators
MEDIA = "twilio_media"  # channels.twilio.media: an MMS's pictures, fetched from Twilio

LANES: dict[str, tuple[str, ...]] = {
    "route": (ROUTE,),
    "notify": (DELIVER,),
    # Apart from notify: a modem sends a few SMS a minute, and a morning's SMS receipts
    # waiting on it never hold up an e-mail receipt or a department's notice.
    "sms": (DELIVER_SMS,),
    # Apart from notify: a thousand owed to a slow receiver never hold up a citizen's receipt.
    "webhooks": (WEBHOOK,),
    "media": (MEDIA,),
    "ocr": (OCR,),
    "transcribe": (TRANSCRIBE,),
}


def lane_of(kind: str) -> str:
    """The lane a kind runs in; a kind nobody placed runs in its own lane of that name."""
    return next((lane for lane, kinds in LANES.items() if kind in kinds), kind)


@dataclass(frozen=True)
class LaneState:
    """A lane's queue: jobs queued (due or backing off), running and given up, and how
    long its oldest due job has waited to be claimed."""

    queued: int = 0
    running: int = 0
    failed: int = 0
    oldest_due_seconds: float = 0.0


def lane_states(
    backlog: Iterable[tuple[str, str, int, datetime]], now: datetime
) -> dict[str, LaneState]:
    """Every lane's state from store.jobs.backlog's (kind, status, jobs, earliest run_after)."""
    counts: dict[str, dict[str, float]] = {lane: {} for lane in LANES}
    for kind, status, count, earliest in backlog:
        lane = counts.setdefault(lane_of(kind), {})
        lane[status] = lane.get(status, 0) + count
        if status == "queued" and earliest <= now:
            waited = (now - earliest).total_seconds()
            lane["oldest"] = max(lane.get("oldest", 0.0), waited)
    return {
        lane: LaneState(
            int(c.get("queued", 0)),
            int(c.get("running", 0)),
            int(c.get("failed", 0)),
            c.get("oldest", 0.0),
        )
        for lane, c in counts.items()
    }
