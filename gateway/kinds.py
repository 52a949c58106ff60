"""The names of the jobs intake queues with a letter, apart from the work they name: a
channel that queues a job need not import (and load) what runs it."""

from __future__ import annotations

ROUTE = "route"  # gateway.dispatch: classify, screen, link, assign
TRANSCRIBE = "transcribe"  # ivr.transcription: a voicemail's words
