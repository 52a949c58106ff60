"""An outbox row keeps who it goes to and what it says only while it waits: once sent, the
personal part is purged (the address kept sealed with the PII keys, for a key holder asked
"did it reach me?"); once given up, all of it is sealed, since a webhook may be replayed."""

from __future__ import annotations

import json
from typing import Any, Protocol

from store.pii import FORMAT, Keyring

# The medium's references: a delivery report finds its message by them (no PII in them).
KEPT = ("sent",)
# Kinds whose destination is a person's address (a citizen's; a department's for notices).
ADDRESSED = ("sms", "email", "callback")
SEALED = "sealed"
_PAYLOAD, _DESTINATION = "outbox.payload", "outbox.destination"


class Row(Protocol):
    kind: str
    destination: str
    payload: dict[str, Any]


def purge(row: Row, keyring: Keyring) -> None:
    """A sent message: what it said and whom it named are gone; its address is sealed."""
    row.payload, _ = _split(row)
    _seal_destination(row, keyring)


def seal(row: Row, keyring: Keyring) -> None:
    """A message given up: its personal part sealed, to be unsealed if it is sent again."""
    kept, personal = _split(row)
    sealed = keyring.encrypt(json.dumps(personal, ensure_ascii=False), _PAYLOAD)
    row.payload = {**kept, SEALED: sealed} if personal else kept
    _seal_destination(row, keyring)


def unseal(row: Row, keyring: Keyring) -> None:
    """The message as it was queued, to send again (a replayed webhook)."""
    payload = dict(row.payload)
    sealed = payload.pop(SEALED, None)
    if sealed is not None:
        personal = json.loads(keyring.decrypt(sealed, _PAYLOAD))
        if "citizen" in personal and isinstance(payload.get("data"), dict):
            payload["data"] = {**payload["data"], "citizen": personal.pop("citizen")}
        payload.update(personal)
    row.payload = payload
    if row.destination.startswith(f"{FORMAT}:"):
        row.destination = keyring.decrypt(row.destination, _DESTINATION)


def _seal_destination(row: Row, keyring: Keyring) -> None:
    if row.kind in ADDRESSED and not row.destination.startswith(f"{FORMAT}:"):
        row.destination = keyring.encrypt(row.destination, _DESTINATION)


def _split(row: Row) -> tuple[dict[str, Any], dict[str, Any]]:
    """(what operators keep, what is personal) of the payload."""
    payload = dict(row.payload)
    if row.kind in ADDRESSED:  # subject and body: words to a person, codes, replies
        kept = {k: v for k, v in payload.items() if k in KEPT}
        return kept, {k: v for k, v in payload.items() if k not in KEPT}
    # A webhook is thin by design: only the citizen an endpoint may be sent is personal.
    data = payload.get("data")
    if not isinstance(data, dict) or "citizen" not in data:
        return payload, {}
    rest = {k: v for k, v in data.items() if k != "citizen"}
    return {**payload, "data": rest}, {"citizen": data["citizen"]}
