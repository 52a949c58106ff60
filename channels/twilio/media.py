"""A voicemail's recording (or an MMS's photos) fetched from Twilio into the letter.

The letter is stored the moment Twilio tells us of the recording; the bytes follow as a
durable job with retries (a recording is not always downloadable at once), and a
recording then gets its transcription job.

The files are fetched with our Account SID and auth token, so only from Twilio's API (the
configured ``api_url``): a signed request could name any host, and the credentials would
go there with it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import SplitResult, urlsplit

import httpx

from gateway.contract.config import TwilioConfig
from gateway.contract.kinds import TRANSCRIBE
from gateway.engine.workers import GiveUp, LetterJob
from store.models import Job, Letter

MEDIA_JOB = "twilio_media"
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "audio/x-wav": ".wav",
}
_PORTS = {"https": 443, "http": 80}


def media_of(params: Mapping[str, str]) -> list[tuple[str, str]]:
    """(URL, file name) of every file Twilio's request points at."""
    found = []
    if params.get("RecordingUrl"):
        sid = params.get("RecordingSid") or "recording"
        found.append((params["RecordingUrl"] + ".wav", f"voicemail-{sid}.wav"))
    number = params.get("NumMedia") or "0"
    # ASCII digits only: str.isdigit() is true of "²", which int() refuses.
    count = int(number) if number.isascii() and number.isdigit() else 0
    for n in range(min(count, 10)):
        url = params.get(f"MediaUrl{n}")
        if url:
            kind = params.get(f"MediaContentType{n}", "")
            found.append((url, f"mms-{n + 1}{_EXTENSIONS.get(kind, '')}"))
    return found


def on_api_host(url: str, api_url: str) -> bool:
    """Whether ``url`` is on the host and port of ``api_url``, over https (or over http
    when ``api_url`` itself is: a local stand-in)."""
    target, api = urlsplit(url), urlsplit(api_url)
    if target.scheme not in ("https", api.scheme):
        return False
    address = _address(target)
    return address is not None and address == _address(api)


def _address(url: SplitResult) -> tuple[str, int] | None:
    """Host and port (the scheme's own when none is written); None when there is none."""
    try:
        port = url.port or _PORTS.get(url.scheme)
    except ValueError:  # a port that is not a number
        return None
    return (url.hostname, port) if url.hostname and port else None


class MediaHandler(LetterJob[TwilioConfig]):
    kind = MEDIA_JOB
    actor = "twilio"
    failed_event = "media_fetch_failed"

    def run(self, job: Job) -> None:
        with self.sessions() as session:
            letter = session.get(Letter, job.letter_id)
            if letter is None:
                raise GiveUp(f"letter {job.letter_id} does not exist")
            wanted = media_of(json.loads(letter.raw or "{}"))
            have = {a.filename for a in letter.attachments}
            awaits_recording = letter.text_pending
        if awaits_recording and not any(name.endswith(".wav") for _, name in wanted):
            # Routing waits for a transcript no recording will give: let it go (gave_up).
            raise GiveUp("Twilio named no recording for this voicemail")
        foreign = [url for url, _ in wanted if not on_api_host(url, self.settings.api_url)]
        for url, filename in wanted:
            if filename not in have and url not in foreign:  # a retry does not fetch twice
                self._fetch(job, url, filename)
        if foreign:
            hosts = ", ".join(sorted({str(urlsplit(url).hostname) for url in foreign}))
            raise GiveUp(
                f"not fetched from {hosts}: our credentials go only to {self.settings.api_url}"
            )

    def _fetch(self, job: Job, url: str, filename: str) -> None:
        auth = (self.settings.account_sid, self.settings.auth_token or "")
        response = httpx.get(
            url, auth=auth, timeout=self.settings.timeout_seconds, follow_redirects=True
        )
        if response.status_code in (401, 403):
            raise GiveUp(f"Twilio refused our credentials for {url}")
        response.raise_for_status()  # 404 while the recording is processed: retried
        media_type = response.headers.get("content-type", "").split(";")[0] or "audio/x-wav"
        # A recording is then transcribed.
        then = (TRANSCRIBE,) if filename.endswith(".wav") else ()
        self.attach(job, "media_fetched", (filename, media_type, response.content), then)
