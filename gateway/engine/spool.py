"""The outage spool: contacts (and missed calls for the callback list) that arrive while
the database is down wait here on disk.

Each is one JSON file named after its (source, external_id or call id), written durably
(temp file, fsync, rename, fsync of the folder), so spooling the same contact twice keeps
one file. The drainer stores each file through intake (or the callback list), whose
idempotency makes a crash between commit and unlink harmless. A file that cannot be read
is moved to ``rejected/`` for an operator, never deleted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast, get_args

from gateway.contract.contact import (
    Accepted,
    Attachment,
    Channel,
    Citizen,
    IncomingContact,
    MissedCallEntry,
    TextSource,
)
from gateway.contract.errors import StoreUnavailable
from gateway.contract.logs import log_event
from gateway.engine.metrics import Metrics
from store.attachments import fsync_directory, write_durably

log = logging.getLogger(__name__)
FORMAT_VERSION = 1


def encode_contact(contact: IncomingContact) -> bytes:
    document = {
        "version": FORMAT_VERSION,
        "channel": contact.channel.value,
        "source": contact.source,
        "external_id": contact.external_id,
        "received_at": contact.received_at.isoformat(),
        "citizen": {k: v for k, v in vars(contact.citizen).items() if v is not None},
        "subject": contact.subject,
        "text": contact.text,
        "category": contact.category,
        "district": contact.district,
        "anonymous": contact.anonymous,
        "confidential": contact.confidential,
        "publish_consent": contact.publish_consent,
        "location": list(contact.location) if contact.location else None,
        "jobs": list(contact.jobs),
        "text_source": contact.text_source,
        "raw": contact.raw,
        "attachments": [
            {
                "filename": a.filename,
                "media_type": a.media_type,
                "data": base64.b64encode(a.data).decode("ascii"),
            }
            for a in contact.attachments
        ],
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def decode(raw: bytes) -> IncomingContact | MissedCallEntry:
    """A spooled contact or missed call; any damage raises ValueError."""
    try:
        doc: dict[str, Any] = json.loads(raw.decode("utf-8"))
        if doc.get("version") != FORMAT_VERSION:
            raise ValueError(f"unknown spool format version {doc.get('version')!r}")
        return _missed(doc) if doc.get("kind") == MISSED else _contact(doc)
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"damaged spool file: {exc!r}") from exc


def decode_contact(raw: bytes) -> IncomingContact:
    """Rebuild a spooled contact; any damage (or a missed call) raises ValueError."""
    spooled = decode(raw)
    if not isinstance(spooled, IncomingContact):
        raise ValueError("damaged spool file: a missed call, not a contact")
    return spooled


def _contact(doc: dict[str, Any]) -> IncomingContact:
    return IncomingContact(
        channel=Channel(doc["channel"]),
        source=str(doc["source"]),
        external_id=str(doc["external_id"]),
        received_at=datetime.fromisoformat(doc["received_at"]),
        citizen=Citizen(**doc["citizen"]),
        subject=str(doc["subject"]),
        text=str(doc["text"]),
        category=doc["category"],
        district=doc.get("district"),
        anonymous=bool(doc["anonymous"]),
        confidential=bool(doc["confidential"]),
        publish_consent=doc.get("publish_consent"),
        location=_location(doc.get("location")),
        jobs=tuple(str(kind) for kind in doc["jobs"]),
        text_source=_text_source(doc.get("text_source")),
        raw=str(doc.get("raw", "")),
        attachments=tuple(
            Attachment(
                filename=str(a["filename"]),
                media_type=str(a["media_type"]),
                data=base64.b64decode(a["data"], validate=True),
            )
            for a in doc["attachments"]
        ),
    )


MISSED = "missed_call"


def encode_missed(entry: MissedCallEntry) -> bytes:
    document = {
        **vars(entry),
        "version": FORMAT_VERSION,
        "kind": MISSED,
        "at": entry.at.isoformat(),
    }
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def _missed(doc: dict[str, Any]) -> MissedCallEntry:
    optional = {k: None if doc[k] is None else str(doc[k]) for k in ("caller", "called")}
    return MissedCallEntry(
        source=str(doc["source"]),
        call_id=str(doc["call_id"]),
        at=datetime.fromisoformat(doc["at"]),
        reason=str(doc["reason"]),
        **optional,
    )


def _text_source(value: object) -> TextSource | None:
    # Absent from files spooled before letters knew it: typed text.
    if value is None or value in get_args(TextSource):
        return cast("TextSource | None", value)
    raise ValueError(f"damaged spool file: text_source {value!r}")


def _location(value: object) -> tuple[float, float] | None:
    # Absent from files spooled before letters knew it: none given.
    if value is None:
        return None
    if isinstance(value, list) and len(value) == 2:
        return float(value[0]), float(value[1])
    raise ValueError(f"damaged spool file: location {value!r}")


class Spool:
    def __init__(self, root: Path, metrics: Metrics) -> None:
        self.root = root
        self.rejected = root / "rejected"
        self.metrics = metrics
        root.mkdir(parents=True, exist_ok=True)
        self.metrics.spool_depth.set(self.depth())

    def put(self, contact: IncomingContact) -> Path:
        """Write the contact durably; after return it survives kill -9 and power loss."""
        return self._write(f"{contact.source}\0{contact.external_id}", encode_contact(contact))

    def put_missed(self, entry: MissedCallEntry) -> Path:
        """Write the missed call durably, as a contact is."""
        return self._write(f"{MISSED}\0{entry.source}\0{entry.call_id}", encode_missed(entry))

    def _write(self, key: str, document: bytes) -> Path:
        path = self.root / f"{hashlib.sha256(key.encode()).hexdigest()}.json"
        write_durably(path, document)
        self.metrics.spooled.inc()
        self.metrics.spool_depth.set(self.depth())
        return path

    def files(self) -> Iterator[Path]:
        return iter(sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime_ns))

    def depth(self) -> int:
        return sum(1 for _ in self.root.glob("*.json"))

    def drain(
        self,
        store: Callable[[IncomingContact], Accepted],
        store_missed: Callable[[MissedCallEntry], object],
    ) -> int:
        """Store every spooled contact and missed call; stop at the first sign the database
        is still down."""
        stored = 0
        try:
            for path in self.files():
                try:
                    spooled = decode(path.read_bytes())
                except ValueError as exc:
                    self._set_aside(path, str(exc))
                    continue
                try:
                    if isinstance(spooled, MissedCallEntry):
                        store_missed(spooled)
                        number = None
                    else:
                        number = store(spooled).tracking_number
                except StoreUnavailable:
                    break
                path.unlink()
                fsync_directory(self.root)
                stored += 1
                log_event(log, "spool.drained", tracking_number=number, source=spooled.source)
        finally:
            self.metrics.spool_depth.set(self.depth())
        return stored

    def _set_aside(self, path: Path, reason: str) -> None:
        self.rejected.mkdir(exist_ok=True)
        target = self.rejected / path.name
        path.replace(target)
        fsync_directory(self.root)
        self.metrics.spool_rejected.inc()
        log_event(log, "spool.rejected", logging.ERROR, file=str(target), reason=reason)
