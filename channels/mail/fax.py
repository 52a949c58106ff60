"""Fax-to-email: which mail is a fax, the calling number, and the pages to keep and read.

Fax servers (HylaFAX's faxrcvd, T.38 gateways, fax-to-mail services) mail each received
fax with a TIFF or PDF attachment and write the caller's number in a header
(X-Fax-Caller-ID and kin), the subject ("Fax from 0831...") or the body ("CallID1: ...").
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from email.message import Message

from PIL import Image, ImageSequence, UnidentifiedImageError

from gateway.contract.config import FaxConfig
from gateway.contract.contact import Attachment, Channel, Citizen, IncomingContact
from gateway.contract.errors import PayloadTooLarge
from gateway.contract.kinds import OCR
from gateway.engine.pages import Declared, Unmeasurable, measure, over_limits

_FAX_HEADER_PREFIXES = ("x-fax", "x-hylafax", "x-faxserver")
_CALLER_HEADERS = (
    "X-Fax-Caller-ID",
    "X-Fax-CallerID",
    "X-Fax-From",
    "X-Fax-Sender-Number",
    "X-Caller-ID",
    "X-Fax-CID",
)
_FAX_SUBJECT = re.compile(r"\b(?:fax|facsimile)\b|传真", re.IGNORECASE)
_NUMBER = r"(\+?\d[\d\s\-()]{3,22}\d)"
_CALLER_IN_TEXT = [
    re.compile(
        r"^\s*(?:CallID1|Caller[ -]?ID|Calling number|CID|主叫号码|来电号码)\s*[:：]\s*" + _NUMBER,
        re.IGNORECASE | re.MULTILINE,
    ),
    re.compile(r"(?:from|来自)\s*" + _NUMBER, re.IGNORECASE),
]


def is_fax(
    headers: Message, subject: str, mail_from: str, rcpt_tos: list[str], rules: FaxConfig
) -> bool:
    def lowered(items: list[str]) -> set[str]:
        return {item.strip().lower() for item in items}

    if mail_from.strip().lower() in lowered(rules.senders):
        return True
    if lowered(rcpt_tos) & lowered(rules.recipients):
        return True
    if not rules.detect_by_headers:
        return False
    if any(key.lower().startswith(_FAX_HEADER_PREFIXES) for key in headers):
        return True
    return bool(_FAX_SUBJECT.search(subject))


def calling_number(headers: Message, subject: str, text: str) -> str | None:
    for name in _CALLER_HEADERS:
        value = headers.get(name)
        if value and (digits := _digits(str(value))):
            return digits
    for pattern in _CALLER_IN_TEXT:
        for source in (text, subject):
            if (match := pattern.search(source)) and (digits := _digits(match.group(1))):
                return digits
    return None


def _digits(raw: str) -> str | None:
    cleaned = re.sub(r"[^\d+]", "", raw)
    return cleaned if len(cleaned.lstrip("+")) >= 5 else None


def check_limits(attachments: tuple[Attachment, ...], rules: FaxConfig) -> None:
    """Raise PayloadTooLarge when the pages these files declare in their headers are past
    ``rules.limits``; nothing is decoded. A file whose header cannot be read is not counted:
    it is kept as it came, and neither split_pages nor OCR decodes it."""
    declared: list[Declared] = []
    for attachment in attachments:
        try:
            found = measure(
                attachment.data,
                max_pages=rules.limits.max_pages,
                pdfinfo=rules.pdfinfo,
                timeout=rules.pdfinfo_timeout_seconds,
            )
        except Unmeasurable:
            continue
        if found is not None:
            declared.append(found)
    if reason := over_limits(declared, rules.limits):
        raise PayloadTooLarge(f"fax over the hotline's limits: {reason}")


def split_pages(attachment: Attachment) -> list[Attachment]:
    """A multi-page TIFF becomes one lossless PNG per page (browsers show PNG, not TIFF);
    anything else, or a TIFF Pillow cannot read, is kept as it came."""
    if attachment.media_type != "image/tiff" and not attachment.filename.lower().endswith(
        (".tif", ".tiff")
    ):
        return [attachment]
    stem = attachment.filename.rsplit(".", 1)[0] or "fax"
    try:
        with Image.open(io.BytesIO(attachment.data)) as tiff:
            pages = []
            for number, frame in enumerate(ImageSequence.Iterator(tiff), start=1):
                out = io.BytesIO()
                frame.save(out, format="PNG")
                pages.append(Attachment(f"{stem}-p{number}.png", "image/png", out.getvalue()))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError):
        return [attachment]
    return pages


def as_fax(contact: IncomingContact, headers: Message, rules: FaxConfig) -> IncomingContact:
    """The e-mail contact re-labelled as the fax it carries, its pages queued for OCR;
    PayloadTooLarge, before any page is decoded, when they are past ``rules.limits``."""
    check_limits(contact.attachments, rules)
    number = calling_number(headers, contact.subject, contact.text)
    pages = tuple(page for a in contact.attachments for page in split_pages(a))
    return replace(
        contact,
        channel=Channel.FAX,
        # The mailbox is the fax server's, not the citizen's; the caller is the citizen.
        citizen=Citizen(phone=number),
        attachments=pages,
        jobs=(*contact.jobs, OCR),
        # The mail's subject and body are the fax server's; the citizen's words are on the pages.
        text_source="ocr",
    )
