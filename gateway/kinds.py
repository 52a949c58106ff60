"""The names of background jobs and the lanes they run in, apart from the work they name: a
channel that queues a job need not import (and load) what runs it.

Each lane has its own claim loops (``jobs.lanes`` in config), so a slow or failing kind
never holds up another lane: a 200-page fax being read never delays the routing of the
next letter, and a webhook receiver that times out never delays a citizen's receipt.
"""

from __future__ import annotations

ROUTE = "route"  # gateway.dispatch: classify, screen, link, assign
TRANSCRIBE = "transcribe"  # ivr.transcription: a voicemail's words (STT worker processes)
OCR = "ocr"  # gateway.ocr: a fax's words
DELIVER = "deliver"  # gateway.outbox: receipts, replies and urge notices by SMS and e-mail
WEBHOOK = "webhook"  # gateway.webhooks: events to integrators
MEDIA = "twilio_media"  # channels.twilio.media: an MMS's pictures, fetched from Twilio

LANES: dict[str, tuple[str, ...]] = {
    "route": (ROUTE,),
    "notify": (DELIVER,),
    # Apart from notify: a thousand owed to a slow receiver never hold up a citizen's receipt.
    "webhooks": (WEBHOOK,),
    "media": (MEDIA,),
    "ocr": (OCR,),
    "transcribe": (TRANSCRIBE,),
}


def lane_of(kind: str) -> str:
    """The lane a kind runs in; a kind nobody placed runs in its own lane of that name."""
    return next((lane for lane, kinds in LANES.items() if kind in kinds), kind)
