"""From what a SIM holds to whole messages: grouping the parts of long SMS. Pure.

The SIM is the reassembly buffer: a part stays on it until the letter it belongs to is
committed, so a crash at any point loses nothing. A group still missing parts after
`incomplete_after` is handed over with what arrived, marked incomplete.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from channels.gsm.pdu import Alphabet, PduError, Sms, decode_payload, parse_pdu
from gateway.contract.contact import Channel, Citizen, IncomingContact

# +CMGL: <index>,<stat>,[<alpha>],<length> (TS 27.005 §3.4.2, PDU mode)
_LISTED = re.compile(r"^\+CMGL:\s*(\d+)\s*,\s*(\d+)")
RECEIVED_STATES = {0, 1}  # REC UNREAD, REC READ; 2 and 3 are messages stored for sending


@dataclass(frozen=True)
class Stored:
    index: int
    state: int
    pdu: str


def parse_listing(lines: Iterable[str]) -> list[Stored]:
    """The entries of an AT+CMGL response; stray unsolicited lines are skipped."""
    entries = []
    header: re.Match[str] | None = None
    for line in (line.strip() for line in lines):
        if header is not None:
            entries.append(Stored(int(header.group(1)), int(header.group(2)), line))
            header = None
        else:
            header = _LISTED.match(line)
    return entries


@dataclass
class Message:
    """One citizen's SMS (all its parts), ready to become a letter."""

    parts: list[tuple[int, Sms, str]]  # (index on the SIM, decoded part, raw PDU)
    complete: bool = True
    expected: int = 1

    @property
    def indexes(self) -> list[int]:
        return [index for index, _, _ in self.parts]

    def contact(self, source: str, now: datetime) -> IncomingContact:
        by_sequence: dict[int, tuple[Sms, str]] = {}
        for _, sms, pdu in self.parts:  # a duplicated part counts once
            by_sequence.setdefault(sms.concat.sequence if sms.concat else 1, (sms, pdu))
        ordered = [by_sequence[n] for n in sorted(by_sequence)]
        first = ordered[0][0]
        if first.alphabet is Alphabet.UCS2:
            # Joined as bytes: a surrogate pair may straddle two parts.
            text = decode_payload(first.alphabet, b"".join(s.payload for s, _ in ordered))
        else:
            text = "".join(s.text for s, _ in ordered)
        if not self.complete:
            got = "、".join(str(n) for n in sorted(by_sequence))
            text += f"\n\n（此短信不完整：共{self.expected}段，只收到第{got}段）"
        stamps = [s.timestamp for s, _ in ordered if s.timestamp is not None]
        sent = min(stamps) if stamps else now
        return IncomingContact(
            channel=Channel.SMS,
            source=source,
            external_id=_key(first, sent, by_sequence, self.complete),
            received_at=sent.astimezone(UTC),
            citizen=Citizen(phone=first.address),
            text=text,
            raw="\n".join(pdu for _, pdu in ordered),
        )


def _key(first: Sms, sent: datetime, parts: Mapping[int, tuple[Sms, str]], complete: bool) -> str:
    """Originator, SMSC time and concatenation reference: the same SMS read twice (after a
    crash before its deletion) gives the same key, two different SMS different keys."""
    stamp = sent.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    if first.concat is None:
        digest = hashlib.sha256(first.payload).hexdigest()[:12]
        return f"{first.address}:{stamp}:{digest}"
    c = first.concat
    key = f"{first.address}:{stamp}:{c.reference_bits}-{c.reference}-{c.total}"
    return key if complete else key + ":" + ",".join(str(n) for n in sorted(parts))


@dataclass
class Sweep:
    """What one listing of the SIM asks for."""

    messages: list[Message] = field(default_factory=list)
    malformed: list[tuple[Stored, str]] = field(default_factory=list)
    reports: list[tuple[int, Sms]] = field(default_factory=list)
    waiting: int = 0  # parts held back for their siblings


def sort_out(
    entries: Iterable[Stored],
    first_seen: dict[str, datetime],
    now: datetime,
    incomplete_after: timedelta,
    storage_full: bool = False,
) -> Sweep:
    """Decide what to do with every stored entry. ``first_seen`` (group key -> time) is
    the caller's memory across sweeps; groups that left the SIM are dropped from it."""
    sweep = Sweep()
    groups: dict[str, list[tuple[int, Sms, str]]] = {}
    for entry in entries:
        if entry.state not in RECEIVED_STATES:
            continue
        try:
            sms = parse_pdu(entry.pdu)
        except PduError as exc:
            sweep.malformed.append((entry, str(exc)))
            continue
        except Exception as exc:  # a decoder bug: this PDU is set aside, never the channel
            sweep.malformed.append((entry, f"decoder failed: {exc!r}"))
            continue
        if sms.kind == "status-report":
            sweep.reports.append((entry.index, sms))
        elif sms.kind != "deliver":
            sweep.malformed.append((entry, f"a received {sms.kind} PDU"))
        elif sms.concat is None or sms.concat.total <= 1:
            sweep.messages.append(Message([(entry.index, sms, entry.pdu)]))
        else:
            c = sms.concat
            group = f"{sms.address}:{c.reference_bits}:{c.reference}:{c.total}"
            groups.setdefault(group, []).append((entry.index, sms, entry.pdu))
    for group in set(first_seen) - set(groups):
        del first_seen[group]
    # When the SIM is full, waiting groups are handed over oldest first to make room.
    oldest = sorted(groups, key=lambda g: first_seen.get(g, now))
    for group in oldest:
        parts = groups[group]
        total = parts[0][1].concat.total if parts[0][1].concat else 1
        have = {sms.concat.sequence for _, sms, _ in parts if sms.concat}
        seen = first_seen.setdefault(group, now)
        if len(have) >= total:
            sweep.messages.append(Message(parts, complete=True, expected=total))
        elif now - seen >= incomplete_after or storage_full:
            sweep.messages.append(Message(parts, complete=False, expected=total))
            storage_full = False  # one group freed is enough for this sweep
        else:
            sweep.waiting += len(parts)
    return sweep
